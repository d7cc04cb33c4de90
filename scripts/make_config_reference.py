"""Write the configuration reference (docs/reference/configuration.md) from the schema.

Everything on the page comes from two places, so it cannot drift from the code:

* ``pipeline/config/schema.py``: the dataclasses registered as the Hydra schema
  (``RunConfig`` and the groups nested in it, and any other registered dataclass, such as
  a ControlNet unit). Types and defaults are read from the dataclasses themselves; a
  field's description is the block of ``#`` comment lines just above it (a field without
  one shares the comment of the field above it, as the schema writes groups of related
  fields); an enum's choices are its members with their trailing comments.
* ``pipeline/conf/<group>/*.yaml``: the presets of each config group, with their leading
  comments and the keys they set; ``config.yaml``'s defaults list says which is picked
  when none is named.

    python scripts/make_config_reference.py           rewrite the page
    python scripts/make_config_reference.py --check   exit 1 if the page is stale
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import enum
import importlib
import io
import re
import sys
import tokenize
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_FILE = ROOT / "pipeline" / "config" / "schema.py"
SCHEMA_MODULE = "pipeline.config.schema"
CONF_DIR = ROOT / "pipeline" / "conf"
PAGE = ROOT / "docs" / "reference" / "configuration.md"
ROOT_CLASS = "RunConfig"
COMMAND = "python scripts/make_config_reference.py"
OMEGACONF_MISSING = "???"  # omegaconf.MISSING: a value that must be given

# Where each group is explained in prose (relative to docs/reference/). Only a pointer:
# a group missing here simply has no "Guide" line.
GUIDES = {
    "": ("prompts and generation", "../guides/prompts.md"),
    "paths": ("where files live", "../getting-started.md#where-files-live"),
    "input": ("stylizing a video", "../guides/video.md"),
    "model": ("models and samplers", "../guides/models.md"),
    "output": ("stylizing a video", "../guides/video.md#output-formats"),
    "runtime": ("speed and scale", "../guides/scale.md"),
    "render": ("speed and scale", "../guides/scale.md#batching"),
    "upscale": ("render size, upscaling, frame rate", "../guides/finishing.md#upscaling"),
    "animation": ("loopback animation", "../guides/loopback.md"),
    "controlnet": ("ControlNet", "../guides/controlnet.md"),
    "coherence": ("temporal coherence", "../guides/coherence.md"),
    "mask": ("masks", "../guides/masks.md"),
}


# --- what the source says: comments and docstrings ---------------------------------


@dataclasses.dataclass
class ClassSource:
    """The comments and docstring of one class in the schema file."""

    docstring: str = ""
    # field (or enum member) name -> its comment, in declaration order
    comments: dict[str, str] = dataclasses.field(default_factory=dict)


def comment_lines(source: str) -> tuple[dict[int, str], set[int]]:
    """Every comment by line number, and the lines that hold nothing but a comment."""
    comments: dict[int, str] = {}
    code_lines: set[int] = set()
    skip = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string[1:].strip()
        elif token.type not in skip and token.type != tokenize.ENDMARKER:
            code_lines.update(range(token.start[0], token.end[0] + 1))
    alone = {line for line in comments if line not in code_lines}
    return comments, alone


def read_schema_source(path: Path) -> dict[str, ClassSource]:
    """Docstrings and field comments of every class in the schema file, by class name.

    A field's comment is the block of comment-only lines directly above it, followed by a
    comment at the end of its own (last) line; enum members usually have only the latter.
    """
    source = path.read_text(encoding="utf-8")
    comments, alone = comment_lines(source)
    classes: dict[str, ClassSource] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        found = ClassSource(docstring=clean_docstring(ast.get_docstring(node) or ""))
        for statement in node.body:
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                name = statement.target.id
            elif (
                isinstance(statement, ast.Assign)
                and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name)
            ):
                name = statement.targets[0].id
            elif (named := namespace_assignment(statement)) is not None:
                name = named  # an enum member whose name is not an identifier ("3d")
            else:
                continue
            above: list[str] = []
            line = statement.lineno - 1
            while line in alone:
                above.insert(0, comments[line])
                line -= 1
            end = statement.end_lineno or statement.lineno
            trailing = [comments[end]] if end in comments and end not in alone else []
            text = " ".join(part for part in [*above, *trailing] if part)
            if text:
                found.comments[name] = text
        classes[node.name] = found
    return classes


def namespace_assignment(statement: ast.stmt) -> str | None:
    """The name ``locals()["name"] = ...`` assigns in a class body, or None."""
    if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1):
        return None
    target = statement.targets[0]
    if (
        isinstance(target, ast.Subscript)
        and isinstance(target.value, ast.Call)
        and isinstance(target.value.func, ast.Name)
        and target.value.func.id == "locals"
        and isinstance(target.slice, ast.Constant)
        and isinstance(target.slice.value, str)
    ):
        return target.slice.value
    return None


def clean_docstring(text: str) -> str:
    """A docstring as one paragraph of page text."""
    return " ".join(text.split())


def registered_classes(path: Path) -> list[str]:
    """Names of the classes the schema file stores in Hydra's ConfigStore (``node=...``)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == "node" and isinstance(keyword.value, ast.Name):
                    names.append(keyword.value.id)
    return names


