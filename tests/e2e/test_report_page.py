"""The run's and the queue's pages, looked at in headless Chromium (issue 23).

One finished run with an earlier look (shared by the module), one run stopped mid-way and
resumed, one two-job queue, and ``rotoscope-serve`` in front of them. The browser is the
system's Chromium driven by Playwright (``support.browser``); pages are opened from
``file://`` as a user opens them, and every request they make is recorded.

Set ``ROTOSCOPE_SCREENSHOTS=<folder>`` to save the screenshots the docs show.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.browser import chromium
from support.cli import rotoscope, start_forked, wait_for_log
from support.media import make_video
from support.run_files import manifest_lines, queue_of, report_of
from support.waits import wait_for_file

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

SCREENSHOTS = os.environ.get("ROTOSCOPE_SCREENSHOTS")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("clip") / "dance.mp4", frames=4, fps=8)


@pytest.fixture(scope="module")
def base(tiny_models, clip: Path) -> tuple[str, ...]:
    return (
        f"input.path={clip}", f"model.path={tiny_models.sd15}", "runtime=cpu", "steps=2",
        "strength=0:(0.4), 3:(0.6)", "prompt=ink drawing of a dancer",
    )  # fmt: skip


@pytest.fixture(scope="module")
def finished(base: tuple[str, ...], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run whose first look (another guidance scale) is kept in history/."""
    home = tmp_path_factory.mktemp("finished")
    for guidance in ("7", "5"):
        result = rotoscope(*base, f"guidance_scale={guidance}", cwd=home)
        assert result.returncode == 0, result.stderr
    return home / "outputs/dance"


class Watched:
    """A page whose console errors, page errors and requests are recorded."""

    def __init__(self, browser: Browser) -> None:
        self.page: Page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("request", lambda request: self.requests.append(request.url))

    def network(self, allowed: str = "file://") -> list[str]:
        """Requests that did not go to ``allowed`` (file:// or the test's server)."""
        return [url for url in self.requests if not url.startswith(allowed)]

    def shoot(self, name: str, full_page: bool = True) -> None:
        if SCREENSHOTS:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SCREENSHOTS) / name), full_page=full_page)


