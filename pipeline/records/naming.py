"""Run folder names: short and readable, and never shared by two inputs or two jobs.

A run folder is what makes resume and change-aware re-render work, so the same input
must find its folder again however its settings change; and it holds the frames and
deliverables of that input, so another input must never land in it by accident.

- **Single run:** ``<output.root>/<name>``, where ``name`` is the input's stem unless
  ``name=`` is given. Each folder records whose it is in ``run.json`` (:class:`RunOwner`:
  the input's resolved path). When the default name is taken by a *different* input
  (``shotA/take01.mp4`` then ``shotB/take01.mp4``), the new input gets the first free
  of ``take01-shotB`` (its parent folder's name) and ``take01-<hash of its path>``;
  the same input always comes back to its own folder. A name given with ``name=`` is
  one folder name (no ``/``, not ``..``), and a folder another input's run holds is
  refused (:func:`check_owner`): taking it over would send that input to a new folder
  the next time, away from its frames.
- **Queue job** (``-m``): the folder above plus ``--<the values that differ between the
  queue's jobs>`` (``clip--guidance_scale=5``): the command line passes every other
  override in ``hydra.job.config.override_dirname.exclude_keys``
  (:func:`folder_neutral_keys`), so a value all jobs share never shows, and running the
  same queue again with another shared value reuses each job's folder. A value too long
  for a readable folder name keeps a readable prefix and gets a short hash of the whole,
  so two jobs never share a folder because their names were cut; a job whose name is
  taken by another job of the same input gets a hash of its values.
- **Length:** every name is kept under :data:`MAX_NAME` characters the same way (a
  readable prefix and a hash), so a 250-character file name still makes a valid
  folder and video name.

Hydra creates the folder before the job starts, so the choice is made by the
``run_folder`` resolver in ``conf/config.yaml``; the job then writes ``run.json``
(:func:`claim`). A queue's own records (``queue.json``, Hydra's ``multirun.yaml``) go to
a folder of their own under ``<output.root>/queues/`` (:func:`queue_folder`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from pipeline.atomic import write_text
from pipeline.errors import RotoscopeError
from pipeline.records.run_folder import RunFolder

log = logging.getLogger("rotoscope")

MAX_NAME = 96  # characters; file systems allow 255, history names add a timestamp
HASH_LENGTH = 8
JOB_SEPARATOR = "--"
QUEUES = "queues"  # under output.root: one folder per queue, its summary and Hydra's record
_UNSAFE = re.compile(r"[^\w.,=+-]+")
_QUOTES = re.compile(r"['\"]")
# Settings that never change a job's frames (how fast, where, how verbose): they never
# name a queue job's folder, so a queue re-run with another of them reuses its folders.
FOLDER_NEUTRAL_KEYS = (
    "input.path", "name", "output.root", "stages", "runtime.verbose", "runtime.log_every",
    "runtime.workers", "runtime.ray_address", "runtime.compile", "render.batch_size",
)  # fmt: skip


def folder_neutral_keys(shared: list[str]) -> list[str]:
    """What a queue leaves out of its jobs' folder names: the keys that never change a
    frame, and the ``shared`` keys (given one value for every job)."""
    return sorted({*FOLDER_NEUTRAL_KEYS, *shared})


def queue_folder(root: Path) -> Path:
    """A new folder for one queue's records: ``<root>/queues/<date>-<time>[-n]``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = root / QUEUES / stamp
    number = 2
    while candidate.exists():
        candidate = root / QUEUES / f"{stamp}-{number}"
        number += 1
    return candidate


def check_name(name: str) -> None:
    """``name`` must be one folder name under ``output.root``."""
    if not name.strip() or name in (".", "..") or any(sep in name for sep in "/\\"):
        raise RotoscopeError(
            f"name={name!r} is not a folder name",
            "give one name without '/' (output.root says where run folders go)",
        )


