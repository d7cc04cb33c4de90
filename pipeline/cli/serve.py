"""``rotoscope-serve DIR``: the run and queue pages of DIR over HTTP, read-only.

For a render box reached over SSH (``ssh -L 8765:localhost:8765 box``, then
http://localhost:8765/): the standard library's HTTP server, bound to 127.0.0.1 unless
``--host`` says otherwise, serving GET and HEAD only. Every path is resolved (symlinks
included) and refused unless it stays inside DIR, and a path with a ``..`` segment is
refused outright. Folders are not listed: DIR's own address lists the run folders and
queues below it (those with a page), a folder with a page opens its page, any other
folder is not found. Ctrl-C stops it cleanly.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import signal
import sys
import urllib.parse
from contextlib import suppress
from functools import partial
from html import escape
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO

from pipeline.records.run_folder import RunFolder
from pipeline.report.queue import QUEUE_PAGE

DEFAULT_PORT = 8765
SEARCH_DEPTH = 3  # how deep below DIR the index looks for pages (outputs/queues/<time>/)


class PageHandler(SimpleHTTPRequestHandler):
    """Serves files inside ``directory`` only, and pages instead of folder listings."""

    def __init__(self, *args: Any, directory: str, **kwargs: Any) -> None:
        self.root = Path(directory).resolve()
        super().__init__(*args, directory=directory, **kwargs)

    def inside(self, url_path: str) -> Path | None:
        """The file ``url_path`` names, resolved; None when it is not inside the root."""
        path = urllib.parse.unquote(urllib.parse.urlsplit(url_path).path)
        parts = [part for part in path.split("/") if part]
        if any(part in ("..", ".") or "\\" in part or "\0" in part for part in parts):
            return None
        resolved = self.root.joinpath(*parts).resolve()
        return resolved if resolved.is_relative_to(self.root) else None

    def send_head(self) -> BinaryIO | None:
        target = self.inside(self.path)
        if target is None:
            self.send_error(HTTPStatus.FORBIDDEN, "outside the served folder")
            return None
        if target.is_dir():
            for page in (RunFolder(target).page, target / QUEUE_PAGE):
                if page.is_file():
                    relative = page.relative_to(self.root).as_posix()
                    self.send_response(HTTPStatus.FOUND)
                    self.send_header("Location", "/" + urllib.parse.quote(relative))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
            if target == self.root:
                return self.send_index()
            self.send_error(HTTPStatus.NOT_FOUND, "no page in this folder")
            return None
        if not target.is_file():
            self.send_error(HTTPStatus.NOT_FOUND)
            return None
        return super().send_head()

    def translate_path(self, path: str) -> str:
        """Where a request's file is: the resolved path checked by :meth:`send_head`."""
        target = self.inside(path)
        return str(target) if target is not None else str(self.root / ".refused")

    def list_directory(self, path: str | os.PathLike[str]) -> io.BytesIO | None:
        self.send_error(HTTPStatus.NOT_FOUND, "folders are not listed")
        return None

    def send_index(self) -> BinaryIO:
        """The root's index: a link to every page below it, with its status."""
        body = index_page(self.root).encode("utf-8")
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return io.BytesIO(body)

    def log_message(self, format: str, *args: object) -> None:
        logging.getLogger("rotoscope").debug("serve: " + format, *args)


def pages_below(root: Path, depth: int = SEARCH_DEPTH) -> list[Path]:
    """Every run or queue page at most ``depth`` folders below ``root`` (no symlinks)."""
    found: list[Path] = []
    folders = [(root, 0)]
    while folders:
        folder, level = folders.pop()
        for name in (RunFolder(folder).page.name, QUEUE_PAGE):
            if (folder / name).is_file():
                found.append(folder / name)
        if level < depth:
            try:
                entries = sorted(folder.iterdir())
            except OSError:
                continue
            folders += [
                (entry, level + 1)
                for entry in entries
                if entry.is_dir() and not entry.is_symlink() and not entry.name.startswith(".")
            ]
    return sorted(found)


def index_page(root: Path) -> str:
    items = []
    for page in pages_below(root):
        report = RunFolder(page.parent).report
        status = ""
        with suppress(OSError, ValueError):
            status = str(json.loads(report.read_text(encoding="utf-8")).get("status", ""))
        link = urllib.parse.quote(page.relative_to(root).as_posix())
        label = escape(page.parent.relative_to(root).as_posix() or ".")
        kind = "queue" if page.name == QUEUE_PAGE else "run"
        items.append(f"<li>{kind} <a href='/{link}'>{label}</a> {escape(status)}</li>")
    listed = "".join(items) or "<li>no run or queue pages yet</li>"
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<link rel='icon' href='data:,'><title>rotoscope: "
        f"{escape(root.name)}</title><style>body{{font:14px system-ui,sans-serif;margin:24px}}"
        f"</style></head><body><h1>{escape(str(root))}</h1><ul>{listed}</ul></body></html>"
    )


def make_server(root: Path, host: str, port: int) -> ThreadingHTTPServer:
    handler = partial(PageHandler, directory=str(root))
    return ThreadingHTTPServer((host, port), handler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="rotoscope-serve",
        description="Serve the run and queue pages of DIR (read-only).",
    )
    parser.add_argument("dir", type=Path, help="a run folder, or a folder of them (outputs/)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="default: %(default)s")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    root: Path = args.dir
    if not root.is_dir():
        print(f"rotoscope-serve: error: {root} is not a folder", file=sys.stderr)
        sys.exit(2)
    try:
        server = make_server(root, args.host, args.port)
    except OSError as exc:
        print(
            f"rotoscope-serve: error: cannot listen on {args.host}:{args.port}: {exc.strerror}"
            " (try another --port)",
            file=sys.stderr,
        )
        sys.exit(2)
    port = server.server_address[1]
    print(
        f"rotoscope-serve: {root.resolve()} on http://{args.host}:{port}/ (Ctrl-C stops)",
        flush=True,
    )
    # Ctrl-C (even where a shell started it with SIGINT ignored) and SIGTERM stop it
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("rotoscope-serve: stopped", file=sys.stderr)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
