"""Print a summary of a FaceTrack (.npz), a curve file (.json), a face model, a movie or an image sequence.

Examples::

    dvp info track.npz
    dvp info plate/wda.####.exr
    dvp info dvp_engine/data/sample/wda_kh.mp4
"""

from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path

import numpy as np

from dvp_engine.core import CurveSet, FaceTrack
from dvp_engine.core.errors import InputError
from dvp_engine.core.sequence import MOVIE_SUFFIXES, ImageSequence, is_pattern

NAME = "info"
HELP = "summarise a track, curve file, face model, movie or image sequence"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="file or sequence pattern (name.####.exr, name.%%04d.exr)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON where supported")


def _npz_schema(path: Path) -> str | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in ("header", "provenance", "meta"):
                if key in data.files:
                    doc = json.loads(data[key].tobytes().decode("utf-8"))
                    return str(doc.get("schema")) if isinstance(doc, dict) else None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return None


def summarise(path_text: str) -> str:
    """The summary text for one path (raises :class:`DvpError` with the file named)."""
    path = Path(path_text)
    if is_pattern(path_text):
        seq = ImageSequence.parse(path_text).scan()
        return seq.summary()
    if not path.exists():
        raise InputError("no such file", path=path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        schema = _npz_schema(path)
        if schema and schema.startswith("FaceModel"):
            from dvp_engine.facemodel import FaceModel

            return FaceModel.load(path).summary()
        return FaceTrack.load(path).summary()
    if suffix == ".json":
        curves = CurveSet.load(path)
        lines = [f"curve file ({len(curves.curves)} channels)"]
        for name, c in curves.curves.items():
            lo, hi = c.active_range
            lines.append(f"  {name}: {c.mode}, {len(c.keys)} keys, frames {lo:g}-{hi:g}")
        return "\n".join(lines)
    if suffix in MOVIE_SUFFIXES:
        from dvp_engine.io.video import open_video

        with open_video(path) as video:
            return video.summary()
    from dvp_engine.io.images import image_info

    return image_info(path)


def run(args: argparse.Namespace) -> int:
    # metadata of a damaged file may hold bytes that are not UTF-8: escape them rather than fail to print
    print(summarise(args.path).encode("utf-8", "backslashreplace").decode("utf-8"))
    return 0
