"""What the tests share: running the CLI (``cli_runner`` forks it from a server that
imported torch once; ``cli`` holds the calls a test makes), test media made on the fly
(``media``) and reading a run folder's results (``run_files``). pyproject.toml puts
``tests`` on sys.path, so tests import ``from support.cli import rotoscope``.
"""

from pathlib import Path

# The checkout the tests run from.
ROOT = Path(__file__).resolve().parents[2]
# Test data kept in the repository (real Deforum settings files, ...).
DATA = ROOT / "tests" / "data"
