"""The command: ``rotoscope`` / ``python -m pipeline``.

Holds the entry point (``main``: Ctrl-C first) and the command (``command``: config and
output folder checked before Hydra runs a job), the quoting that lets prompts and
schedules pass Hydra's override grammar verbatim (and reads keyframed prompt maps and
lists), the multirun queue summary, console logging, and the ``rotoscope-history``,
``rotoscope-prune`` and ``rotoscope-import-deforum`` commands. The top layer: may import
any other package.
"""
