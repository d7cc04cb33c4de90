"""The guard that ends a local Ray with its driver, without Ray: a stand-in driver starts
children as Ray's are known to the guard (marked, or holding a file in the session
folder it was told), and one it must spare, and is then killed or closes its guard."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest
from support import ROOT
from support.waits import wait_for_exit

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the guard reads /proc")

DRIVER = textwrap.dedent(
    """
    import subprocess, sys
    from pathlib import Path
    from pipeline.models.ray_guard import RayGuard

    session = Path(sys.argv[1])

    def sleeper(output=subprocess.DEVNULL):  # without the test's pipes, which it would hold
        return subprocess.Popen(["sleep", "300"], stdin=subprocess.DEVNULL, stdout=output)

    guard = RayGuard.start()
    with guard.marking():
        marked = sleeper()  # as ray.init's processes are marked
    with (session / "agent.log").open("w") as log:
        logging = sleeper(log)  # as a Ray agent keeps its log open in the session folder
    guard.watch(str(session))
    unmarked = sleeper()
    print(marked.pid, logging.pid, unmarked.pid, flush=True)
    if input() == "close":
        guard.close()
        print("closed", flush=True)
    sys.stdin.read()  # alive (its children unreaped) until the test lets go
    """
)


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_until_gone(pid: int) -> None:
    """Block until ``pid`` ends (told by a pidfd, see support.waits)."""
    assert wait_for_exit([pid]) == [], f"process {pid} outlived its driver"


@pytest.mark.parametrize("ending", ["killed", "closed"])
def test_rays_processes_end_with_the_driver_and_only_they(ending: str, tmp_path: Path) -> None:
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(tmp_path)], cwd=ROOT, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert driver.stdout is not None and driver.stdin is not None
    marked, logging, unmarked = (int(pid) for pid in driver.stdout.readline().split())
    try:
        if ending == "killed":
            driver.kill()  # kill -9: nothing of the driver's own code runs
        else:
            driver.stdin.write("close\n")
            driver.stdin.flush()
            assert driver.stdout.readline() == "closed\n"  # close() waited for the guard
            assert not running(marked) and not running(logging)
        wait_until_gone(marked)
        wait_until_gone(logging)
        assert running(unmarked)  # what the driver started otherwise is not Ray's
    finally:
        driver.kill()
        driver.communicate()
        for pid in (marked, logging, unmarked):
            if running(pid):
                psutil.Process(pid).kill()
