"""The ``rotoscope`` command: a Hydra app that runs plan -> render -> assemble.

The config is composed and type-checked once before Hydra starts the job, so a typo or a
wrong type ends with one line naming the key instead of Hydra's multi-line report.
Errors the user can fix end the run with one line and exit status 2; the full traceback
goes to the run's log file (and to the console with ``runtime.verbose=true``). The entry
point (:mod:`pipeline.cli.main`) handles Ctrl-C before this module is even imported.
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
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from pipeline import __version__
from pipeline.cli.logs import quiet_libraries
from pipeline.cli.overrides import expand_lists, hydra_quote, quote_text_values
from pipeline.config.compose import compose_checked, literal_node, to_run_config
from pipeline.config.keyframes import explicit_keys
from pipeline.config.schema import RunConfig, register
from pipeline.errors import RotoscopeError
from pipeline.records.interrupts import StopRequested, process_stop
from pipeline.records.naming import (
    check_name,
    check_owner,
    check_writable,
    choose_folder,
    folder_neutral_keys,
    owner_of,
    queue_folder,
    register_resolvers,
)
from pipeline.records.run_folder import RunFolder
from pipeline.run.configure import configure
from pipeline.run.job import run_job
from pipeline.source.open import looks_like_input

log = logging.getLogger("rotoscope")

# Hydra flags that inspect or redirect the config; the pre-check leaves those to Hydra.
HYDRA_INSPECT_FLAGS = (
    "-h", "--help", "--hydra-help", "--info", "-i", "--cfg", "-c", "--shell-completion",
    "-sc", "--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd",
    "--resolve", "--package", "-p", "--experimental-rerun",
)  # fmt: skip
VERSION_FLAGS = ("--version", "-V")
MULTIRUN_FLAGS = ("-m", "--multirun")


def run_command() -> None:
    """The command, once Ctrl-C is handled (:func:`pipeline.cli.main.main`)."""
    original = sys.argv[1:]
    if any(arg in VERSION_FLAGS for arg in original):
        print(f"rotoscope {__version__}")
        return
    register()
    register_resolvers()
    try:
        check_bare_words(original)
        args = expand_lists(quote_text_values(original))
    except RotoscopeError as exc:
        fail(exc)
    multirun = any(arg in MULTIRUN_FLAGS for arg in args)
    if job_config_requested(args):
        print_job_config(overrides_of(args))
        return
    if not any(arg.split("=")[0] in HYDRA_INSPECT_FLAGS for arg in args):
        overrides = [arg for arg in args if not arg.startswith("-")]
        try:
            checked = compose_checked(overrides, multirun=multirun)
            with quiet(log):  # the job itself reports what the keyframe file holds
                configure(checked, explicit_keys(overrides))
            check_run_folder(checked, overrides, multirun)
        except RotoscopeError as exc:
            fail(exc)
        if multirun:
            args += queue_overrides(checked, overrides)
        if not checked.runtime.verbose:
            quiet_library_imports()
    sys.argv[1:] = args  # Hydra reads sys.argv itself
    os.environ[RESUME_ENV] = shlex.join(["rotoscope", *original])
    hydra_entry()


def fail(exc: RotoscopeError) -> None:
    print(f"rotoscope: error: {exc}", file=sys.stderr)
    sys.exit(2)


# Hydra flags followed by a value of their own (``--cfg job``, ``-cn config``).
FLAGS_WITH_VALUES = (
    "--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
    "--config-dir", "-cd", "--info", "-i", "--shell-completion", "-sc",
    "--experimental-rerun",
)  # fmt: skip


def check_bare_words(args: list[str]) -> None:
    """A word that is neither a flag nor ``key=value``: most often the input itself."""
    for before, arg in zip(["", *args], args, strict=False):
        if arg.startswith("-") or "=" in arg or before in FLAGS_WITH_VALUES:
            continue
        if looks_like_input(arg):
            raise RotoscopeError(
                f"'{arg}' is not a setting",
                f"give the input as input.path={shlex.quote(arg)}",
            )
        raise RotoscopeError(
            f"'{arg}' is not a setting (settings are key=value)",
            "for example input.path=clip.mp4 prompt='a cat'; rotoscope --help lists them",
        )


def overrides_of(args: list[str]) -> list[str]:
    """The ``key=value`` arguments: neither flags nor a flag's own value."""
    return [
        arg for before, arg in zip(["", *args], args, strict=False)
        if not arg.startswith("-") and before not in FLAGS_WITH_VALUES
    ]  # fmt: skip


def job_config_requested(args: list[str]) -> bool:
    """``--cfg job`` (``-c job``): the config a job would run with."""
    for flag, value in zip(args, [*args[1:], ""], strict=True):
        if flag in ("--cfg", "-c") and value == "job":
            return True
    return any(arg in ("--cfg=job", "-c=job") for arg in args)


def print_job_config(overrides: list[str]) -> None:
    """Print the job's config as the job runs it: composed, and with its keyframe file's
    values applied (Hydra's own ``--cfg job`` knows nothing of keyframe files)."""
    try:
        cfg = compose_checked(overrides, multirun=True)
        with quiet(log):
            configured = configure(cfg, explicit_keys(overrides))
    except RotoscopeError as exc:
        fail(exc)
    print(OmegaConf.to_yaml(literal_node(configured.cfg)), end="")


def check_run_folder(cfg: RunConfig, overrides: list[str], multirun: bool) -> None:
    """Refuse an output folder that cannot be written before Hydra tries to make it, a
    ``name=`` that is no folder name, and one whose folder holds another input's run.

    A single run checks its own run folder; a queue checks ``output.root`` (each job's
    folder is chosen when the job starts).
    """
    root = Path(cfg.output.root)
    explicit = "name" in explicit_keys(overrides)
    if explicit:
        check_name(cfg.name)
    if multirun:
        check_writable(root)
        return
    folder = choose_folder(root, cfg.name, cfg.input.path, explicit=explicit)
    check_owner(RunFolder(folder), owner_of(cfg.input.path, name=cfg.name), explicit)
    check_writable(folder)


def queue_overrides(cfg: RunConfig, overrides: list[str]) -> list[str]:
    """What a queue adds to Hydra's arguments: its jobs' folders are named by the values
    that differ between them, and its records go to a folder of its own."""
    added = []
    given = {override.split("=", 1)[0] for override in overrides}
    if "hydra.job.config.override_dirname.exclude_keys" not in given:
        try:
            parsed = OverridesParser.create().parse_overrides(overrides)
        except OverrideParseException:  # compose_checked has reported it already
            parsed = []
        shared = [o.key_or_group for o in parsed if not o.is_sweep_override()]
        keys = ",".join(folder_neutral_keys(shared))
        added.append(f"hydra.job.config.override_dirname.exclude_keys=[{keys}]")
    if "hydra.sweep.dir" not in given:
        added.append(f"hydra.sweep.dir={hydra_quote(str(queue_folder(Path(cfg.output.root))))}")
    return added


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
    non-zero here; under multirun it is logged and the next job starts. An interrupt
    stops the queue too.
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
        report = run_job(run_cfg, run_dir, explicit, command, job, process_stop())
        return {**status, "status": report.status, "outputs": report.outputs}
    except StopRequested as stop:
        log.warning(
            "stopped by %s at a safe point; finished frames are kept. Resume with:\n  %s",
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
