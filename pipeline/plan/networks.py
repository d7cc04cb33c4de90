"""LoRAs and textual-inversion embeddings named in prompts: tags, files and plan rows.

A1111 users write ``<lora:name:0.8>`` in a prompt and type an embedding's file name as a
word; ComfyUI users write ``embedding:name``. This module is the plain-text side of that,
shared by the plan (which resolves names to files, checks them before any model loads
and puts each frame's LoRA weights and file identities in its row) and the renderer
(which strips the tags from the text the encoder sees):

- ``<lora:name>`` / ``<lora:name:weight>`` (``<lyco:...>``, its old alias, too) loads
  ``name.safetensors`` (or ``.pt``, ``.ckpt``, ``.bin``) from ``model.lora_dir``, in a
  subfolder too, as A1111 finds them. The tag is removed from the text, as in A1111.
  Weights of the same LoRA add up (a tag twice, or a tag and ``model.loras``), as A1111
  applies each tag. LoRA tags belong in the positive prompt: in a negative prompt one is
  refused (A1111 would read it as words). ``<hypernet:...>`` and unknown ``<kind:...>``
  tags are refused with one line: no A1111 syntax is silently read as text.
- An embedding is used where its name (the file's stem) appears in a prompt as whole
  words, compared case-insensitively (A1111 compares tokens, which CLIP lowercases);
  ``embedding:name`` names one explicitly and is an error when the file is missing. A
  word that names no file is plain text, as in A1111.
- Names never reach outside their folder, because prompts and keyframe files travel
  between people: an absolute path or a ``..`` part is refused, and so is a name whose
  file (or a folder on its way) is a link to somewhere outside the folder. The folder's
  real path decides: a folder that is itself a link, and links between its own files,
  are fine.

A frame's row holds the LoRA weights in effect (blended between prompt keyframes like
the embeddings, so a LoRA at 0.8 in one key and absent in the next fades out) and the
fingerprint of every LoRA and embedding file it uses, so its key changes when a file does.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.errors import RotoscopeError
from pipeline.models.weights import file_fingerprint
from pipeline.plan.rows import PlanRow

LORA_SUFFIXES = (".safetensors", ".pt", ".ckpt", ".bin")
EMBEDDING_SUFFIXES = (".safetensors", ".pt", ".bin")
LORA_KINDS = ("lora", "lyco")
LORA_KEY = "lora:"
EMBEDDING_KEY = "embedding:"
# A1111's extra-network tag: <kind:arguments separated by colons>
NETWORK_TAG = re.compile(r"<(\w+):([^>]+)>")
# ComfyUI's explicit embedding reference; the name ends at a space, comma or bracket.
EMBEDDING_REFERENCE = re.compile(r"\bembedding:([^\s,:()\[\]<>|]+)")
# CLIP's pre-tokenizer (lowercased text): contractions, letter runs, single digits and
# runs of other characters. Embedding names match as sequences of these words.
_WORDS = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+")
_SHOWN = 12  # folder entries listed in a "not found" error


@dataclass(frozen=True)
class LoraTag:
    name: str
    weight: float


def strip_network_tags(text: str) -> str:
    """``text`` as the text encoder sees it: tags removed, ``embedding:name`` as ``name``."""
    text = NETWORK_TAG.sub("", text)
    return EMBEDDING_REFERENCE.sub(lambda match: _stem(match.group(1)), text)


def lora_tags(text: str, where: str) -> list[LoraTag]:
    """The ``<lora:...>`` tags of a positive prompt; other extra-network tags refused."""
    tags = []
    for match in NETWORK_TAG.finditer(text):
        kind, arguments = match.group(1), match.group(2).split(":")
        tag = match.group(0)
        if kind == "hypernet":
            raise RotoscopeError(
                f"{where}: {tag}: hypernetworks are not supported", "convert it to a LoRA"
            )
        if kind not in LORA_KINDS:
            raise RotoscopeError(
                f"{where}: {tag} is not an extra network rotoscope knows",
                "LoRAs are <lora:name:weight>; escape a literal '<' with a space after it",
            )
        tags.append(LoraTag(arguments[0].strip(), _lora_weight(tag, arguments[1:], where)))
    return tags


def _lora_weight(tag: str, values: list[str], where: str) -> float:
    """The multiplier of a tag: 1 when absent; A1111's separate UNet weight must agree."""
    numbers = []
    for value in values:
        try:
            numbers.append(float(value.split("=", 1)[-1]))
        except ValueError:
            raise RotoscopeError(
                f"{where}: {tag}: weight '{value}' is not a number", "write <lora:name:0.8>"
            ) from None
    if len(set(numbers)) > 1:
        raise RotoscopeError(
            f"{where}: {tag}: separate text-encoder and UNet weights are not supported",
            "give one weight: <lora:name:0.8>",
        )
    return numbers[0] if numbers else 1.0


