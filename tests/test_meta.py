"""Every hook is documented (docstring and README) and exercised by the test suite."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from pnpkit import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
         if name.startswith("register_")]


def test_the_hooks_are_the_public_contract():
    assert set(HOOKS) == {"register_solvers", "register_priors", "register_operators",
                          "register_datasets", "register_commands"}


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_docstring(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook))
    assert doc and len(doc) > 20


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_in_the_readme(hook):
    assert f"`{hook}(" in (ROOT / "README.md").read_text(), f"README.md does not document {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_exercised_by_a_test(hook):
    me = Path(__file__).name
    used = [p for p in (ROOT / "tests").glob("*.py")
            if p.name != me and f"def {hook}(" in p.read_text()]
    assert used, f"no test implements the hook {hook}"
