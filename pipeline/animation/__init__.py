"""Frame-to-frame image operations: loopback camera motion and colour matching.

Pure numpy/OpenCV functions on RGB arrays. May import ``pipeline.errors`` only.
"""
