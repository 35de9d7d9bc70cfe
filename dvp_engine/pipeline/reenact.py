"""End-to-end reenactment: track, train, transfer, edit, render, preview — every step resumable.

Job folder layout (``-o out/``)::

    out/.dvp-job.json          finished steps and the inputs they ran with (see steps.py)
    out/work/target.npz        target track            out/work/source.npz   source track
    out/model/                 the target's network (unless --model was given)
    out/work/reenacted.npz     transferred + edited parameters
    out/frames/frame.####.exr  results (ACEScg RGB + matte.A head matte, metadata)
    out/preview.mp4            source | conditioning | result, side by side
    out/contact_sheet.png      a few frames: rows source, colour conditioning, eye gaze, result
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dvp_engine.core import CurveSet, FaceTrack, apply_curves
from dvp_engine.core.atomic import write_text_atomic
from dvp_engine.core.cli_protocol import reenact_output
from dvp_engine.core.errors import DvpError

from .portrait import (
    Framing,
    ModelInfo,
    conditioning_frames,
    load_video_frames,
    render_portrait,
    resize_images,
    train_portrait,
)
from .steps import HASHES_NAME, STATE_NAME, HashCache, Step, fingerprint, run_steps

log = logging.getLogger("dvp")

Stage = Callable[[str, int, int], None]


@dataclass
class ReenactSettings:
    """Settings of a reenactment job (the ``dvp reenact`` options)."""

    source: str
    target: str
    out: Path
    mode: str = "full"
    model: Path | None = None
    size: int = 256
    iters: int = 31000
    time_limit: float | None = None
    """Seconds of training after which the train step stops early (None: train to ``iters``)."""
    batch: int = 16
    ngf: int | None = None
    arch: str = "fast"
    frames: list[int] | None = None
    source_reference: int | None = None
    target_reference: int | None = None
    curves: list[Path] = field(default_factory=list)
    sets: list[str] = field(default_factory=list)
    device: str = "cpu"
    overwrite: bool = False
    preview: bool = True
    seed: int = 0
    track_frames: str | None = None
    framing: str = "auto"
    matte: str = "layer"
    """``layer`` (RGB + matte.A) or ``alpha`` (premultiplied RGBA), see :data:`dvp_engine.io.output.MATTE_MODES`."""


@dataclass
class ReenactResult:
    """Paths the job wrote and the steps that ran (the others were up to date)."""

    frames_pattern: str
    preview: Path | None
    contact_sheet: Path | None
    ran: list[str]
    report: list[str]


def run_reenact(s: ReenactSettings, progress: Stage | None = None, on_log: Any = None) -> ReenactResult:
    """Run (or resume) a reenactment job; see the module docstring for what it writes."""
    from dvp_engine.tracking.pipeline import track_video

    out = s.out
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    tgt_npz, src_npz, new_npz = work / "target.npz", work / "source.npz", work / "reenacted.npz"
    same = Path(s.source).resolve() == Path(s.target).resolve()
    model_dir = s.model if s.model is not None else out / "model"
    pattern = reenact_output(out)
    report: list[str] = []

    def stage_cb(name: str) -> Callable[[str, int, int], None] | None:
        if progress is None:
            return None
        return lambda stage, done, total: progress(f"{name} {stage}", done, total)

    def track_step(video: str, dest: Path, name: str) -> Step:
        def run() -> None:
            t = track_video(video, frames=s.track_frames, device=s.device, progress=stage_cb(name))
            t.save(dest)

        return Step(f"track {name}", run, [dest], {"video": Path(video), "frames": s.track_frames})

    def train_step() -> Step:
        settings = {
            "track": tgt_npz,
            "video": Path(s.target),  # the frames it learns to reproduce: a regraded plate retrains
            "size": s.size,
            "iters": s.iters,
            "batch": s.batch,
            "ngf": s.ngf,
            "seed": s.seed,
            "arch": s.arch,
        }
        if s.framing != "auto":  # (absent for the default, so jobs from before the option stay up to date)
            settings["framing"] = s.framing
        if s.time_limit is not None:  # (likewise)
            settings["time_limit"] = s.time_limit

        def run() -> None:
            # An interrupted training run with the same settings resumes exactly; changed settings start afresh.
            marker = model_dir / ".dvp-train"
            fp = fingerprint(settings, HashCache(out / HASHES_NAME))
            resume = marker.is_file() and marker.read_text().strip() == fp
            model_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(marker, fp + "\n")
            train_portrait(
                tgt_npz,
                s.target,
                model_dir,
                size=s.size,
                iters=s.iters,
                batch=s.batch,
                ngf=s.ngf,
                arch=s.arch,
                device=s.device,
                seed=s.seed,
                resume=resume,
                overwrite=True,  # the job's own model folder: changed settings start it afresh
                bar=progress is None,
                preview_every=max(1, s.iters // 4),
                checkpoint_every=max(1, s.iters // 4),
                log_every=max(1, min(50, s.iters // 20)),
                on_log=on_log,
                progress=stage_cb("train"),
                framing=s.framing,
                time_limit=s.time_limit,
            )

        return Step("train", run, [model_dir / "latest.json", model_dir / "dvp_model.json"], settings)

    def transfer_step() -> Step:
        def run() -> None:
            transfer_job(
                tgt_npz,
                tgt_npz if same else src_npz,
                new_npz,
                s.mode,
                source_reference=s.source_reference,
                target_reference=s.target_reference,
                curves=s.curves,
                sets=s.sets,
                source_video=s.source,
                target_video=s.target,
            )

        inputs = {
            "target": tgt_npz,
            "source": src_npz if not same else tgt_npz,
            "mode": s.mode,
            "curves": list(s.curves),
            "sets": s.sets,
            "refs": [s.source_reference, s.target_reference],
        }
        return Step("transfer", run, [new_npz], inputs)

    def frames_wanted(new: FaceTrack) -> list[int]:
        """The --frames to render; frames the transferred (possibly retimed) track lacks are an error."""
        from dvp_engine.core.frames import FrameSet

        have = set(new.frames.tolist())
        wanted = s.frames or [int(x) for x in new.frames]
        lacking = [f for f in wanted if f not in have]
        if lacking:
            raise DvpError(
                f"{len(lacking)} of the {len(wanted)} --frames are not in the transferred track, which holds "
                f"frames {FrameSet.from_frames(have)}: {FrameSet.from_frames(lacking)}; ask for frames it holds",
                path=new_npz,
            )
        return wanted

    def render_step() -> Step:
        # the weights latest.json points to, not its text (another --seed or --ngf writes new weights)
        inputs = {
            "track": new_npz,
            "model": lambda: model_weights(model_dir),
            "frames": s.frames,
            "matte": s.matte,
        }

        def run() -> None:
            new = FaceTrack.load(new_npz)
            wanted = frames_wanted(new)
            done = [0]
            # An interrupted render of the same inputs resumes; changed inputs re-render every frame.
            marker = out / "frames" / ".dvp-render"
            fp = fingerprint(inputs, HashCache(out / HASHES_NAME))
            resume = marker.is_file() and marker.read_text().strip() == fp
            marker.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(marker, fp + "\n")

            def tick(_: int) -> None:
                done[0] += 1
                if progress is not None:
                    progress("render", done[0], len(wanted))

            res = render_portrait(
                model_dir,
                new,
                pattern,
                frames=wanted,
                device=s.device,
                batch=min(s.batch, 8),
                overwrite=not resume,
                resume=resume,
                track_label=str(new_npz),
                progress=tick,
                matte=s.matte,
            )
            report.append(f"rendered {len(res.written)} frames ({len(res.skipped)} were already there)")

        return Step("render", run, [out / "frames" / ".dvp-render"], inputs)

    def preview_step() -> Step:
        def run() -> None:
            write_previews(
                s.source, tgt_npz if same else src_npz, new_npz, pattern, model_dir, out, s.frames, s.device
            )

        return Step(
            "preview",
            run,
            [out / "preview.mp4", out / "contact_sheet.png"],
            {"track": new_npz, "frames": out / "frames"},
        )

    existing = sorted((out / "frames").glob("frame.*")) if (out / "frames").is_dir() else []
    if existing and not (out / STATE_NAME).is_file() and not s.overwrite:
        raise DvpError(
            f"the output folder already holds {len(existing)} frames from elsewhere; pass --overwrite to replace them",
            path=out / "frames",
        )
    steps = [track_step(s.target, tgt_npz, "target")]
    if not same:
        steps.append(track_step(s.source, src_npz, "source"))
    if s.model is None:
        steps.append(train_step())
    elif not (s.model / "dvp_model.json").is_file():
        raise DvpError("not a trained model folder (no dvp_model.json)", path=s.model)
    steps += [transfer_step(), render_step()]
    if s.preview:
        steps.append(preview_step())
    ran = run_steps(steps, out, force=False)
    return ReenactResult(
        pattern,
        out / "preview.mp4" if s.preview else None,
        out / "contact_sheet.png" if s.preview else None,
        ran,
        report,
    )


def model_weights(model_dir: Path) -> Path:
    """The generator weights file a model folder's ``latest.json`` points to (``latest.json`` itself while it
    cannot be resolved, e.g. before training), for fingerprints that follow the weights, not the pointer."""
    from dvp_engine.network.checkpoint import CheckpointError, resolve_generator_file

    try:
        return resolve_generator_file(model_dir)
    except CheckpointError:
        return model_dir / "latest.json"


def transfer_job(
    target_npz: Path,
    source_npz: Path,
    out_npz: Path,
    mode: str,
    *,
    source_reference: int | None = None,
    target_reference: int | None = None,
    curves: list[Path] | None = None,
    sets: list[str] | None = None,
    source_video: str = "",
    target_video: str = "",
) -> FaceTrack:
    """The transfer step of a reenactment (``dvp reenact``, ``dvp transfer``): source parameters onto the target
    (relative to a neutral frame of each), then the curve files and ``--set`` edits; writes ``out_npz``.

    A source track that is the target's own file is an edit of the target: the output keeps its length.
    ``source_video``/``target_video`` are recorded in the metadata (``reenact``).
    """
    from dvp_engine.facemodel import load_default_model
    from dvp_engine.transfer import apply_sets, transfer

    same = Path(source_npz).resolve() == Path(target_npz).resolve()
    target = FaceTrack.load(target_npz)
    source = target if same else FaceTrack.load(source_npz)
    weights = load_default_model().mouth_weights() if mode == "dubbing" else None
    new, rep = transfer(
        source,
        target,
        mode,
        source_reference=source_reference,
        target_reference=target_reference,
        mouth_weights=weights,
        n_frames=None if not same else target.n_frames,
    )
    for line in rep.lines():
        log.info(line)
    for c in curves or []:
        new = apply_curves(new, CurveSet.load(c))
    new = apply_sets(new, list(sets or []))
    new.metadata["reenact"] = {
        "source": source_video,
        "target": target_video,
        "mode": mode,
        "sets": list(sets or []),
    }
    new.save(out_npz)
    return new


def write_previews(
    source: str,
    source_npz: Path,
    new_npz: Path,
    pattern: str,
    model_dir: Path,
    out: Path,
    frames: list[int] | None = None,
    device: str = "cpu",
) -> tuple[Path, Path]:
    """Side-by-side MP4 (source | conditioning | result) and a contact sheet PNG of the rendered frames
    (rows: source, colour conditioning, eye-gaze conditioning, result): ``out/preview.mp4`` and
    ``out/contact_sheet.png``.

    Args:
        source: the source video; source_npz: its track (the time mapping of the transfer).
        new_npz: the rendered track; pattern: the rendered frames (``out/frames/frame.####.exr``).
        model_dir: the model that rendered them; frames: which frames (default: every frame of ``new_npz``
            that was rendered); device: for the conditioning renders.
    """
    import torch

    from dvp_engine.core.sequence import ImageSequence
    from dvp_engine.io.colour import acescg_to_srgb_display
    from dvp_engine.io.images import read_image
    from dvp_engine.io.video import write_video
    from dvp_engine.network.evaluate import write_contact_sheet

    new = FaceTrack.load(new_npz)
    info = ModelInfo.load(model_dir)
    seq = ImageSequence.parse(pattern)
    frames = [f for f in (frames or [int(x) for x in new.frames]) if seq.path(f).exists()]
    if not frames:
        raise DvpError("no rendered frames to preview", path=seq.directory)
    size = info.framing.size
    sub = new.select(frames)
    cond, _ = conditioning_frames(sub, info.framing, device=device)
    colour = cond[:, :3].astype(np.float32) / 255.0
    gaze = cond[:, 6:9].astype(np.float32) / 255.0
    results = []
    for f in frames:
        px, _ = read_image(seq.path(f), window="data")  # the crop, not the plate it is placed in
        results.append(np.clip(acescg_to_srgb_display(px[..., :3]), 0, 1))
    res = resize_images(np.stack(results), size)
    # the source frame shown at each output frame: the time mapping of the transfer
    src_track = FaceTrack.load(source_npz)
    t0 = int(new.frames[0])
    src_frames = [
        int(src_track.frames[0]) + int(round((f - t0) / float(new.rate) * float(src_track.rate)))
        for f in frames
    ]
    src_frames = [min(max(x, int(src_track.frames[0])), int(src_track.frames[-1])) for x in src_frames]
    framing_src = Framing.choose("auto", src_track, size)  # the source as the target model would frame it
    uniq = sorted(set(src_frames))
    loaded = load_video_frames(source, uniq, framing_src)
    lookup = {f: loaded[i].astype(np.float32) / 255.0 for i, f in enumerate(uniq)}
    src = np.stack([lookup[f] for f in src_frames])
    tiles = np.concatenate([src, colour, res], axis=3)  # (N, 3, S, 3S)
    write_video(out / "preview.mp4", (t.transpose(1, 2, 0) for t in tiles), new.rate)
    k = min(4, len(frames))
    pick = [round(i * (len(frames) - 1) / max(1, k - 1)) for i in range(k)]
    rows = (src, colour, gaze, res)
    write_contact_sheet(out / "contact_sheet.png", [torch.from_numpy(a[pick]) for a in rows])
    return out / "preview.mp4", out / "contact_sheet.png"
