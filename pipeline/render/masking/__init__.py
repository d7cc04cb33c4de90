"""Masked rendering: only part of each frame is stylized, the rest is the source frame.

``render`` (:class:`~.render.MaskedRender`) is the composition every strategy renders
through: empty masks, the crop of ``mask.area=masked``, the composite with the source;
``latent`` is what happens inside a diffusion call (the init latents kept outside the
mask, A1111's latent fills); ``pixels`` the image operations around it; ``control`` the
control image of a ControlNet inpaint unit. Where the masks come from is
:mod:`pipeline.source.masks`.
"""