def test_a_finished_runs_page(browser: Browser, finished: Path) -> None:
    watched = Watched(browser)
    page = watched.page
    page.goto((finished / "report.html").as_uri())
    assert page.inner_text("#status") == "DONE" or page.inner_text("#status").lower() == "done"
    assert "done: 4 rendered" in page.inner_text("#closing")
    assert "guidance_scale=5" in page.inner_text("#command")
    # one thumbnail per frame, each loaded
    assert page.locator("#sheet .thumb").count() == 4
    assert page.evaluate(
        "[...document.querySelectorAll('#sheet img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    # the flicker chart: output and source, their means, what is better
    flicker = page.inner_text("#flicker")
    assert "lower is steadier" in flicker and "source (reference), mean" in flicker
    assert page.locator("#flicker polyline").count() == 2
    page.hover("#flicker .hover >> nth=1")
    assert page.inner_text("#flicker .readout").startswith("frame 2: source (reference)")
    # the plan chart: the scheduled strength varies, the rest is one line of constants
    assert page.locator("#plan figcaption", has_text="strength").count() == 1
    assert "guidance_scale 5" in page.inner_text("#plan .constants")
    watched.shoot("report.png")
    # a frame's details
    page.click("#sheet .thumb[data-i='2']")
    details = page.locator("dialog#frame")
    assert details.is_visible()
    text = details.inner_text()
    assert "Frame 2 — diffused" in text and "seed" in text and "sampler" in text
    assert "Steps: 2" in text  # the PNG's A1111 parameters
    assert "ink drawing of a dancer" in text
    watched.shoot("report-frame.png", full_page=False)
    page.click("dialog#frame button.close")
    # the A/B wipe against the first look plays
    assert "guidance_scale" not in page.inner_text("#wipe select")  # labelled by time, prompt
    page.fill("#wipe .split", "30")
    assert "30%" in page.get_attribute("#wipe img.b", "style")
    page.click("#wipe button")
    page.wait_for_function("document.getElementById('wipe').dataset.shown !== '0'")
    page.click("#wipe button")  # pause
    page.locator("#wipe").scroll_into_view_if_needed()
    watched.shoot("report-wipe.png", full_page=False)
    assert watched.errors == [] and watched.network() == []


def test_a_page_saved_mid_run_shows_the_frames_so_far(
    browser: Browser, base: tuple[str, ...], tmp_path: Path
) -> None:
    run_dir = tmp_path / "outputs/dance"
    page_file = run_dir / "report.html"
    job = start_forked(*base, cwd=tmp_path, env={"ROTOSCOPE_PAUSE_AT": "render:3"})
    wait_for_log(run_dir, "paused at render safe point 3", job)

    # the page is refreshed by a thread of its own (and the writer's pool may still be
    # committing the frames before the pause): wait until it shows what is on disk
    def shows_what_is_on_disk() -> bool:
        made = len(manifest_lines(run_dir))
        return made > 0 and page_file.read_text().count("class='thumb'") == made

    assert wait_for_file(page_file, shows_what_is_on_disk), "the page never showed the frames"
    made = len(manifest_lines(run_dir))
    watched = Watched(browser)
    watched.page.goto(page_file.as_uri())
    assert watched.page.inner_text("#status").lower() == "running"
    assert 0 < watched.page.locator("#sheet .thumb").count() == made < 4
    assert f"{made} of 4 frames" in watched.page.inner_text("#progress")
    watched.shoot("report-running.png")
    job.send_signal(signal.SIGINT)
    job.communicate()
    assert report_of(run_dir)["status"] == "interrupted"
    resumed = rotoscope(*base, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    watched.page.reload()
    assert watched.page.inner_text("#status").lower() == "done"
    assert watched.page.locator("#sheet .thumb").count() == 4
    assert watched.errors == [] and watched.network() == []


def test_a_queues_page_links_to_each_jobs_report(
    browser: Browser, base: tuple[str, ...], tmp_path: Path
) -> None:
    queue = ("-m", *base, "seed=1,2", "stages=[plan,render]")
    # while the first job runs, the page lists it as running and the second as queued
    paused = start_forked(*queue, cwd=tmp_path, env={"ROTOSCOPE_PAUSE_AT": "render:2"})
    wait_for_log(tmp_path / "outputs/dance--seed=1", "paused at render safe point 2", paused)
    (live,) = (tmp_path / "outputs/queues").glob("*/queue.html")
    states = re.findall(r"data-state='(\w+)'", live.read_text())
    assert states == ["running", "queued"] and "location.reload" in live.read_text()
    paused.send_signal(signal.SIGINT)  # a Ctrl-C stops the queue; run it again to the end
    paused.communicate()
    result = rotoscope(*queue, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = queue_of(tmp_path / "outputs")
    queue_page = sorted((tmp_path / "outputs/queues").glob("*/queue.html"))[-1]
    watched = Watched(browser)
    watched.page.goto(queue_page.as_uri())
    rows = watched.page.locator("#jobs tr.job")
    assert rows.count() == 2
    assert [rows.nth(n).get_attribute("data-state") for n in range(2)] == ["done", "done"]
    assert "seed=1" in rows.nth(0).inner_text() and "4/4 frames" in rows.nth(1).inner_text()
    watched.shoot("queue.png")
    for number, job in enumerate(jobs):
        with watched.page.expect_navigation():
            rows.nth(number).locator("a", has_text="report").click()
        opened = Path(urllib.parse.unquote(watched.page.url.removeprefix("file://")))
        assert opened == Path(job["run_dir"]) / "report.html"
        assert watched.page.locator("#sheet .thumb").count() == 4
        watched.page.go_back()
    assert watched.errors == [] and watched.network() == []


def raw_get(port: int, path: str) -> int:
    """The status of GET ``path``, sent as it is (a browser would normalise ``..``)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", path)
    status = connection.getresponse().status
    connection.close()
    return status


def test_the_server_serves_pages_and_nothing_outside_its_folder(
    browser: Browser, finished: Path, tmp_path: Path
) -> None:
    outputs = finished.parent
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the web")
    (outputs / "leak.txt").symlink_to(secret)
    (outputs / "leak").symlink_to(tmp_path)
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli.serve", str(outputs), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert "on http://127.0.0.1:" in line, line
        port = int(line.rsplit(":", 1)[1].split("/")[0])
        watched = Watched(browser)
        base_url = f"http://127.0.0.1:{port}/"
        watched.page.goto(base_url)
        watched.page.locator("a", has_text="dance").click()
        assert watched.page.locator("#sheet .thumb").count() == 4
        assert watched.errors == [] and watched.network(base_url) == []
        assert raw_get(port, "/dance/report.html") == 200
        for refused in ("/../secret.txt", "/dance/../../secret.txt", "/%2e%2e/secret.txt",
                        "/leak.txt", "/leak/secret.txt"):  # fmt: skip
            assert raw_get(port, refused) == 403, refused
        assert raw_get(port, "/dance/frames/") == 404  # no folder listings
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0 and "Traceback" not in stderr and "stopped" in stderr