def check_negative_prompt(text: str, where: str) -> None:
    """A negative prompt may name embeddings, not LoRAs (they change the whole model)."""
    match = NETWORK_TAG.search(text)
    if match:
        raise RotoscopeError(
            f"{where}: {match.group(0)} is in a negative prompt",
            "a LoRA changes the model for the whole frame: put its tag in the prompt",
        )


def _stem(name: str) -> str:
    """An embedding reference without folder and known suffix: the name it is matched by."""
    base = re.split(r"[\\/]", name)[-1]
    for suffix in EMBEDDING_SUFFIXES:
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base


def safe_relative_name(name: str, what: str, folder: Path, folder_key: str) -> str:
    """``name`` if its text stays inside its folder, else a one-line refusal.

    A prompt from someone else must not make rotoscope read arbitrary files: absolute
    paths, home-relative paths and ``..`` parts are refused.
    """
    parts = re.split(r"[\\/]", name)
    why = None
    if not name.strip() or "" in parts:
        why = "it has an empty part"
    elif name.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", name):
        why = "it is an absolute path"
    elif ".." in parts:
        why = "'..' climbs out of the folder"
    if why:
        raise outside(what, name, folder, folder_key, why)
    return "/".join(parts)


def outside(what: str, name: str, folder: Path, folder_key: str, why: str) -> RotoscopeError:
    """The refusal of a name that reaches outside its folder, saying why."""
    return RotoscopeError(
        f"{what} name '{name}' reaches outside {folder_key} ({folder}): {why}",
        f"name a file inside {folder_key} (a subfolder is fine: 'styles/ink')",
    )


def check_inside(path: Path, name: str, what: str, folder: Path, folder_key: str) -> Path:
    """``path`` (found for ``name`` in ``folder``) if it really lies in the folder: a link
    to a file elsewhere, or through a linked subfolder, is refused."""
    target = path.resolve()
    if not target.is_relative_to(folder.resolve()):
        raise outside(what, name, folder, folder_key, f"{path} links to {target}")
    return path


def _folder_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and path.suffix.lower() in suffixes
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def _not_found(what: str, name: str, folder: Path, folder_key: str, files: list[Path]) -> str:
    """The hint of a missing-file error: what the folder holds, closest names first."""
    if not folder.is_dir():
        return f"{folder} does not exist: set {folder_key} to the folder with your {what}s"
    names = sorted({path.stem for path in files})
    if not names:
        return f"{folder} holds no {what} files ({', '.join(LORA_SUFFIXES)})"
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    listed = close + [n for n in names if n not in close]
    more = f" and {len(listed) - _SHOWN} more" if len(listed) > _SHOWN else ""
    return f"{folder} has: {', '.join(listed[:_SHOWN])}{more}"


def find_file(
    name: str, folder: Path, suffixes: tuple[str, ...], what: str, folder_key: str
) -> Path:
    """The file ``name`` refers to in ``folder``: ``name`` plus a suffix, or a file of that
    stem in a subfolder (as A1111 finds them). Missing, ambiguous, or reaching outside the
    folder (its text, or a link): one line."""
    folder = Path(folder).expanduser()
    relative = safe_relative_name(name, what, folder, folder_key)
    if Path(relative).suffix.lower() in suffixes and (folder / relative).is_file():
        return check_inside(folder / relative, name, what, folder, folder_key)
    found = [folder / (relative + s) for s in suffixes if (folder / (relative + s)).is_file()]
    if not found and "/" not in relative:
        found = [path for path in _folder_files(folder, suffixes) if path.stem == relative]
    if len(found) == 1:
        return check_inside(found[0], name, what, folder, folder_key)
    if found:
        shown = ", ".join(str(path.relative_to(folder)) for path in found)
        raise RotoscopeError(
            f"{what} '{name}' matches several files in {folder}: {shown}",
            "name one with its subfolder or suffix",
        )
    raise RotoscopeError(
        f"{what} '{name}' not found in {folder}",
        _not_found(what, name, folder, folder_key, _folder_files(folder, suffixes)),
    )


def words(text: str) -> list[str]:
    """``text`` in CLIP's pre-tokenizer words, lowercased: how embedding names are matched."""
    return _WORDS.findall(text.lower())


def mentions(text_words: list[str], name_words: list[str]) -> bool:
    """Whether ``name_words`` occur in ``text_words`` as a contiguous run."""
    size = len(name_words)
    return size > 0 and any(
        text_words[start : start + size] == name_words
        for start in range(len(text_words) - size + 1)
    )


