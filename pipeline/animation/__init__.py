"""Frame-to-frame image operations: loopback camera motion, colour matching, and optical
flow between source frames (with its cache in the run folder).

Numpy/OpenCV functions on RGB arrays and flows. May import ``pipeline.errors`` and
``pipeline.atomic`` (the flow cache) only; never torch.
"""
