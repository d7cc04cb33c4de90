"""Frame-to-frame image operations: loopback camera motion, colour matching, and optical
flow between source frames (with its cache in the run folder).

Numpy/OpenCV functions on RGB arrays and flows. May import ``config`` (its enums),
``records`` (the caches in the run folder) and ``pipeline.errors``/``pipeline.atomic``;
never torch.
"""
