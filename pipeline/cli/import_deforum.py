"""``rotoscope-import-deforum SETTINGS [-o keyframes/NAME.yaml]``: a Deforum settings
file as a rotoscope keyframe file (see :mod:`pipeline.interop.deforum.importer`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.atomic import write_text
from pipeline.errors import RotoscopeError
from pipeline.interop.deforum.importer import import_deforum, keyframe_text


def main(argv: list[str] | None = None) -> None:
    """The command's entry point."""
    parser = argparse.ArgumentParser(
        prog="rotoscope-import-deforum",
        description="Convert a Deforum settings file (*_settings.txt) to a rotoscope "
        "keyframe file. Warnings go to stderr and into the file as comments.",
    )
    parser.add_argument("settings", type=Path, help="Deforum settings file (JSON)")
    parser.add_argument(
        "-o", "--output", type=Path, help="keyframe file to write (default: standard output)"
    )
    args = parser.parse_args(argv)
    try:
        result = import_deforum(args.settings)
        text = keyframe_text(result, args.settings)
        if args.output is not None:
            _write(args.output, text)
    except RotoscopeError as exc:
        print(f"rotoscope: error: {exc}", file=sys.stderr)
        sys.exit(2)
    for warning in result.warnings:
        print(f"rotoscope: warning: {warning}", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(text)
    else:
        print(f"rotoscope: wrote {args.output}", file=sys.stderr)


def _write(path: Path, text: str) -> None:
    try:
        write_text(path, text, durable=False)
    except OSError as exc:
        raise RotoscopeError(f"cannot write '{path}': {exc.strerror or exc}") from exc


if __name__ == "__main__":
    main()
