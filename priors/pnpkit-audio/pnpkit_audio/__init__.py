"""Multi-stem music built offline and a multi-source audio diffusion prior, for pnpkit.

- :mod:`pnpkit_audio.render`: the dataset builder (music21's Bach chorales rendered to
  bass / drums / guitar / piano stems with FluidSynth and the General MIDI soundfont);
- :mod:`pnpkit_audio.dataset`: the built dataset's splits, segments and evaluation items;
- :mod:`pnpkit_audio.network`: the 1-D UNet;
- :mod:`pnpkit_audio.prior`: the prior, a ``pnpkit_priors.diffusion.DiffusersPrior`` of it;
- :mod:`pnpkit_audio.train`, :mod:`pnpkit_audio.card`: its training (pnpkit-priors' trainer)
  and its model card;
- :mod:`pnpkit_audio.plugin`: what is registered with pnpkit.
"""

#: The stems, in channel order (Slakh2100's four classes, as the MSDM paper stacks them).
STEMS = ("bass", "drums", "guitar", "piano")
#: The window, in samples, a longer song is separated in (the prior's ``fixed_shape``):
#: 65536 (8.192 s at 8 kHz), the length of the shipped excerpts and of every separation
#: benchmark; the network was trained on 16384 and runs on any multiple of 256.
SEGMENT = 65536