def short_hash(text: str) -> str:
    """A short, stable hash of ``text`` (hex), for telling names apart."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_LENGTH]


def bounded(name: str, limit: int = MAX_NAME) -> str:
    """``name`` if it is short enough, else a readable prefix plus a hash of all of it."""
    if len(name) <= limit:
        return name
    return f"{name[: limit - HASH_LENGTH - 1].rstrip('-_ .')}-{short_hash(name)}"


def job_part(overrides: str) -> str:
    """A multirun job's override set as a folder-name part (``guidance_scale=5``).

    Quotes go, characters a folder name should not hold become ``_``; a set longer than
    half of :data:`MAX_NAME` is cut to a readable prefix plus a hash of the *whole* set,
    so two sets that share a long prefix (two long prompts) still get two folders.
    """
    safe = _UNSAFE.sub("_", _QUOTES.sub("", overrides)).strip("_")
    limit = MAX_NAME // 2
    if len(safe) <= limit:
        return safe
    return f"{safe[: limit - HASH_LENGTH - 1].rstrip('_,=')}-{short_hash(overrides)}"


@dataclass(frozen=True)
class RunOwner:
    """Whose run a folder holds (``run.json``): the input, and the multirun job if any.

    ``input`` is the input's resolved path; ``job`` the job's own overrides under
    multirun (empty for a single run, whose settings may change from run to run);
    ``name`` the name that was asked for (the input's stem or ``name=``).
    """

    input: str
    job: str = ""
    name: str = ""

    def same_run(self, other: RunOwner) -> bool:
        return (self.input, self.job) == (other.input, other.job)

    def write(self, folder: RunFolder) -> None:
        write_text(folder.run_json, json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, folder: RunFolder) -> RunOwner | None:
        """The recorded owner; None for a folder without one (new, or from before run.json)."""
        try:
            data: dict[str, Any] = json.loads(folder.run_json.read_text(encoding="utf-8"))
            return cls(input=str(data["input"]), job=str(data.get("job", "")),
                       name=str(data.get("name", "")))  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError):
            return None


def owner_of(input_path: str | None, job: str = "", name: str = "") -> RunOwner:
    """The owner record for a run of ``input_path`` (resolved against the current folder;
    None, an animation made without an input, is recorded as an empty input)."""
    return RunOwner(input=resolved_input(input_path), job=job, name=name)


def resolved_input(input_path: str | None) -> str:
    """The input as a run folder records it: its resolved path, or "" for none."""
    if input_path is None:
        return ""
    return str(Path(str(input_path)).expanduser().resolve())


def folder_names(
    name: str, input_path: str | None, job: str = "", explicit: bool = False
) -> list[str]:
    """The folder names a run may take, in order of preference (see the module doc)."""
    bases = [bounded(name)]
    if not explicit:
        resolved = resolved_input(input_path)
        parent = _UNSAFE.sub("_", Path(resolved).parent.name).strip("_") if resolved else ""
        if parent:
            bases.append(bounded(f"{name}-{parent}"))
        bases.append(bounded(f"{name}-{short_hash(resolved)}"))
    suffix = job_part(job) if job else ""
    names = [f"{base}{JOB_SEPARATOR}{suffix}" if suffix else base for base in bases]
    if suffix:  # two jobs whose values read alike once made safe: the job's own hash
        names.append(f"{bases[-1]}{JOB_SEPARATOR}{bounded(suffix, MAX_NAME // 2 - 9)}-"
                     f"{short_hash(job)}")  # fmt: skip
    return names


def choose_folder(
    root: Path, name: str, input_path: str | None, job: str = "", explicit: bool = False
) -> Path:
    """The run folder for this input and job: the first name free or already its own."""
    owner = owner_of(input_path, job)
    names = folder_names(name, input_path, job, explicit)
    for candidate in names:
        recorded = RunOwner.read(RunFolder(root / candidate))
        if recorded is None or recorded.same_run(owner):
            return root / candidate
    return root / names[-1]  # the hash of the resolved path is this input's alone


def run_folder_resolver(
    root: str, name: str, input_path: str | None, job: str = "", *, _root_: Any
) -> str:
    """Hydra resolver ``${run_folder:root,name,input,[job]}``: the run folder's absolute
    path (a queue job's folder lies beside the single runs', outside the queue's own).

    ``name`` counts as given by the user unless it is still the default interpolation
    (``${run_name:...}``), which only a default name may be moved away from.
    """
    explicit = not OmegaConf.is_interpolation(_root_, "name")
    return str(choose_folder(Path(root), name, input_path, job, explicit).absolute())


def register_resolvers() -> None:
    """Register ``run_folder`` (idempotent); the CLI calls this before Hydra starts."""
    if not OmegaConf.has_resolver("run_folder"):
        OmegaConf.register_new_resolver("run_folder", run_folder_resolver)


def check_owner(folder: RunFolder, owner: RunOwner, explicit: bool) -> None:
    """Refuse a ``name=`` folder that holds another input's run (see the module doc)."""
    recorded = RunOwner.read(folder)
    if explicit and recorded is not None and recorded.input != owner.input:
        raise RotoscopeError(
            f"{folder} holds the run of {recorded.input}; name={folder.path.name} would "
            f"render {owner.input} into it",
            "give another name=, or no name (this input then gets a folder of its own)",
        )


def claim(folder: RunFolder, owner: RunOwner, explicit: bool) -> None:
    """Record ``owner`` in the folder, saying so when the folder is not the first choice
    (another input's run keeps the default name: the user learns why this one got a
    suffix)."""
    first = folder.path.parent / folder_names(owner.name, owner.input, owner.job, explicit)[0]
    if first != folder.path:
        taken = RunOwner.read(RunFolder(first))
        holder = f"the run of {taken.input}" if taken else "another job's run"
        log.info("%s holds %s; this input's run folder is %s", first, holder, folder)
    owner.write(folder)


def check_writable(path: Path) -> None:
    """Fail with one line when a run folder could not be created or written at ``path``.

    Checked before Hydra makes the folder and opens its log there (which would end in
    a traceback): the nearest existing folder on the way must be a folder, and a file
    must be creatable in it.
    """
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    hint = "set output.root to a folder you can write, or fix its permissions"
    if not existing.is_dir():
        raise RotoscopeError(f"cannot create run folder {path}: {existing} is not a folder", hint)
    log_file = RunFolder(path).log
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:  # the temporary file's own name says nothing to the user
        raise RotoscopeError(
            f"cannot write run folder {path}: {existing} is not writable ({exc.strerror})",
            hint,
        ) from exc
    try:
        if log_file.exists():
            with log_file.open("a", encoding="utf-8"):  # Hydra appends the job's log here
                pass
    except OSError as exc:
        raise RotoscopeError(
            f"cannot write run folder {path}: {log_file}: {exc.strerror}", hint
        ) from exc
