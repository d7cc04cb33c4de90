"""Frames out: the render stage, the frame producer (keys, reuse, saving), the renderer
around diffusers' pipelines, A1111-style prompt encoding and PNG metadata.

The only stage that runs diffusion. May import ``config``, ``plan.rows``, ``source``,
``control``, ``models``, ``animation``, the ``jobs`` records and
``pipeline.errors``/``pipeline.atomic``.
"""
