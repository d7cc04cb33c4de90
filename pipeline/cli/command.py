"""The ``rotoscope`` command: a Hydra app that runs plan -> render -> assemble.

The config is composed and type-checked once before Hydra starts the job, so a typo or a
wrong type ends with one line naming the key instead of Hydra's multi-line report.
Errors the user can fix end the run with one line and exit status 2; the full traceback
goes to the run's log file (and to the console with ``runtime.verbose=true``).
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from pipeline.cli.logs import quiet_libraries
from pipeline.cli.overrides import quote_text_values
from pipeline.config.compose import compose_checked, to_run_config
from pipeline.config.keyframes import explicit_keys
from pipeline.config.schema import RunConfig, register
from pipeline.errors import RotoscopeError
from pipeline.records.interrupts import StopRequested
from pipeline.records.naming import check_writable, choose_folder, register_resolvers
from pipeline.records.run_folder import RunFolder
from pipeline.run.configure import configure
from pipeline.run.job import run_job

log = logging.getLogger("rotoscope")

# Hydra flags that inspect or redirect the config; the pre-check leaves those to Hydra.
HYDRA_INSPECT_FLAGS = (
    "-h", "--help", "--hydra-help", "--info", "-i", "--cfg", "-c", "--shell-completion",
    "-sc", "--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd",
    "--resolve", "--package", "-p", "--experimental-rerun",
)  # fmt: skip


def main() -> None:
    """Entry point of the ``rotoscope`` command and ``python -m pipeline``."""
    register()
    register_resolvers()
    original = sys.argv[1:]
    try:
        args = quote_text_values(original)
    except RotoscopeError as exc:
        print(f"rotoscope: error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.argv[1:] = args  # Hydra reads sys.argv itself
    if not any(arg.split("=")[0] in HYDRA_INSPECT_FLAGS for arg in args):
        overrides = [arg for arg in args if not arg.startswith("-")]
        multirun = any(arg in MULTIRUN_FLAGS for arg in args)
        try:
            checked = compose_checked(overrides, multirun=multirun)
            with quiet(log):  # the job itself reports what the keyframe file holds
                configure(checked, explicit_keys(overrides))
            check_run_folder(checked, overrides, multirun)
        except RotoscopeError as exc:
            print(f"rotoscope: error: {exc}", file=sys.stderr)
            sys.exit(2)
        if not checked.runtime.verbose:
            quiet_library_imports()
    os.environ[RESUME_ENV] = shlex.join(["rotoscope", *original])
    hydra_entry()


MULTIRUN_FLAGS = ("-m", "--multirun")


def check_run_folder(cfg: RunConfig, overrides: list[str], multirun: bool) -> None:
    """Refuse an output folder that cannot be written before Hydra tries to make it.

    A single run checks its own run folder; a queue checks ``output.root`` (each job's
    folder is chosen when the job starts).
    """
    root = Path(cfg.output.root)
    if multirun:
        check_writable(root)
        return
    explicit = "name" in explicit_keys(overrides)
    check_writable(choose_folder(root, cfg.name, cfg.input.path, explicit=explicit))


@contextmanager
def quiet(logger: logging.Logger) -> Iterator[None]:
    """``logger`` says nothing inside (a check that the job repeats, with its log)."""
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def quiet_library_imports() -> None:
    """transformers and diffusers print notices at import time (before any logger
    level can be set), through their own handlers; their env switches stop that."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")


# The command line as the user typed it, so an interrupted job can print the exact
# command that resumes it (Hydra only keeps its own re-quoted overrides).
RESUME_ENV = "ROTOSCOPE_COMMAND"


@hydra.main(version_base="1.3", config_path="pkg://pipeline.conf", config_name="config")
def hydra_entry(cfg: DictConfig) -> dict[str, object]:
    """Run one job (one combination, under multirun) in its run folder.

    Returns a short status for the multirun summary. In a single run a failure exits
    non-zero here; under multirun it is logged and the next job starts.
    """
    run_cfg = to_run_config(cfg)
    quiet_libraries(run_cfg.runtime.verbose)
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    command = os.environ.get(RESUME_ENV)
    explicit = frozenset(explicit_keys(hydra_cfg.overrides.task))
    job = str(hydra_cfg.job.override_dirname) if multirun else ""
    status: dict[str, object] = {"run_dir": str(run_dir), "status": "failed"}
    try:
        report = run_job(run_cfg, run_dir, explicit, command, job)
        return {**status, "status": report.status, "outputs": report.outputs}
    except StopRequested as stop:
        log.warning(
            "stopped by %s after the current frame; finished frames are kept. Resume with:\n  %s",
            stop.signal_name, command,
        )  # fmt: skip
        sys.exit(stop.exit_code)
    except RotoscopeError as exc:
        if run_cfg.runtime.verbose:
            raise
        log.error("%s", exc)
        if not multirun:
            sys.exit(2)
        return {**status, "error": str(exc)}
    except Exception as exc:
        if run_cfg.runtime.verbose:
            raise
        if run_dir.is_dir():
            with RunFolder(run_dir).log.open("a", encoding="utf-8") as fh:
                fh.write(traceback.format_exc())
        log.error(
            "unexpected failure: %s: %s (traceback in %s; rerun with runtime.verbose=true)",
            type(exc).__name__, exc, RunFolder(run_dir).log,
        )  # fmt: skip
        if not multirun:
            sys.exit(1)
        return {**status, "error": f"{type(exc).__name__}: {exc}"}
