"""The Ray executor: one job rendered by ``runtime.workers`` Ray actors, one writer.

The driver (this process, holding the run lock; :mod:`.driver`) does what a single
process does up to the diffusion itself: it decodes the input once (ahead, in a thread),
computes control maps and frame keys, reuses what is current, and lets the render
strategy cut the rest into work units (:mod:`pipeline.render.strategies`,
:mod:`pipeline.render.units`): a batch of independent frames, a whole coherence segment,
or the whole of a loopback. Each worker (:mod:`.worker`) is an actor that loads the
model once (one GPU each on CUDA, one CPU each otherwise;
:mod:`pipeline.models.ray_cluster` starts or joins the Ray they run on, and
:mod:`pipeline.models.ray_guard` ends a local one with the driver, however the driver
ends), renders the units it is given with the same strategy, writes their frames
atomically into the run folder (a filesystem every machine sees at the same path, on a
cluster) and streams each frame's outcome back as soon as its file is durable. The
driver writes the manifest, in frame order, from those outcomes: the manifest has one
writer whatever the worker count.

Units are handed out as workers free up, with one more per worker ready, so none waits
for the driver to decode its next one. Frames are bit-identical to a single-process run
of the same config: a worker renders the same batches (they are cut on the same grid,
:mod:`pipeline.render.batch`) with the same code, seeds and weights (the plan's LoRAs
are loaded from all its rows).

A worker that dies (its process killed, its machine gone) loses only the frames it had
not returned: the driver hands its unit, less those frames, to another worker (a chain
restarts at its first frame, reusing what was returned). When every worker is gone the
job stops with the frames so far kept. Ctrl-C stops every worker at once; the frames
they were rendering render again on resume.

Ray is an optional extra: only :func:`pipeline.render.executors.executor_for` imports
this package, when it is asked for.
"""
