"""A1111's generation parameters: the ``parameters`` text of a PNG A1111 (or rotoscope)
wrote, read back as a keyframe file (``keyframes=frame.png``)."""
