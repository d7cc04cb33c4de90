"""Frame-to-frame image operations: the loopback input (``loopback.py``: the 2D camera
move, the 3D camera, perspective flip, colour matching, contrast and anti-blur, Gaussian
and Perlin noise), the depth maps of loopback outputs kept in the run folder, and
optical flow between source frames (with its cache in the run folder).

Numpy/OpenCV functions on RGB arrays, flows and depth maps; the 3D camera
(``camera3d.py``) alone is torch, for ``grid_sample`` on the device the frames render
on, so the modules the light stages read (the flow and depth caches) stay free of it.
May import ``config`` (its enums), ``records`` (the caches in the run folder) and
``pipeline.errors``/``pipeline.atomic``; never a model (depth maps come in as arrays).
"""
