"""Control maps for ControlNet: preprocessors (OpenCV, controlnet-aux detectors from
local weights), the per-unit map cache in the run folder, and the control stage with its
preview. May import ``config``, ``source``, ``assemble`` (the preview video), the
``jobs`` records and ``pipeline.errors``/``pipeline.atomic``; controlnet-aux lazily.
"""
