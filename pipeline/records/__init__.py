"""The run folder's records, which every stage shares.

``run_folder`` (every file's name), ``naming`` (which folder a run or a queue gets,
``run.json``), ``manifest`` (finished frames and their keys), ``history`` (earlier looks
and outputs kept, their disk use), ``provenance`` (what made each output, the looks a
folder keeps), ``prune`` (deleting what is no longer needed), ``writer`` (frame files in
a pool, manifest lines in frame order), ``report`` (and the job list), ``progress``,
``interrupts`` (Ctrl-C: safe points), ``lock`` and ``disk``. Plain records: they know nothing
of the stages that fill them. May import ``config``, ``pipeline.errors`` and
``pipeline.atomic``; never torch.
"""