class Networks:
    """Resolves the LoRAs and embeddings of a plan's prompts against the two folders.

    Folders are listed once; each distinct prompt text is parsed once.
    """

    def __init__(
        self,
        lora_dir: str,
        embeddings_dir: str,
        global_loras: Mapping[str, float] | None = None,
        where: str = "command line",
    ) -> None:
        self.lora_dir = Path(lora_dir).expanduser()
        self.embeddings_dir = Path(embeddings_dir).expanduser()
        self.global_loras = dict(global_loras or {})
        self.where = where
        self._loras: dict[str, Path] = {}
        self._embedding_paths: dict[str, Path] = {}
        self._embedding_files: list[Path] | None = None
        self._tags: dict[str, dict[str, float]] = {}
        self._embeddings: dict[str, dict[str, Path]] = {}
        self._fingerprints: dict[Path, str] = {}

    def fingerprint(self, path: Path) -> str:
        """A file's identity (size and mtime), read once per Networks."""
        if path not in self._fingerprints:
            self._fingerprints[path] = file_fingerprint(path)
        return self._fingerprints[path]

    def lora_file(self, name: str) -> Path:
        if name not in self._loras:
            self._loras[name] = find_file(
                name, self.lora_dir, LORA_SUFFIXES, "LoRA", "model.lora_dir"
            )
        return self._loras[name]

    def prompt_loras(self, text: str) -> dict[str, float]:
        """LoRA weights of a positive prompt plus ``model.loras``, files checked."""
        if text not in self._tags:
            weights = dict(self.global_loras)
            for tag in lora_tags(text, self.where):
                weights[tag.name] = weights.get(tag.name, 0.0) + tag.weight
            for name in weights:
                self.lora_file(name)
            self._tags[text] = weights
        return self._tags[text]

    def embedding_files(self) -> list[Path]:
        if self._embedding_files is None:
            self._embedding_files = _folder_files(self.embeddings_dir, EMBEDDING_SUFFIXES)
        return self._embedding_files

    def embedding_file(self, name: str) -> Path:
        if name not in self._embedding_paths:
            self._embedding_paths[name] = find_file(
                name, self.embeddings_dir, EMBEDDING_SUFFIXES, "embedding", "model.embeddings_dir"
            )
        return self._embedding_paths[name]

    def prompt_embeddings(self, text: str) -> dict[str, Path]:
        """The embeddings a prompt uses: explicit ``embedding:`` references, and files whose
        name it mentions as whole words; keyed by the file's path in the folder, without
        suffix (``bad_hands``, ``negatives/bad_hands``)."""
        if text not in self._embeddings:
            found = {}
            for match in EMBEDDING_REFERENCE.finditer(text):
                path = self.embedding_file(match.group(1))
                found[self._embedding_key(path)] = path
            text_words = words(NETWORK_TAG.sub(" ", text))
            named = {embedding_name(key) for key in found}
            for path in self.embedding_files():
                if path.stem not in named and mentions(text_words, words(path.stem)):
                    path = self.embedding_file(path.stem)  # several of that name: one line
                    found[self._embedding_key(path)] = path
                    named.add(path.stem)
            self._embeddings[text] = found
        return self._embeddings[text]

    def _embedding_key(self, path: Path) -> str:
        return path.relative_to(self.embeddings_dir).with_suffix("").as_posix()

    def row_fields(
        self,
        prompt: str,
        negative_prompt: str,
        prompt_to: str | None = None,
        negative_prompt_to: str | None = None,
        blend: float = 0.0,
    ) -> dict[str, object]:
        """``loras`` and ``network_files`` of a row with these prompt fields (a row's own
        names); {} when it uses neither."""
        weights = self.prompt_loras(prompt)
        if prompt_to is not None:
            following = self.prompt_loras(prompt_to)
            weights = {
                name: (1.0 - blend) * weights.get(name, 0.0) + blend * following.get(name, 0.0)
                for name in sorted({*weights, *following})
            }
        loras = {name: round(weight, 6) for name, weight in weights.items()}
        loras = {name: weight for name, weight in loras.items() if weight != 0.0}
        files = {f"{LORA_KEY}{name}": self.fingerprint(self.lora_file(name)) for name in loras}
        for text in (prompt, negative_prompt, prompt_to, negative_prompt_to):
            for key, path in self.prompt_embeddings(text or "").items():
                files[f"{EMBEDDING_KEY}{key}"] = self.fingerprint(path)
        fields: dict[str, object] = {}
        if loras:
            fields["loras"] = loras
        if files:
            fields["network_files"] = dict(sorted(files.items()))
        return fields

    def file_of(self, key: str) -> Path:
        """The file behind a ``network_files`` key (``lora:NAME`` or ``embedding:NAME``)."""
        kind, _, name = key.partition(":")
        return self.lora_file(name) if f"{kind}:" == LORA_KEY else self.embedding_file(name)

    def refreshed(self, rows: Iterable[PlanRow]) -> list[PlanRow]:
        """``rows`` with each file's fingerprint read again (files may have changed since
        the plan was written); a file that is gone is an error naming it."""
        return [
            replace(
                row,
                network_files={key: self.fingerprint(self.file_of(key)) for key in files},
            )
            if (files := row.network_files)
            else row
            for row in rows
        ]


def embedding_name(key: str) -> str:
    """The word an embedding is activated by: its file name without folder and suffix."""
    return key.removeprefix(EMBEDDING_KEY).rsplit("/", 1)[-1]
