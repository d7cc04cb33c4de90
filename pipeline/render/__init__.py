"""Frames out: the render stage, the frame producer (keys, reuse, saving), the renderer
around diffusers' pipelines, A1111-style prompt encoding (with textual inversion and
CLIP skip), prompt editing per step, the plan's LoRAs and embeddings, PNG metadata.

How the frames run: ``executors/`` (``local``: this process, I/O overlapped; ``ray``:
Ray actors, one per GPU), ``batch`` (which frames share a pipeline call), ``units``
(what a worker gets), ``loading`` (the model as every executor loads it), ``inputs``
(the frames a render reads: the input, with their masks). ``masking/`` renders only
the part of each frame its mask says, whatever strategy makes the frame.

The only stage that runs diffusion. May import ``config``, ``records``, ``plan`` (the
rows and the pure-text prompt modules), ``source``, ``control``, ``models``,
``animation`` and ``pipeline.errors``/``pipeline.atomic``.
"""
