"""The guard that ends a local Ray with its driver, without Ray: a stand-in driver marks a
child as Ray's processes are marked, and is then killed or closes its guard."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import psutil
import pytest
from support import ROOT

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the guard reads /proc")

# A driver: a guard, a marked child (as ray.init's processes are) and an unmarked one.
DRIVER = textwrap.dedent(
    """
    import subprocess, time
    from pipeline.render.executors.ray.guard import RayGuard

    def sleeper():  # without the test's pipes, which it would hold open
        quiet = subprocess.DEVNULL
        return subprocess.Popen(["sleep", "300"], stdin=quiet, stdout=quiet)

    guard = RayGuard.start()
    with guard.marking():
        marked = sleeper()
    unmarked = sleeper()
    print(marked.pid, unmarked.pid, flush=True)
    if input() == "close":
        guard.close()
        print("closed", flush=True)
    time.sleep(300)
    """
)


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_until_gone(pid: int, timeout: float = 30) -> None:
    """Block until ``pid`` ends (the deadline only keeps a failure from hanging)."""
    deadline = time.monotonic() + timeout
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(pid), f"process {pid} outlived its driver"


@pytest.mark.parametrize("ending", ["killed", "closed"])
def test_the_marked_processes_end_with_the_driver_and_only_they(ending: str) -> None:
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert driver.stdout is not None and driver.stdin is not None
    marked, unmarked = (int(pid) for pid in driver.stdout.readline().split())
    try:
        if ending == "killed":
            driver.kill()  # kill -9: nothing of the driver's own code runs
        else:
            driver.stdin.write("close\n")
            driver.stdin.flush()
            assert driver.stdout.readline() == "closed\n"  # close() waited for the guard
            assert not running(marked)
        wait_until_gone(marked)
        assert running(unmarked)  # what the driver started outside marking() is not Ray's
    finally:
        driver.kill()
        driver.communicate()
        psutil.Process(unmarked).kill()
