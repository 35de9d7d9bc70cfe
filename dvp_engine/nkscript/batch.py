"""``dvp nuke-script``: write a DVPortrait ``.nk`` snippet from a track, without Nuke or its licence.

The ``dvp nuke-script`` subcommand (:mod:`dvp_engine.cli.cmd_nuke_script`) calls :func:`configure` and
:func:`run_args`; it also runs as ``python -m dvp_engine.nkscript.batch``. Exit codes follow
the ``dvp`` CLI: 0 ok, 1 failure (``dvp: error: <path>: <message>``), 2 usage error.

Example::

    dvp nuke-script shot.npz -o shot_dvp.nk --model model/ --output out/sh010.####.exr \\
        --curves edits.json --plate plate/sh010.####.exr --script
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from dvp_engine.core import CurveSet, DvpError, FaceTrack, FrameSet, apply_curves
from dvp_engine.core.atomic import write_text_atomic
from dvp_engine.core.cli_protocol import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, format_error

from .writer import nk_snippet


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``dvp nuke-script``."""
    p = argparse.ArgumentParser(
        prog="dvp nuke-script",
        description="Write a Nuke .nk snippet with a keyed DVPortrait node (no Nuke licence needed).",
    )
    configure(p)
    return p


def configure(p: argparse.ArgumentParser) -> None:
    """Add the options of ``dvp nuke-script`` to a parser (used by the ``dvp`` CLI too)."""
    p.add_argument("track", type=Path, help="FaceTrack (.npz) whose channels become the node's animation")
    p.add_argument("-o", "--output-script", type=Path, required=True, help="the .nk file to write")
    p.add_argument("--curves", type=Path, action="append", default=[], help="curve file(s) applied first")
    p.add_argument("--model", default="", help="model folder (the node's 'model' knob)")
    p.add_argument("--output", default="", help="EXR pattern the node renders to, e.g. out/sh010.####.exr")
    p.add_argument("--frames", default="", help="the node's frame range (default: the track's frames)")
    p.add_argument("--name", default="DVPortrait1", help="node name (default DVPortrait1)")
    p.add_argument("--plate", default="", help="footage: adds a Read node feeding the node's plate input")
    p.add_argument(
        "--script", action="store_true", help="a whole script with a Root node, not a paste snippet"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing .nk file")


def cli_main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse ``argv``, write the ``.nk`` file; returns the exit code (0, 1 or 2)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or usage error (2)
        return int(exc.code or 0)
    return run_args(args)


def run_args(args: argparse.Namespace) -> int:
    """Write the ``.nk`` file for parsed arguments; returns the exit code (0, 1 or 2)."""
    if args.output_script.suffix != ".nk":
        return _error(f"{args.output_script}: the output must end in .nk", EXIT_USAGE)
    if args.output_script.exists() and not args.overwrite:
        return _error(f"{args.output_script}: exists; pass --overwrite to replace it", EXIT_USAGE)
    if args.frames:
        try:
            FrameSet.parse(args.frames)
        except ValueError as exc:
            return _error(f"--frames: {exc}", EXIT_USAGE)
    try:
        track = FaceTrack.load(args.track)
        for c in args.curves:
            try:
                track = apply_curves(track, CurveSet.load(c))
            except KeyError as exc:
                return _error(f"{c}: {exc.args[0]}", EXIT_USAGE)
        text = nk_snippet(
            track,
            name=args.name,
            track_path=str(args.track),
            model_dir=args.model,
            output=args.output,
            frame_range=args.frames,
            plate=args.plate,
            standalone=args.script,
        )
        write_text_atomic(args.output_script, text)
    except DvpError as exc:
        return _error(str(exc), EXIT_FAILURE)
    print(f"dvp: wrote {args.output_script} ({track.n_frames} frames, node {args.name})", file=sys.stderr)
    return EXIT_OK


def _error(message: str, code: int) -> int:
    """Print ``message`` as a ``dvp: error:`` line on stderr; returns ``code``."""
    print(format_error(message), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(cli_main())
