"""Console log formatting: short lines a user reads, full detail in the run's log file.

Hydra wires the handlers (console on stderr, file in the run folder) from
``conf/hydra/job_logging/rotoscope.yaml``; this module only shapes the console line and
quiets the libraries whose info-level chatter would bury the progress lines.
"""

from __future__ import annotations

import logging

from pipeline.records.progress import FILE_ONLY


class ConsoleFormatter(logging.Formatter):
    """``rotoscope: message``, with ``warning:`` / ``error:`` for the levels that need it."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"rotoscope: error: {message}"
        if record.levelno >= logging.WARNING:
            return f"rotoscope: warning: {message}"
        return f"rotoscope: {message}"


class SkipFileOnly(logging.Filter):
    """Console filter: drop records marked ``extra={FILE_ONLY: True}`` (kept in the file)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, FILE_ONLY, False)


NOISY_LOGGERS = ("diffusers", "transformers", "huggingface_hub", "torch", "PIL", "urllib3")


def quiet_libraries(verbose: bool = False) -> None:
    """Keep third-party loggers quiet (errors only) so our progress stays readable.

    diffusers logs per-call notices (for example on every SDXL frame) at warning level;
    ``runtime.verbose`` lets warnings through again.
    """
    level = logging.WARNING if verbose else logging.ERROR
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(level)
