"""deepinv's samplers and optimisers behind pnpkit's ``solve`` call, for side-by-side comparison."""
