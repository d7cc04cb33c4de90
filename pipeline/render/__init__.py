"""Frames out: the render stage, the frame producer (keys, reuse, saving), the renderer
around diffusers' pipelines, A1111-style prompt encoding (with textual inversion and
CLIP skip), prompt editing per step, the plan's LoRAs and embeddings, PNG metadata.

The only stage that runs diffusion. May import ``config``, ``plan.rows`` and the plan's
pure-text modules (``prompt_syntax``, ``prompt_editing``, ``networks``), ``source``,
``control``, ``models``, ``animation``, the ``jobs`` records and
``pipeline.errors``/``pipeline.atomic``.
"""
