"""The command: ``rotoscope`` / ``python -m pipeline``.

Holds the entry point (config and output folder checked before Hydra runs a job), the
quoting that lets prompts and schedules pass Hydra's override grammar verbatim (and
reads keyframed prompt maps), the multirun queue summary, console logging, and the
``rotoscope-prune`` command. The top layer: may import any other package.
"""