# --- what the dataclasses say: types and defaults -----------------------------------


@dataclasses.dataclass
class Row:
    key: str
    type: str
    default: str
    description: str


@dataclasses.dataclass
class Group:
    path: str  # "" for the top level, "input", "controlnet.units.<name>", ...
    cls: type
    intro: str
    rows: list[Row] = dataclasses.field(default_factory=list)


def unwrap_optional(tp: Any) -> Any:
    """``X | None`` -> ``X``; anything else unchanged."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def type_text(tp: Any) -> str:
    """A type as Python writes it: ``str | None``, ``list[Reanchor]``, ``dict[str, Any]``."""
    if tp is type(None):
        return "None"
    if tp is Any:
        return "Any"
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_text(arg) for arg in args)
    if origin is typing.Literal:
        return " | ".join(repr(arg) for arg in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_text(arg) for arg in args)}]" if args else name
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def enums_in(tp: Any) -> Iterator[type[enum.Enum]]:
    """The enum classes a type is made of (``list[Reanchor]`` -> Reanchor)."""
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        yield tp
    for arg in typing.get_args(tp):
        yield from enums_in(arg)


def dataclass_in(tp: Any) -> tuple[type, str] | None:
    """A nested group's dataclass and the path suffix its keys take, or None.

    ``Cfg`` and ``Cfg | None`` nest under the field's name; ``dict[str, Cfg]`` under
    ``<name>`` entries of it, ``list[Cfg]`` under its items.
    """
    tp = unwrap_optional(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return tp, ""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is dict and len(args) == 2:
        inner = unwrap_optional(args[1])
        if isinstance(inner, type) and dataclasses.is_dataclass(inner):
            return inner, ".<name>"
    if origin is list and len(args) == 1:
        inner = unwrap_optional(args[0])
        if isinstance(inner, type) and dataclasses.is_dataclass(inner):
            return inner, "[]"
    return None


def field_types(cls: type) -> dict[str, Any]:
    """Each field's type, resolved; a name the module cannot resolve at run time (an
    import only for type checkers) stays the annotation's text."""
    try:
        return typing.get_type_hints(cls)
    except NameError:
        pass
    namespace = vars(sys.modules[cls.__module__])
    resolved: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        try:  # what get_type_hints does, one field at a time
            resolved[item.name] = (
                eval(item.type, namespace) if isinstance(item.type, str) else item.type
            )
        except NameError:
            resolved[item.name] = item.type
    return resolved


def reachable(cls: type, seen: set[type] | None = None) -> set[type]:
    """``cls`` and every dataclass its fields' types lead to."""
    seen = set() if seen is None else seen
    seen.add(cls)
    for tp in field_types(cls).values():
        nested = dataclass_in(tp)
        if nested is not None and nested[0] not in seen:
            reachable(nested[0], seen)
    return seen


