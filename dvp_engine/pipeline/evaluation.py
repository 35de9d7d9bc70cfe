"""Evaluation on held-out frames (paper section 7): the model against two baselines the paper discusses.

* the space-time model itself (Nw = 11);
* **nearest-neighbour retrieval**: for each held-out frame, the training frame whose parameters (pose,
  expression, gaze, blinks; standardised) are closest, shown as it is;
* a **single-frame network** (Nw = 1) trained the same way (same size, width, batch and iterations).

Metrics on [0, 1] sRGB frames at the network size: PSNR (dB), SSIM (kornia), L1 and a temporal-stability error
(frame differences against the ground truth's). A JSON report and a contact sheet PNG (rows: input colour
render, model, single-frame baseline if present, nearest neighbour, ground truth) are written.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from dvp_engine.core import FaceTrack, layout
from dvp_engine.core.atomic import write_text_atomic
from dvp_engine.core.errors import DvpError

from .portrait import ModelInfo, prepare_data, train_portrait

log = logging.getLogger("dvp")

NN_CHANNELS = layout.HEAD_ROTATION + layout.HEAD_TRANSLATION + layout.EXPRESSION + layout.GAZE + layout.BLINK


def evaluate_model(
    model_dir: Path,
    out_dir: Path,
    *,
    single_frame_model: Path | None = None,
    train_single_frame: bool = False,
    device: str = "cpu",
    batch: int = 8,
) -> dict[str, Any]:
    """Score a trained model and the baselines on its held-out frames; returns the report dict."""
    import torch

    from dvp_engine.network import PairDataset, Renderer
    from dvp_engine.network.checkpoint import latest_checkpoint, read_state
    from dvp_engine.network.data import to_network_range
    from dvp_engine.network.evaluate import (
        evaluate_dataset,
        evaluate_frames,
        nearest_neighbour,
        to_unit,
        write_contact_sheet,
    )

    info = ModelInfo.load(model_dir)
    track_path = Path(info.track)
    if not track_path.is_file():
        raise DvpError("the model's track file is gone; evaluation needs it", path=track_path)
    track = FaceTrack.load(track_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    cond_path, frames_path = prepare_data(
        track, info.source, info.framing, model_dir / "cache", device=device
    )
    cond, video = np.load(cond_path, mmap_mode="r"), np.load(frames_path, mmap_mode="r")
    held = [track.index_of(f) for f in info.held_out_frames]
    train = [track.index_of(f) for f in info.train_frames]
    if len(held) < 2:
        raise DvpError("fewer than 2 held-out frames: nothing to evaluate", path=model_dir)

    report: dict[str, Any] = {"model_dir": str(model_dir), "held_out_frames": info.held_out_frames}
    ds = PairDataset.from_sequence(cond, video, info.nw, indices=held)
    renderer = Renderer(model_dir, device=device, batch=batch)
    report["model"], out, gt = evaluate_dataset(renderer.render, ds, batch)
    inputs = to_unit(to_network_range(np.asarray(cond[held])[:, :3]))  # the current frames' colour renders

    # nearest-neighbour retrieval over the training frames
    chans = np.stack([track.channels[c] for c in NN_CHANNELS], axis=1).astype(np.float64)
    idx = nearest_neighbour(chans[train], chans[held])
    nn = torch.from_numpy(np.stack([video[train[i]] for i in idx]).astype(np.float32) / 255.0)
    report["nearest_neighbour"] = evaluate_frames(nn, gt)
    report["nearest_neighbour"]["retrieved_frames"] = [info.train_frames[i] for i in idx]

    rows = [inputs, out]
    if train_single_frame and single_frame_model is None:
        cfg = read_state(latest_checkpoint(model_dir))["config"]
        single_frame_model = out_dir / "single_frame_model"
        log.info("training the single-frame baseline (Nw = 1) in %s", single_frame_model)
        train_portrait(
            track_path,
            info.source,
            single_frame_model,
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
    if single_frame_model is not None:
        sf_info = ModelInfo.load(single_frame_model)
        if sf_info.nw != 1:
            raise DvpError(
                f"the single-frame baseline must have Nw = 1, this one has {sf_info.nw}",
                path=single_frame_model,
            )
        sf_ds = PairDataset.from_sequence(cond, video, 1, indices=held)
        sf = Renderer(single_frame_model, device=device, batch=batch)
        report["single_frame"], sf_out, _ = evaluate_dataset(sf.render, sf_ds, batch)
        rows.append(sf_out)
    else:
        report["single_frame"] = None
    rows += [nn, gt]
    k = min(6, len(held))
    pick = [round(i * (len(held) - 1) / max(1, k - 1)) for i in range(k)]
    write_contact_sheet(out_dir / "contact_sheet.png", [r[pick] for r in rows])
    report["contact_sheet"] = str(out_dir / "contact_sheet.png")
    report["contact_sheet_rows"] = (
        ["input colour", "model"]
        + (["single frame"] if single_frame_model else [])
        + [
            "nearest neighbour",
            "ground truth",
        ]
    )
    write_text_atomic(out_dir / "report.json", json.dumps(report, indent=1) + "\n")
    return report
