"""The deliverable: frames encoded by ffmpeg (mp4, webm, gif, with the source's audio)
or copied into an image folder, and the assemble stage. May import ``config``,
``records``, ``source``, ``control`` (the maps of the preview), ``animation`` (flow, for
in-between frames), ``plan`` (the rows), ``upscale`` (the delivered frames) and
``pipeline.errors``/``pipeline.atomic``/``pipeline.ffmpeg_exe``; never torch.
"""