def value_text(value: Any) -> str:
    """A default as it is written in YAML or on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return value_text(value.value)
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(value_text(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{value_text(k)}: {value_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def default_text(item: dataclasses.Field[Any]) -> str:
    if item.default is not dataclasses.MISSING:
        value = item.default
    elif item.default_factory is not dataclasses.MISSING:
        value = item.default_factory()
    else:
        return "required"
    if isinstance(value, str) and value == OMEGACONF_MISSING:
        return "required"
    return code(value_text(value))


def walk(
    cls: type,
    path: str,
    intro: str,
    sources: dict[str, ClassSource],
    extra: dict[str, type],
    is_schedule: typing.Callable[[str], bool],
) -> list[Group]:
    """The group of ``cls`` at ``path`` and every group nested in it, in field order.

    ``extra`` holds registered dataclasses that no field's type names (an untyped
    ``dict[str, Any]`` keeps a map open on the command line); one nests under the field
    whose comment names it.
    """
    source = sources.get(cls.__name__, ClassSource())
    hints = field_types(cls)
    group = Group(path, cls, intro)
    children: list[Group] = []
    shared: tuple[str, str] | None = None  # (field, comment) the next bare field shares
    for item in dataclasses.fields(cls):
        tp = hints[item.name]
        key = f"{path}.{item.name}" if path else item.name
        comment = source.comments.get(item.name, "")
        nested = dataclass_in(tp)
        mentioned = [name for name in extra if comment and re.search(rf"\b{name}\b", comment)]
        if nested is None and mentioned and typing.get_origin(unwrap_optional(tp)) is dict:
            nested = (extra.pop(mentioned[0]), ".<name>")
        if nested is not None:
            child_cls, suffix = nested
            child_source = sources.get(child_cls.__name__, ClassSource())
            child_intro = " ".join(part for part in (comment, child_source.docstring) if part)
            if suffix:  # the map itself is a key too (presets fill it, + adds entries)
                group.rows.append(row(key, tp, item, markdown(comment), sources, is_schedule))
            children += walk(child_cls, key + suffix, child_intro, sources, extra, is_schedule)
            shared = None
            continue
        if comment:
            shared = (item.name, comment)
            description = markdown(comment)
        elif next(enums_in(tp), None) is not None:
            description = ""  # the enum's own docstring and choices say it
        elif shared is not None:
            description = f"See `{shared[0]}` above."
        else:
            description = ""
        group.rows.append(row(key, tp, item, description, sources, is_schedule))
    return [group, *children]


def row(
    key: str,
    tp: Any,
    item: dataclasses.Field[Any],
    description: str,
    sources: dict[str, ClassSource],
    is_schedule: typing.Callable[[str], bool],
) -> Row:
    """One key's row; ``description`` is Markdown already."""
    text = description
    parts = [text] if text else []
    for choice in dict.fromkeys(enums_in(tp)):  # each enum once, in order
        parts.append(enum_text(choice, sources))
    kind = code(type_text(tp))
    if is_schedule(key.replace("<name>", "unit")):
        kind += " (schedule)"
    return Row(key, kind, default_text(item), "<br>".join(parts) or "&nbsp;")


def enum_text(choice: type[enum.Enum], sources: dict[str, ClassSource]) -> str:
    """``One of: `a`: what a is, `b`, ...``, preceded by the enum's docstring."""
    source = sources.get(choice.__name__, ClassSource())
    items = []
    for member in choice:
        comment = source.comments.get(member.name, "")
        value = code(value_text(member.value))
        items.append(f"{value}: {markdown(comment)}" if comment else value)
    lead = f"{markdown(source.docstring)} " if source.docstring else ""
    return lead + "One of:<br>" + "<br>".join(items)


# --- what the presets say ------------------------------------------------------------


@dataclasses.dataclass
class Preset:
    name: str
    comment: str
    sets: list[str]


def preset_of(path: Path, group: str) -> Preset:
    text = path.read_text(encoding="utf-8")
    package = group
    lead: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            break
        body = stripped[1:].strip()
        if body.startswith("@package"):
            package = body.removeprefix("@package").strip()
        elif body:
            lead.append(body)
    if package == "_global_":
        package = ""
    data = yaml.safe_load(text) or {}
    data.pop("defaults", None)
    sets = [f"{key}={value_text(value)}" for key, value in flatten(data, package)] if data else []
    return Preset(path.stem, " ".join(lead), sets)


