"""The run's and the queue's pages: ``report.html`` in every run folder, ``queue.html`` in
a queue's folder.

``view`` reads what a run folder records (plan rows, manifest lines, frame metadata,
``report.json``, ``metrics.json``, kept looks, masks, control maps, depth maps) into one
:class:`~pipeline.report.view.RunView`, without knowing which stage or feature wrote a
field: a frame's record is shown whole, so what a new feature records shows up on the
page by itself. ``charts`` draws the plan and the flicker as inline SVG, ``page`` writes
the self-contained HTML (inline styles and script, images relative to the run folder),
``live`` refreshes it while a job runs, ``queue`` writes a queue's page. May import
``config``, ``records``, ``source``, ``plan``, ``metrics`` and
``pipeline.errors``/``pipeline.atomic``; never torch.
"""
