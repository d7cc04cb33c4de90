"""The metrics stage: how much a run flickers, measured against the source's motion.

``warp_error`` holds the measure (Lai et al. 2018) and a detail measure; ``stage``
computes both for every pair of frames of a run folder and writes ``metrics.json`` and
the chart ``metrics.png``. May import ``config``, ``records``, ``source``, ``animation`` (flow),
``plan`` (rows, chart) and ``pipeline.errors``/``pipeline.atomic``; never torch.
"""