def flatten(data: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(data, dict) and data:
        for key, value in data.items():
            yield from flatten(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, data


def default_presets(conf: Path) -> dict[str, str]:
    """Group -> the preset config.yaml's defaults list picks."""
    primary = conf / "config.yaml"
    data = yaml.safe_load(primary.read_text(encoding="utf-8")) if primary.exists() else None
    data = data or {}
    chosen: dict[str, str] = {}
    for entry in data.get("defaults", []):
        if isinstance(entry, dict):
            for group, preset in entry.items():
                if isinstance(preset, str) and not str(group).startswith("override"):
                    chosen[str(group)] = preset
    return chosen


def preset_groups(conf: Path) -> list[tuple[str, list[Preset]]]:
    groups: list[tuple[str, list[Preset]]] = []
    if not conf.is_dir():
        return groups
    for folder in sorted(p for p in conf.iterdir() if p.is_dir() and p.name != "hydra"):
        presets = [preset_of(path, folder.name) for path in sorted(folder.glob("*.yaml"))]
        if presets:
            groups.append((folder.name, presets))
    return groups


# --- the page ------------------------------------------------------------------------

CODE_SPAN = re.compile(r"(``.+?``|`[^`]+`)")


def markdown(text: str) -> str:
    """Comment text as Markdown: RST's ``code`` becomes `code`, and what Markdown would
    read as markup outside code spans (<tags>, emphasis, links, table pipes) is escaped."""
    parts = []
    for number, piece in enumerate(CODE_SPAN.split(text)):
        if number % 2:
            inner = piece.strip("`")
            parts.append(code(inner))
            continue
        piece = re.sub(r"([\\*_\[\]{}|])", r"\\\1", piece)
        parts.append(piece.replace("<", "&lt;").replace(">", "&gt;"))
    return "".join(parts)


def code(text: str) -> str:
    """An inline code span (a pipe inside one does not split a table cell)."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def anchor(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "top-level"


def render() -> str:
    """The page, as it should be committed."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    schema = importlib.import_module(SCHEMA_MODULE)
    schedulable = importlib.import_module("pipeline.config.schedulable")
    return reference_page(schema, SCHEMA_FILE, CONF_DIR, schedulable.is_schedule_key)


def reference_page(
    schema: types.ModuleType,
    schema_file: Path,
    conf_dir: Path,
    is_schedule: typing.Callable[[str], bool],
) -> str:
    """The page for the schema module ``schema`` (whose source is ``schema_file``) and the
    presets under ``conf_dir``; ``is_schedule`` says which keys hold schedules."""
    sources = read_schema_source(schema_file)
    root = getattr(schema, ROOT_CLASS)
    typed = reachable(root)
    extra = {
        name: getattr(schema, name)
        for name in registered_classes(schema_file)
        if dataclasses.is_dataclass(getattr(schema, name, None))
        and getattr(schema, name) not in typed
    }
    groups = walk(root, "", "", sources, extra, is_schedule)
    for name, cls in extra.items():  # registered, but neither typed nor named by a field
        intro = sources.get(name, ClassSource()).docstring
        groups += walk(cls, name, intro, sources, {}, is_schedule)

    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by scripts/make_config_reference.py from pipeline/config/schema.py",
        f"     and pipeline/conf/. Do not edit by hand: run `{COMMAND}`. -->",
        "",
        "Every key below is set on the command line as `key=value` (or in a keyframe file's",
        "`settings:`), and a group's preset is picked as `group=preset`. The command checks",
        "every key and type before anything runs. This page is generated from the schema's",
        "dataclasses (`pipeline/config/schema.py`) and the presets in `pipeline/conf/`;",
        "the [guides](../index.md) explain how the settings work together.",
        "",
        "- **Type** is the schema's type. *(schedule)* marks a value that takes a number or a",
        "  Deforum schedule, evaluated per frame (see [Schedule syntax](schedules.md)).",
        "- **Default** is the schema's default; a preset may set another (see the presets",
        "  below). *required* means there is no default: the run stops until it is given.",
        "- `${group.key}` in a default is the value of that other key (`${.home}` is a key",
        "  of the same group); `${name:...}` is computed when the config is composed",
        "  (`rotoscope_home`: the home folder, `run_name`: the input's file or folder name).",
        "",
        "## Groups and presets {#groups}",
        "",
        "Each group's presets are the files in `pipeline/conf/<group>/` (`conf/` in a",
        "checkout). The preset in bold is picked when the command line names none.",
        "",
        "| group | presets |",
        "| --- | --- |",
    ]
    chosen = default_presets(conf_dir)
    listed = preset_groups(conf_dir)
    for group, presets in listed:
        names = [
            f"**{code(p.name)}**" if chosen.get(group) == p.name else code(p.name) for p in presets
        ]
        out.append(f"| [`{group}`](#presets-{anchor(group)}) | {', '.join(names)} |")
    for group, presets in listed:
        out += [
            "",
            f"### `{group}` presets {{#presets-{anchor(group)}}}",
            "",
            "| preset | what it is | sets |",
            "| --- | --- | --- |",
        ]
        for preset in presets:
            name = code(preset.name) + (" (default)" if chosen.get(group) == preset.name else "")
            sets = ", ".join(code(item) for item in preset.sets) or "nothing: the schema's defaults"
            out.append(f"| {name} | {markdown(preset.comment) or '&nbsp;'} | {sets} |")

    for section in groups:
        title = "Top level" if not section.path else f"`{section.path}`"
        heading = f"## {title} {{#{anchor(section.path)}}}"
        out += ["", heading, ""]
        if section.intro:
            out += [markdown(section.intro), ""]
        guide = GUIDES.get(section.path)
        if guide:
            out += [f"Guide: [{guide[0]}]({guide[1]}).", ""]
        if not section.rows:
            out.append("No keys of its own: see the groups below.")
            continue
        out += ["| key | type | default | what it does |", "| --- | --- | --- | --- |"]
        for item in section.rows:
            out.append(f"| {code(item.key)} | {item.type} | {item.default} | {item.description} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the committed page is stale; write nothing"
    )
    args = parser.parse_args(argv)
    page = render()
    relative = PAGE.relative_to(ROOT) if PAGE.is_relative_to(ROOT) else PAGE
    if args.check:
        current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
        if current != page:
            print(f"{relative} is stale: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(page, encoding="utf-8")
    print(f"wrote {relative}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
