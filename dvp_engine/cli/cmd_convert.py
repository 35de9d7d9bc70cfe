"""Convert a movie or an image sequence to an image sequence (EXR scene-linear through OpenColorIO).

Examples::

    dvp convert dvp_engine/data/sample/wda_kh.mp4 -o plate/wda.####.exr --frames 1-50
    dvp convert plate/wda.####.exr -o proxy/wda.%04d.png
    dvp convert clip.mov -o plate/clip.####.exr --first-frame 1001 --colourspace "Linear Rec.709 (sRGB)"

Movie frames are numbered from ``--first-frame`` (1 by default). Input EXRs are taken as scene-linear ACEScg,
integer formats as sRGB. EXR output is ACEScg (or ``--colourspace``), half float, with the source file and
frame in its metadata.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .common import Progress, progress_mode
from .options import add_frames, int_type, parse_frames

NAME = "convert"
HELP = "convert a movie or image sequence to EXR/PNG/... frames, colour-managed"
log = logging.getLogger("dvp")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="movie file or image-sequence pattern")
    p.add_argument("-o", "--output", required=True, help="output pattern, e.g. plate/name.####.exr")
    add_frames(p)
    p.add_argument(
        "--first-frame",
        type=int_type(-999_999_999, 999_999_999),
        default=1,
        help="number of a movie's first frame (default 1)",
    )
    p.add_argument(
        "--colourspace", "--colorspace", default="ACEScg", help="EXR output colour space (OCIO name)"
    )
    p.add_argument("--compression", default="zip", help="EXR compression (zip, piz, dwaa:45, ...)")
    p.add_argument(
        "--dtype", choices=("half", "float", "uint8", "uint16"), help="pixel type (default per format)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace frames that exist already")
    p.add_argument("--skip-bad-frames", action="store_true", help="report unreadable frames and go on")


def run(args: argparse.Namespace) -> int:
    from dvp_engine.core.errors import DvpError
    from dvp_engine.core.frames import FrameSet
    from dvp_engine.io.output import output_sequence, write_frame
    from dvp_engine.io.video import open_video, read_frames

    frames = parse_frames(args.frames)
    src = args.source
    if frames is None:
        from dvp_engine.core.sequence import ImageSequence, is_pattern

        if is_pattern(src):
            frames = ImageSequence.parse(src).scan().require()
        else:
            with open_video(Path(src), first_frame=args.first_frame) as video:
                frames = video.frames
    assert isinstance(frames, FrameSet)
    seq = output_sequence(args.output, frames, overwrite=args.overwrite)
    bad: list[int] = []

    def skip(exc: DvpError) -> None:
        log.warning("skipping unreadable frame: %s", exc)
        bad.append(exc.frame if exc.frame is not None else -1)

    with Progress(len(frames), "convert", progress_mode(args)) as bar:
        source_frames = read_frames(
            src, frames, first_frame=args.first_frame, on_error=skip if args.skip_bad_frames else None
        )
        for frame, rgb in source_frames:
            write_frame(
                seq.path(frame),
                rgb,
                metadata={"dvp:source": str(src), "dvp:source_frame": int(frame)},
                colourspace=args.colourspace,
                compression=args.compression,
                dtype=args.dtype,
            )
            bar.step(frame)
    log.info("wrote %d frames to %s", len(frames) - len(bad), seq.pattern())
    if bad:
        log.warning("%d frames could not be read: %s", len(bad), FrameSet.from_frames(bad))
        return 1
    return 0
