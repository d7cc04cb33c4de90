"""Finishing at the delivered size: the upscale stage (spandrel models, Lanczos, tiles, on
this machine or Ray workers), the rules that decide each frame's delivered size
(:mod:`.delivery`, read by the assemble stage too), and RIFE's in-between frames for the
assemble stage (:mod:`.rife`, the torch side of interpolation).

``delivery`` imports no torch (the assemble stage and a dry run read it); the rest
imports torch where it runs. May import ``config``, ``records``, ``source``, ``control``,
``animation``, ``models``, ``plan`` and ``pipeline.errors``/``pipeline.atomic``/
``pipeline.ffmpeg_exe``; never ``render`` or the stages above it.
"""
