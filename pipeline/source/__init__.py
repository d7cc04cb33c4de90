"""Frames in: a video (one streaming ffmpeg process), a folder of images, or one image.

``open.open_source`` probes the input and returns a lazy ``base.Source``; ``video`` and
``images`` implement it, ``probe`` reads what ffmpeg says about a video, ``resize``
brings frames to the render size, ``prefetch`` decodes ahead of the renderer in a
thread. May import ``config``, ``records`` (caches in the run folder) and ``pipeline.errors``/
``pipeline.atomic``/``pipeline.ffmpeg_exe``; never torch.
"""
