"""The deliverable: frames encoded by ffmpeg (mp4, webm, gif, with the source's audio)
or copied into an image folder, and the assemble stage. May import ``config``,
``source.base``, the ``jobs`` records and ``pipeline.errors``/``pipeline.atomic``/
``pipeline.ffmpeg_exe``; never torch.
"""
