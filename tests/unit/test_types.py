"""The type checker over the package, as part of the test command (mypy, pinned in the lock;
its settings are pyproject.toml's [tool.mypy])."""

from __future__ import annotations

import subprocess
import sys

from support import ROOT


def test_the_package_type_checks() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, "mypy finds type errors:\n" + result.stdout + result.stderr
