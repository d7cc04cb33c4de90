"""House rules of the package layout, checked on the source (see README, Development)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

from support import ROOT

from pipeline.config.schedulable import CONTROL_UNIT_SCHEDULES, SCHEDULES
from pipeline.plan.rows import PlanRow

PACKAGE = ROOT / "pipeline"
# Packages that must import without torch or diffusers (a dry run and a re-encode stay fast).
LIGHT_PACKAGES = ("config", "records", "interop", "source", "plan", "assemble")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"


def imports_of(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) for every import that runs (TYPE_CHECKING blocks skipped)."""
    found: list[tuple[str, list[str]]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and is_type_checking(child):
                continue
            if isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.append((child.module, [alias.name for alias in child.names]))
            elif isinstance(child, ast.Import):
                found.extend((alias.name, []) for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def pipeline_imports(path: Path) -> set[str]:
    """The pipeline modules ``path`` imports (``from pkg import module`` counts as module)."""
    targets = set()
    for module, names in imports_of(path):
        if not module.startswith("pipeline"):
            continue
        submodules = [f"{module}.{name}" for name in names if f"{module}.{name}" in MODULES]
        targets.update(submodules or [module])
    return targets


# The layers, top to bottom: the commands and the job; the stages; their tools; the
# configuration and the run folder's records; the base modules. Each package may import
# the packages its row names and nothing else (lazy imports included); together with
# the loop check below this keeps every arrow pointing down.
BASE = frozenset({"pipeline", "errors", "atomic", "ffmpeg_exe"})
STAGES = frozenset({"plan", "render", "upscale", "assemble", "metrics", "report"})
TOOLS = frozenset({"source", "control", "animation", "models", "interop"})
LOW = frozenset({"config", "records"})
ALLOWED: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "atomic": frozenset({"errors"}),
    "ffmpeg_exe": frozenset({"errors"}),
    "config": BASE,
    "records": BASE | {"config"},
    "models": BASE | {"config"},
    "source": BASE | {"config", "records"},
    "animation": BASE | {"config", "records"},
    "interop": BASE | {"config", "models"},
    "control": BASE | {"config", "records", "source", "models"},
    "plan": BASE | LOW | {"source", "control", "models", "interop", "animation"},
    "render": BASE | LOW | TOOLS - {"interop"} | {"plan"},
    "upscale": BASE | LOW | TOOLS - {"interop"} | {"plan"},
    "assemble": BASE | LOW | {"source", "control", "animation", "plan", "upscale"},
    "metrics": BASE | LOW | {"source", "animation", "plan"},
    "report": BASE | LOW | {"source", "plan", "metrics"},
    "run": BASE | LOW | TOOLS | STAGES,
    "cli": BASE | LOW | TOOLS | STAGES | {"run"},
    "testing": BASE | LOW | TOOLS | STAGES,
}


def package_of(module: str) -> str:
    """``pipeline.records.manifest`` -> ``records``; ``pipeline`` itself -> ``pipeline``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "pipeline"


def all_imports(path: Path) -> list[str]:
    """Every pipeline module ``path`` imports, wherever the import is (functions,
    TYPE_CHECKING blocks)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return [name for name in found if name == "pipeline" or name.startswith("pipeline.")]


def package_imports() -> dict[str, dict[str, list[str]]]:
    """package -> imported package -> the modules that import it."""
    graph: dict[str, dict[str, list[str]]] = {}
    for name, path in MODULES.items():
        source = package_of(name)
        if source == "__main__":
            continue
        for target in map(package_of, all_imports(path)):
            if target != source:
                graph.setdefault(source, {}).setdefault(target, []).append(name)
    return graph


def test_every_package_has_a_row_in_the_layer_table() -> None:
    packages = {package_of(name) for name in MODULES} - {"pipeline", "__main__", "conf"}
    assert packages <= set(ALLOWED)


def test_imports_are_absolute() -> None:
    """The layer checks read ``pipeline.x`` names: a relative import would slip past them."""
    relative = [
        f"{name}:{node.lineno}"
        for name, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and node.level > 0
    ]
    assert relative == []


def test_imports_follow_the_layer_table() -> None:
    offenders = [
        f"{module} imports pipeline.{target} ({source} may import: "
        f"{', '.join(sorted(ALLOWED[source]))})"
        for source, targets in package_imports().items()
        for target, modules in targets.items()
        if target not in ALLOWED[source]
        for module in modules
    ]
    assert offenders == []


def test_packages_do_not_import_each_other_in_loops() -> None:
    graph = {source: set(targets) for source, targets in package_imports().items()}
    loops = []

    def reach(start: str, node: str, trail: list[str], seen: set[str]) -> None:
        for target in sorted(graph.get(node, ())):
            if target == start:
                loops.append(" -> ".join([*trail, target]))
            elif target not in seen:
                seen.add(target)
                reach(start, target, [*trail, target], seen)

    for package in sorted(graph):
        reach(package, package, [package], set())
    assert loops == []


def test_each_package_docstring_names_what_it_may_import() -> None:
    """The "May import" sentence of a package's docstring agrees with the table."""
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        package = init.parent.name
        if package == "conf":  # Hydra's config files, not code
            continue
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        sentence = doc[doc.lower().find("may import") :]
        assert "may import" in sentence.lower(), package
        if ALLOWED[package] >= STAGES:
            continue  # the top layers name what they may not import instead
        named = {
            name.removeprefix("pipeline.").split(".")[0]
            for name in re.findall(r"``([\w.]+)``", sentence.split("never")[0])
        }
        named = {name for name in named if name in ALLOWED} - BASE
        assert named == set(ALLOWED[package]) - BASE, package


def test_no_private_names_are_imported_across_modules() -> None:
    offenders = [
        f"{name}: from {module} import {imported}"
        for name, path in MODULES.items()
        for module, names in imports_of(path)
        if module.startswith("pipeline")
        for imported in names
        if imported.startswith("_") and not imported.startswith("__")
    ]
    assert offenders == []


def test_there_are_no_import_cycles() -> None:
    graph = {name: pipeline_imports(path) - {name} for name, path in MODULES.items()}
    cycles = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def walk(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if target not in MODULES:
                continue
            if state.get(target) == 1:
                cycles.append(" -> ".join([*trail[trail.index(target) :], target]))
            elif target not in state:
                walk(target, [*trail, target])
        state[node] = 2

    for name in MODULES:
        if name not in state:
            walk(name, [name])
    assert cycles == []


def test_light_packages_import_without_torch_or_diffusers() -> None:
    light = [
        name for name in MODULES if name.split(".")[1:2] and name.split(".")[1] in LIGHT_PACKAGES
    ]
    code = (
        "import importlib, json, sys\n"
        f"for name in {light!r}: importlib.import_module(name)\n"
        "heavy = ('torch', 'diffusers', 'transformers')\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert json.loads(result.stdout) == []


def test_testing_package_is_never_imported_by_runtime_code() -> None:
    runtime = {
        name: path for name, path in MODULES.items() if not name.startswith("pipeline.testing")
    }
    offenders = [
        name for name, path in runtime.items() if any(
            target.startswith("pipeline.testing") for target in pipeline_imports(path)
        )
    ]  # fmt: skip
    assert offenders == []


def test_files_are_replaced_only_by_the_atomic_write_helper() -> None:
    offenders = []
    for name, path in MODULES.items():
        if name in ("pipeline.atomic",) or name.startswith("pipeline.testing"):
            continue
        text = path.read_text(encoding="utf-8")
        if "os.replace(" in text or ".rename(" in text or "os.rename(" in text:
            offenders.append(name)
    assert offenders == []


RUN_FOLDER_FILES = (
    "manifest.jsonl", "report.json", "plan.jsonl", "plan.csv", "plan.png", "source.json",
    "config.yaml", "maps.jsonl", "preview.mp4", "rotoscope.log", ".lock", "run.json",
    "deliverables.json", "history",
)  # fmt: skip


def code_strings(path: Path) -> list[str]:
    """String constants of a module, docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings
    ]  # fmt: skip


def test_run_folder_file_names_live_in_run_folder_alone() -> None:
    offenders = sorted(
        f"{name}: {text!r}"
        for name, path in MODULES.items()
        if name != "pipeline.records.run_folder"
        for text in code_strings(path)
        if any(text == file or text.endswith("/" + file) for file in RUN_FOLDER_FILES)
    )
    assert offenders == []


def test_hydra_writes_the_log_where_run_folder_says() -> None:
    import yaml

    from pipeline.records.run_folder import RunFolder

    job_name = yaml.safe_load((PACKAGE / "conf/config.yaml").read_text())["hydra"]["job"]["name"]
    logging_conf = (PACKAGE / "conf/hydra/job_logging/rotoscope.yaml").read_text()
    assert "${hydra.runtime.output_dir}/${hydra.job.name}.log" in logging_conf
    assert f"{job_name}.log" == RunFolder(Path("x")).log.name


def test_every_schedule_fills_a_plan_row_field() -> None:
    row_fields = {field.name for field in fields(PlanRow)}
    assert {item.name for item in SCHEDULES} <= row_fields
    assert set(CONTROL_UNIT_SCHEDULES) == {"weight", "start", "end"}


def test_the_version_is_pyprojects() -> None:
    """One version: pyproject.toml's, read from the installed metadata into every PNG."""
    import tomllib

    import pipeline

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert pipeline.__version__ == declared
