"""``report.html``: a run at a glance, one self-contained file in its run folder.

The page opens from ``file://`` on the render box, from a copy of the run folder on a
laptop, or through ``rotoscope-serve``: its styles and script are inline, its images
are the run folder's own files by relative path (frames, thumbnails, masks, maps), and
it asks no network for anything. The data its script needs (every frame's record, the
kept looks) is inline JSON. While the job runs the page reloads itself every few
seconds (unless a frame's details are open or something is playing), so it can be left
open in a browser tab.
"""

from __future__ import annotations

import json
import time
from html import escape
from pathlib import Path
from typing import Any

from pipeline.report.charts import flicker_svg
from pipeline.report.view import FrameView, RunView

RELOAD_SECONDS = 4  # how often a running job's page reloads itself
# A running job rewrites its page at least this often (every stage, every few frames); a
# page older than this says the job may have been killed (kill -9 writes no last page).
STALE_SECONDS = 120

# The page's styles and script, kept as files of their own and inlined into every page
ASSETS = Path(__file__).with_name("assets")
STYLE = (ASSETS / "page.css").read_text(encoding="utf-8")
SCRIPT = (ASSETS / "page.js").read_text(encoding="utf-8")


def _frame_data(frame: FrameView) -> dict[str, Any]:
    return {
        "i": frame.index,
        "key": frame.key,
        "file": frame.file,
        "thumb": frame.thumbnail,
        "src": frame.source_thumbnail,
        "origin": frame.origin,
        "mask": frame.mask,
        "maps": frame.maps,
        "record": frame.record,
        "parameters": frame.parameters,
    }


def _json_script(value: object) -> str:
    """JSON safe inside a ``<script>`` element."""
    return json.dumps(value, separators=(",", ":")).replace("</", "<\\/")


def _header(view: RunView) -> str:
    percent = 100.0 * view.done / view.planned if view.planned else 0.0
    status = escape(view.status)
    parts = [
        f"<h1>{escape(view.name)} <span class='status {status}' id='status'>{status}</span></h1>",
        f"<p id='progress'>{view.done} of {view.planned} frames ({percent:.0f}%)",
    ]
    if view.stage:
        parts.append(f", now: {escape(view.stage)}")
    if view.eta:
        parts.append(f", ETA {escape(view.eta)}")
    parts.append(f"</p><div class='bar'><div style='width:{percent:.1f}%'></div></div>")
    if view.line:
        parts.append(f"<p id='closing'>{escape(view.line)}</p>")
    error = (view.report or {}).get("error")
    if error and view.status != "running":
        parts.append(f"<p id='error'><b>Error:</b> {escape(str(error))}</p>")
    if view.command:
        again = "Resume" if view.status in ("running", "interrupted", "stopped") else "Re-run"
        parts.append(f"<p>{again} with: <code id='command'>{escape(view.command)}</code></p>")
    source = view.source or {}
    if source:
        parts.append(
            f"<p class='muted'>Source: {escape(str(source.get('path', '')))} "
            f"({source.get('width')}x{source.get('height')}, {view.fps:g} fps)</p>"
        )
    return "".join(parts)


def _player(view: RunView) -> str:
    if not view.frames:
        return "<p class='muted'>No frames yet.</p>"
    return (
        "<div id='sync'><div class='player'>"
        "<figure><img id='sync-src' alt='source'><figcaption>source</figcaption></figure>"
        "<figure><img id='sync-out' alt='output'><figcaption>output</figcaption></figure>"
        "</div><div class='controls'><button>Play</button><input type='range' min='0' value='0'>"
        "<span class='frame-number'></span></div></div>"
    )


def _sheet(view: RunView) -> str:
    cells = [
        f"<button class='thumb' data-i='{frame.index}' title='frame {frame.index}'>"
        f"<img loading='lazy' src='{escape(frame.thumbnail)}' alt='frame {frame.index}'>"
        f"<span>{frame.index}</span><span class='origin'>{escape(frame.origin)}</span></button>"
        for frame in view.frames
    ]
    return f"<div class='sheet' id='sheet'>{''.join(cells)}</div>"


def _looks(view: RunView) -> str:
    looks = [look for look in view.looks if look.frames]
    if not looks or not view.frames:
        listed = "".join(
            f"<li>{escape(look.made)}: {escape(', '.join(look.outputs))} (frames pruned)</li>"
            for look in view.looks
        )
        return f"<ul>{listed}</ul>" if listed else "<p class='muted'>No earlier look kept.</p>"
    options = "".join(
        f"<option value='{number}'>{escape(look.made)} — {escape('; '.join(look.prompts)[:80])}"
        "</option>"
        for number, look in enumerate(looks)
    )
    return (
        "<div id='wipe'><div class='controls'>A: <select>" + options + "</select> B: current"
        "</div><div class='wipe'><img class='a' alt='earlier look'><img class='b' alt='current'>"
        "<div class='edge'></div></div><div class='controls'>wipe <input class='split' "
        "type='range' min='0' max='100' value='50'><button>Play</button><input class='frames' "
        "type='range' min='0' value='0'><span class='frame-number'></span></div></div>"
    )


def _files(view: RunView) -> str:
    items = [f"<li><a href='{escape(path)}'>{escape(path)}</a></li>" for path in view.outputs]
    if view.history:
        items += [
            f"<li class='muted'>earlier: <a href='{escape(path)}'>{escape(path)}</a></li>"
            for path in view.history
        ]
    folder = view.folder
    for record in (folder.report, folder.plan_csv, folder.metrics, folder.log):
        if record.is_file():
            items.append(f"<li><a href='{record.name}'>{record.name}</a></li>")
    return f"<ul>{''.join(items)}</ul>"


def render_page(view: RunView, reload_seconds: int = RELOAD_SECONDS) -> str:
    """The whole page for ``view``, as text."""
    data = {
        "frames": [_frame_data(frame) for frame in view.frames],
        "looks": [
            {"look": look.look, "made": look.made, "frames": look.frames}
            for look in view.looks
            if look.frames
        ],
        "fps": view.fps,
        "running": view.status == "running",
        "reload": reload_seconds,
        "written": round(time.time() * 1000),  # a running job's page that stops changing
        "stale": STALE_SECONDS,  # ... for this long says the job may have died
    }
    refresh = (
        "<p class='muted' id='freshness'>This page refreshes itself while the job runs.</p>"
        if view.status == "running"
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(view.name)} — {escape(view.status)}</title><style>{STYLE}</style></head>
<body>
<header>{_header(view)}{refresh}</header>
<h2>Source and output</h2>{_player(view)}
<h2>Frames</h2>{_sheet(view)}
<h2>Flicker</h2><div class="chart-box" id="flicker">{flicker_svg(view.metrics)}
<div class="readout"></div></div>
<h2>Plan</h2><div class="chart-box" id="plan">{view.plan_chart}<div class="readout"></div></div>
<h2>Earlier looks (A/B)</h2>{_looks(view)}
<h2>Files</h2>{_files(view)}
<dialog id="frame"><button class="close">Close</button> <a class="full" target="_blank">full
image</a><h3></h3><div class="images"></div><table></table><pre></pre></dialog>
<script id="data" type="application/json">{_json_script(data)}</script>
<script>{SCRIPT}</script>
</body></html>
"""
