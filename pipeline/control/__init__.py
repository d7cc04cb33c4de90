"""Control maps for ControlNet: preprocessors (OpenCV, controlnet-aux detectors from
local weights) and the per-unit map cache in the run folder (the control stage's preview
video is assembled by ``pipeline.assemble.control_preview``). May import ``config``,
``records``, ``source``, ``models`` and ``pipeline.errors``/``pipeline.atomic``;
controlnet-aux lazily.
"""
