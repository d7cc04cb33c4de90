"""The documentation site: it builds strictly and offline, its configuration reference
matches the schema, every page is reachable, and the README stays a short front door."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"
GENERATOR = ROOT / "scripts" / "make_config_reference.py"
README = ROOT / "README.md"


def load_module(name: str, path: Path) -> ModuleType:
    """Import a file that is not in a package (a script, a schema written by a test)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and get_type_hints look the module up here
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return load_module("make_config_reference", GENERATOR)


def nav_pages(entries: Any) -> list[str]:
    """Every page path named in mkdocs.yml's nav, in order."""
    if isinstance(entries, str):
        return [] if "://" in entries else [entries]
    if isinstance(entries, list):
        return [page for entry in entries for page in nav_pages(entry)]
    if isinstance(entries, dict):
        return [page for value in entries.values() for page in nav_pages(value)]
    return []


# --- (a) the generated configuration reference ---------------------------------------


def test_configuration_reference_matches_the_schema(generator: ModuleType) -> None:
    committed = generator.PAGE.read_text(encoding="utf-8") if generator.PAGE.exists() else ""
    assert committed == generator.render(), (
        "docs/reference/configuration.md is stale: run "
        "`.venv/bin/python scripts/make_config_reference.py` and commit the page"
    )


def test_check_flag_fails_with_one_line_on_a_stale_page(
    generator: ModuleType,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stale = tmp_path / "docs" / "reference" / "configuration.md"
    stale.parent.mkdir(parents=True)
    stale.write_text("# Configuration reference\n\nold\n", encoding="utf-8")
    monkeypatch.setattr(generator, "PAGE", stale)
    assert generator.main(["--check"]) == 1
    message = capsys.readouterr().err
    assert message.count("\n") == 1
    assert "stale" in message and "make_config_reference.py" in message

    assert generator.main([]) == 0  # rewrites the page ...
    assert generator.main(["--check"]) == 0  # ... which is then current


SCHEMA = '''
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from omegaconf import MISSING

if TYPE_CHECKING:
    from elsewhere import Later


class Speed(Enum):
    """How fast."""

    slow = "slow"  # takes its time
    fast = "fast"


@dataclass
class Leaf:
    """A group two levels down."""

    # How deep it goes.
    depth: int = 3


@dataclass
class Unit:
    """One entry of an open map."""

    # Weights file.
    model: str = MISSING
    # Schedule: how much.
    weight: str = "1.0"


@dataclass
class Inner:
    # Where it goes.
    target: str = "${paths.outputs}/x"
    height: int | None = None
    leaf: Leaf = field(default_factory=Leaf)
    items: dict[str, Leaf] = field(default_factory=dict)


@dataclass
class Units:
    # Entries by name, each checked as a Unit: untyped so the command line can add them.
    units: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunConfig:
    # A required path.
    path: str = MISSING
    # Width and height, rounded.
    width: int | None = None
    height: int | None = None
    speed: Speed = Speed.slow
    # Several speeds | a pipe and a <tag> and *stars*.
    speeds: list[Speed] = field(default_factory=lambda: [Speed.slow, Speed.fast])
    names: list[str] = field(default_factory=list)
    maybe: Leaf | None = None
    later: Later | None = None
    inner: Inner = field(default_factory=Inner)
    control: Units = field(default_factory=Units)


def register() -> None:
    store(name="schema", node=RunConfig)
    store(name="unit", node=Unit)
'''


def test_generator_handles_every_kind_of_field(generator: ModuleType, tmp_path: Path) -> None:
    schema_file = tmp_path / "toy_schema.py"
    schema_file.write_text(textwrap.dedent(SCHEMA), encoding="utf-8")
    schema = load_module("toy_schema_for_docs_test", schema_file)
    conf = tmp_path / "conf"
    (conf / "inner").mkdir(parents=True)
    (conf / "config.yaml").write_text("defaults:\n  - inner: small\n  - _self_\n")
    (conf / "inner" / "small.yaml").write_text("# A small one.\ntarget: here\nleaf: {depth: 1}\n")
    (conf / "inner" / "empty.yaml").write_text("# Nothing set.\n")

    page = generator.reference_page(schema, schema_file, conf, lambda key: key.endswith("weight"))
    rows = {
        match.group(1): match.group(0)
        for match in re.finditer(r"^\| `([^`]+)` \|.*$", page, flags=re.MULTILINE)
    }

    assert "| required |" in rows["path"]  # omegaconf.MISSING
    assert "`null`" in rows["width"] and "`int | None`" in rows["width"]
    assert "See `width` above." in rows["height"]  # a bare field shares the comment above
    assert "`slow`: takes its time" in rows["speed"] and "How fast." in rows["speed"]
    assert "`[slow, fast]`" in rows["speeds"]  # a list of enums, with its choices
    assert r"\| a pipe and a &lt;tag&gt; and \*stars\*" in rows["speeds"]  # escaped
    assert "`[]`" in rows["names"]
    assert "`${paths.outputs}/x`" in rows["inner.target"]  # interpolations as written
    assert "`1`" not in rows["inner.target"]
    assert "inner.leaf.depth" in rows  # nested two levels
    assert "maybe.depth" in rows  # an optional group
    assert "`Later | None`" in rows["later"]  # a type only a type checker can resolve
    assert "inner.items" in rows and "inner.items.<name>.depth" in rows  # dict of groups
    # a registered dataclass behind an untyped map, found by the comment that names it
    assert "control.units.<name>.model" in rows
    assert "(schedule)" in rows["control.units.<name>.weight"]
    assert "`inner.target=here`" in page and "`inner.leaf.depth=1`" in page  # presets
    assert "**`small`**" in page  # the default preset
    assert "nothing: the schema's defaults" in page


# --- (b) the site builds, strictly and offline ----------------------------------------


def test_site_builds_strictly_and_offline(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # a banner about Material's future
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output, output
    index = (site / "index.html").read_text(encoding="utf-8")
    assert "fonts.googleapis.com" not in index  # nothing to fetch when the pages are read


# --- (c) the README is the front door -------------------------------------------------


def test_readme_is_short_and_has_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; keep it at most 200"
    assert "bash scripts/demo.sh" in text
    assert "bash scripts/test.sh" in text


def test_readme_links_resolve() -> None:
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [t.split("#")[0] for t in targets if "://" not in t and not t.startswith("#")]
    missing = [target for target in local if target and not (ROOT / target).exists()]
    assert local and missing == []


# --- (d) the navigation and the pages agree ----------------------------------------------


def test_every_nav_page_exists_and_every_page_is_in_the_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    listed = nav_pages(config["nav"])
    assert len(listed) == len(set(listed)), "a page is listed twice in mkdocs.yml's nav"
    missing = [page for page in listed if not (DOCS / page).is_file()]
    assert missing == [], f"nav entries without a page: {missing}"
    pages = sorted(path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md"))
    unlisted = [page for page in pages if page not in listed]
    assert unlisted == [], f"pages missing from mkdocs.yml's nav: {unlisted}"
