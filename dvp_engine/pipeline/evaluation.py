"""Evaluation on held-out frames (paper section 7): the model against the baselines a compositor compares with.

Methods scored on the held-out frames (the last 10 % of the clip, never trained on):

* ``model``: the space-time network itself (Nw = 11);
* ``nearest_neighbour``: for each held-out frame, the training frame whose parameters (pose, expression, gaze,
  blinks; standardised) are closest, shown as it is;
* ``single_frame``: a network with Nw = 1 trained the same way (same size, width, batch and iterations), when
  given or trained (``None`` otherwise);
* ``mean_frame``: the mean of the training frames (what a network that learnt nothing of the parameters
  converges to: a blur of the actor).

Each method's block (:mod:`dvp_engine.pipeline.eval_scoring`) holds the whole-frame ``psnr``/``ssim``/``l1``/
``temporal`` (the report's original keys), the same three in the ``face``, ``mouth`` and ``eyes`` boxes,
``sharpness`` and ``hf_fidelity`` in the face box, ``identity`` (dlib descriptor distance to the ground truth)
and ``controllability`` (re-tracked parameters against the asked ones; for the retrieval baseline the retrieved
frames' tracked parameters; None for the mean frame, which follows no control). ``retrack_floor`` is the
ground truth re-tracked the same way: the re-tracker's own error, the best any method can score. ``summary``
has one flat row of headline figures per method. docs/network.md explains every number.

Frames are [0, 1] sRGB at the network size. A JSON report and a contact sheet PNG are written (one row per
method: each tile is the frame with its face box enlarged beside it).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from dvp_engine.core import FaceTrack, layout
from dvp_engine.core.atomic import write_text_atomic
from dvp_engine.core.errors import DvpError

from .eval_scoring import Scorer, json_safe, with_face_crops
from .portrait import ModelInfo, prepare_data, train_portrait

log = logging.getLogger("dvp")

NN_CHANNELS = layout.HEAD_ROTATION + layout.HEAD_TRANSLATION + layout.EXPRESSION + layout.GAZE + layout.BLINK
MIN_FRAMES = 20
"""Shortest clip evaluation accepts: its last 10 % must give at least 2 held-out frames."""


def load_model_track(model_dir: Path) -> tuple[ModelInfo, Path, FaceTrack]:
    """The model's description and the track it was trained on, checked to still match.

    Raises:
        DvpError: the track file is gone, its identity or frames are not the ones the model was trained on
            (re-tracked or replaced since), or the clip is shorter than :data:`MIN_FRAMES`.
    """
    info = ModelInfo.load(model_dir)
    track_path = Path(info.track)
    if not track_path.is_file():
        raise DvpError(
            "the model's track file is gone; evaluation needs the track the model was trained on",
            path=track_path,
        )
    track = FaceTrack.load(track_path)
    if track.n_frames < MIN_FRAMES:
        raise DvpError(
            f"the clip has {track.n_frames} frames; evaluation needs at least {MIN_FRAMES} "
            "(the last 10 % are the held-out frames)",
            path=track_path,
        )
    ident = np.asarray(info.identity, np.float64)
    if ident.shape != track.identity.shape or not np.allclose(ident, track.identity, atol=1e-5):
        raise DvpError(
            f"the track does not match the model {model_dir}: its identity differs from the one the model "
            "was trained with (re-tracked or replaced since?); restore that track or retrain",
            path=track_path,
        )
    have = set(int(f) for f in track.frames)
    missing = [f for f in info.train_frames + info.held_out_frames if f not in have]
    if missing:
        raise DvpError(
            f"the track does not match the model {model_dir}: it lacks {len(missing)} of the model's frames "
            f"(first {missing[0]})",
            path=track_path,
        )
    f = info.framing
    if f.x0 + f.side > track.width or f.y0 + f.side > track.height:
        raise DvpError(
            f"the track's image size {track.width}x{track.height} does not hold the model's crop",
            path=track_path,
        )
    return info, track_path, track


def _mean_frame(video: Any, rows: list[int], chunk: int = 64) -> np.ndarray:
    """Mean of ``video[rows]`` (uint8 ``(T, 3, S, S)``) as float32 [0, 1] ``(3, S, S)``, summed in chunks."""
    acc = np.zeros(video.shape[1:], np.float64)
    for s in range(0, len(rows), chunk):
        acc += np.asarray(video[rows[s : s + chunk]], np.float64).sum(axis=0)
    out: np.ndarray = (acc / (255.0 * max(1, len(rows)))).astype(np.float32)
    return out


def _mean_or_none(values: list[Any]) -> float | None:
    return None if any(v is None for v in values) else float(np.mean([float(v) for v in values]))


def summary_row(block: dict[str, Any] | None) -> dict[str, Any] | None:
    """The headline figures of one method's block, flat (for tables): PSNR whole/face/mouth/eyes, face SSIM,
    sharpness, HF fidelity, identity distance, head rotation (deg), translation (% face width), expression RMS,
    gaze (deg, both eyes' mean), blink (both eyes' mean) and frames without a re-tracked face."""
    if block is None:
        return None
    c = block.get("controllability") or {}
    ident = block.get("identity") or {}
    gaze = [c.get("gaze_left_deg"), c.get("gaze_right_deg")]
    blink = [c.get("blink_left"), c.get("blink_right")]
    row: dict[str, Any] = {
        "psnr": block.get("psnr"),
        "face_psnr": (block.get("face") or {}).get("psnr"),
        "face_ssim": (block.get("face") or {}).get("ssim"),
        "mouth_psnr": (block.get("mouth") or {}).get("psnr"),
        "eyes_psnr": (block.get("eyes") or {}).get("psnr"),
        "sharpness": block.get("sharpness"),
        "hf_fidelity": block.get("hf_fidelity"),
        "identity": ident.get("distance"),
        "rotation_deg": c.get("rotation_deg"),
        "translation_pct": c.get("translation_pct"),
        "expression_rms": c.get("expression_rms"),
        "gaze_deg": _mean_or_none(gaze),
        "blink": _mean_or_none(blink),
        "no_face": c.get("no_face"),
    }
    return row


def _train_single_frame(
    model_dir: Path, info: ModelInfo, track_path: Path, out_dir: Path, device: str
) -> Path:
    from dvp_engine.network.checkpoint import latest_checkpoint, read_state

    cfg = read_state(latest_checkpoint(model_dir))["config"]
    path = out_dir / "single_frame_model"
    log.info("training the single-frame baseline (Nw = 1) in %s", path)
    train_portrait(
        track_path,
        info.source,
        path,
        size=info.framing.size,
        iters=int(cfg["iters"]),
        batch=int(cfg["batch"]),
        ngf=int(cfg["ngf"]),
        arch=str(cfg.get("arch", "paper")),
        nw=1,
        device=device,
        seed=int(cfg["seed"]),
        resume=True,
        bar=False,
        preview_every=0,
        checkpoint_every=0,
    )
    return path


def evaluate_model(
    model_dir: Path,
    out_dir: Path,
    *,
    single_frame_model: Path | None = None,
    train_single_frame: bool = False,
    device: str = "cpu",
    batch: int = 8,
    controllability: bool = True,
) -> dict[str, Any]:
    """Score a trained model and the baselines on its held-out frames; writes and returns the report dict.

    Args:
        model_dir: a folder written by ``dvp train``.
        out_dir: where ``report.json`` and ``contact_sheet.png`` go.
        single_frame_model: a model trained with Nw = 1 on the same track (the single-frame baseline).
        train_single_frame: train that baseline (same settings) into ``out_dir/single_frame_model``.
        device: for rendering, conditioning and the re-tracker.
        batch: frames per forward pass.
        controllability: re-track the outputs (the slowest part on a CPU: about a second a frame).
    """
    import torch

    from dvp_engine.facemodel import load_default_model
    from dvp_engine.network import PairDataset, Renderer
    from dvp_engine.network.data import to_network_range
    from dvp_engine.network.evaluate import evaluate_dataset, nearest_neighbour, to_unit, write_contact_sheet

    t_start = time.perf_counter()
    seconds: dict[str, float] = {}
    info, track_path, track = load_model_track(model_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cond_path, frames_path = prepare_data(
        track, info.source, info.framing, model_dir / "cache", device=device
    )
    cond, video = np.load(cond_path, mmap_mode="r"), np.load(frames_path, mmap_mode="r")
    held = [track.index_of(f) for f in info.held_out_frames]
    train = [track.index_of(f) for f in info.train_frames]
    if len(held) < 2:
        raise DvpError("fewer than 2 held-out frames: nothing to evaluate", path=model_dir)

    t0 = time.perf_counter()
    ds = PairDataset.from_sequence(cond, video, info.nw, indices=held)
    renderer = Renderer(model_dir, device=device, batch=batch)
    _, out, gt = evaluate_dataset(renderer.render, ds, batch)
    inputs = to_unit(to_network_range(np.asarray(cond[held])[:, :3]))  # the current frames' colour renders
    methods: dict[str, torch.Tensor] = {"model": out}
    if train_single_frame and single_frame_model is None:
        single_frame_model = _train_single_frame(model_dir, info, track_path, out_dir, device)
    if single_frame_model is not None:
        sf_info = ModelInfo.load(single_frame_model)
        if sf_info.nw != 1:
            raise DvpError(
                f"the single-frame baseline must have Nw = 1, this one has {sf_info.nw}",
                path=single_frame_model,
            )
        sf_ds = PairDataset.from_sequence(cond, video, 1, indices=held)
        sf = Renderer(single_frame_model, device=device, batch=batch)
        methods["single_frame"] = evaluate_dataset(sf.render, sf_ds, batch)[1]
    # nearest-neighbour retrieval over the training frames
    params = track.params()
    chans = np.stack([track.channels[c] for c in NN_CHANNELS], axis=1).astype(np.float64)
    idx = nearest_neighbour(chans[train], chans[held])
    retrieved = [train[i] for i in idx]
    methods["nearest_neighbour"] = torch.from_numpy(
        np.stack([video[r] for r in retrieved]).astype(np.float32) / 255
    )
    mean = torch.from_numpy(_mean_frame(video, train))
    methods["mean_frame"] = mean[None].expand(len(held), -1, -1, -1).contiguous()
    seconds["render"] = time.perf_counter() - t0

    scorer = Scorer(load_default_model(), track, info.framing, device=device, controllability=controllability)
    asked = params[held]
    boxes = scorer.boxes(asked)
    report: dict[str, Any] = {
        "mode": "held_out",
        "model_dir": str(model_dir),
        "track": str(track_path),
        "held_out_frames": info.held_out_frames,
        "single_frame": None,
    }
    t_id = t_ctl = 0.0
    for name, frames in methods.items():
        block = scorer.fidelity(frames, gt, boxes)
        t0 = time.perf_counter()
        block["identity"] = scorer.identity(frames, gt, boxes["face"])
        t_id += time.perf_counter() - t0
        t0 = time.perf_counter()
        if name == "nearest_neighbour":
            block["retrieved_frames"] = [info.train_frames[i] for i in idx]
            block["controllability"] = scorer.controllability_of_params(
                params[retrieved], asked, info.held_out_frames, "tracked parameters of the retrieved frames"
            )
        elif name == "mean_frame":
            block["controllability"] = None
        else:
            block["controllability"] = scorer.controllability_of(frames, asked, info.held_out_frames)
        t_ctl += time.perf_counter() - t0
        report[name] = block
    t0 = time.perf_counter()
    report["retrack_floor"] = scorer.controllability_of(gt, asked, info.held_out_frames)
    seconds["identity"], seconds["controllability"] = t_id, t_ctl + time.perf_counter() - t0
    report["face_boxes"] = boxes["face"].tolist()
    report["summary"] = {m: summary_row(report[m]) for m in methods}
    report["summary"]["retrack_floor"] = summary_row({"controllability": report["retrack_floor"]})

    rows = [inputs, *methods.values(), gt]
    k = min(6, len(held))
    pick = [round(i * (len(held) - 1) / max(1, k - 1)) for i in range(k)]
    sheet = out_dir / "contact_sheet.png"
    write_contact_sheet(sheet, [with_face_crops(r[pick], boxes["face"][pick]) for r in rows])
    report["contact_sheet"] = str(sheet)
    report["contact_sheet_rows"] = ["input colour", *(m.replace("_", " ") for m in methods), "ground truth"]
    report["contact_sheet_columns"] = f"held-out frames {[info.held_out_frames[i] for i in pick]}"
    report["contact_sheet_tiles"] = "each tile: the network frame, then its face box (15 % padding) enlarged"
    seconds["total"] = time.perf_counter() - t_start
    report["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    report = json_safe(report)
    write_text_atomic(out_dir / "report.json", json.dumps(report, indent=1) + "\n")
    return report
