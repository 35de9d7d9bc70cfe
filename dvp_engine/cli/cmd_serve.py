"""Render preview frames on request, keeping the model loaded: one JSON request per line on stdin.

Example (what a host does when a knob or F-curve changes)::

    dvp serve
    {"id": 1, "model": "model/", "track": "edited.npz", "frame": 1040, "output": "/tmp/dvp_preview.####.exr"}
    -> {"id": 1, "ok": true, "path": "/tmp/dvp_preview.1040.exr", "frame": 1040, "seconds": 0.41}

Request fields: ``model`` (folder from ``dvp train``), ``track`` (.npz), ``frame`` (one frame), ``output``
(pattern, ``.exr`` or ``.png``; default ``<track folder>/dvp_preview.####.exr``), optional ``curves`` (curve
files applied first), ``device`` (default auto), ``matte`` (``layer`` or ``alpha``). The frame is overwritten.
Each request gets one line on stdout: ``ok`` with the written ``path`` and the ``seconds`` it took, or ``ok:
false`` with the ``error`` line (``dvp: error: <path>: frame <N>: ...``); a bad request never stops the server.
``{"quit": true}`` or the end of stdin ends it. The generator stays loaded between requests for the same model
(reloaded when the model folder gets a new checkpoint), so a preview costs the frame's 11 conditioning renders
and one network pass, not a whole render job.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import IO, Any

from dvp_engine.core import CurveSet, DvpError, FaceTrack, ImageSequence, apply_curves
from dvp_engine.core.cli_protocol import format_error

NAME = "serve"
HELP = "render preview frames on request (JSON lines on stdin/stdout), keeping the model loaded"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="default device of requests (cpu, cuda, auto)")


def handle(request: dict[str, Any], default_device: str = "auto") -> dict[str, Any]:
    """Render the one frame a request asks for; returns the reply (never raises for bad input)."""
    from dvp_engine.cli.options import resolve_device
    from dvp_engine.pipeline.portrait import render_portrait

    reply: dict[str, Any] = {"id": request.get("id")}
    try:
        for key in ("model", "track", "frame"):
            if key not in request:
                raise DvpError(f"request has no {key!r} (needs model, track and frame)")
        track_path = Path(str(request["track"]))
        frame = int(request["frame"])
        output = str(request.get("output") or track_path.parent / "dvp_preview.####.exr")
        track = FaceTrack.load(track_path)
        for c in request.get("curves", []):
            try:
                track = apply_curves(track, CurveSet.load(c))
            except KeyError as exc:
                raise DvpError(str(exc.args[0]), path=c) from None
        if frame not in set(int(f) for f in track.frames):
            raise DvpError(f"the track has no frame {frame}", path=track_path, frame=frame)
        start = time.perf_counter()
        res = render_portrait(
            Path(str(request["model"])),
            track,
            output,
            frames=[frame],
            device=resolve_device(str(request.get("device", default_device))),
            batch=1,
            overwrite=True,
            writers=1,
            matte=str(request.get("matte", "layer")),
            keep_loaded=True,
        )
        path = ImageSequence.parse(res.pattern).path(frame)
        reply.update(ok=True, path=str(path), frame=frame, seconds=round(time.perf_counter() - start, 3))
    except (DvpError, ValueError, TypeError, OSError) as exc:
        reply.update(ok=False, error=format_error(str(exc)))
    return reply


def serve(stdin: IO[str], stdout: IO[str], default_device: str = "auto") -> int:
    """Answer requests from ``stdin`` on ``stdout`` until ``{"quit": true}`` or end of input."""
    for line in stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
        except ValueError as exc:
            reply: dict[str, Any] = {"id": None, "ok": False, "error": format_error(f"bad request: {exc}")}
        else:
            if request.get("quit"):
                break
            reply = handle(request, default_device)
        stdout.write(json.dumps(reply) + "\n")
        stdout.flush()
    return 0


def run(args: argparse.Namespace) -> int:
    return serve(sys.stdin, sys.stdout, args.device)
