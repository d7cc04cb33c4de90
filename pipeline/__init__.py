"""rotoscope: a batch and animation render pipeline for Stable Diffusion on diffusers.

The import name is ``pipeline``; the distribution and the command are ``rotoscope``.
Stages: plan (pure data) -> render (diffusers) -> assemble (ffmpeg). See README.md.
"""

__version__ = "0.1.0"
