"""rotoscope: a batch and animation render pipeline for Stable Diffusion on diffusers.

The import name is ``pipeline``; the distribution and the command are ``rotoscope``.
Stages: plan (pure data) -> render (diffusers) -> assemble (ffmpeg). See the docs site.
"""

from importlib.metadata import PackageNotFoundError, version

try:  # pyproject.toml's version is the one version: it goes into every frame's metadata
    __version__ = version("rotoscope")
except PackageNotFoundError:  # a checkout used without installing it
    __version__ = "0+unknown"
