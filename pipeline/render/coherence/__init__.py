"""Temporal coherence: frames rendered as chains that know the frames before them.

``strategy`` is the render stage's coherent input strategy (the frame loop, resume and
replay), ``chain`` what each frame takes from earlier ones and hands on (and what of it
is kept in the run folder), ``attention`` cross-frame attention with record and replay,
``fusion`` residual latent fusion. May import ``config``, ``plan.rows``, ``source``,
``animation`` (flow, carry), the ``records`` package, ``render.producer`` (strategy only)
and ``pipeline.errors``/``pipeline.atomic``.
"""
