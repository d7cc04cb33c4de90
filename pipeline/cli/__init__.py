"""The command: ``rotoscope`` / ``python -m pipeline``.

Holds the entry point (config checked before Hydra runs a job), the quoting that lets
prompts and schedules pass Hydra's override grammar verbatim, the multirun queue
summary, and console logging. The top layer: may import any other package.
"""
