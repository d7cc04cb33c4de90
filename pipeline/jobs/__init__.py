"""One job over one run folder: the stages in order, and the run folder's records.

``run`` is the orchestrator and the only module here that imports the stages. The
others are the records every stage shares and may import: ``run_folder`` (every file's
name), ``naming`` (which folder a run gets, ``run.json``), ``manifest`` (finished frames
and their keys), ``history`` (earlier looks and outputs kept, their disk use),
``prune`` (deleting what is no longer needed), ``writer`` (frame files in a pool,
manifest lines in frame order), ``report``, ``progress``,
``interrupts`` (graceful stop), ``lock`` and ``disk``. May import ``config``, the
stages (``run`` only) and ``pipeline.errors``/``pipeline.atomic``; never torch.
"""
