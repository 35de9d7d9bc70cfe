"""Cross-reenactment evaluation: a model driven by parameters it never saw (``dvp eval --model M --track T``).

``T`` is e.g. another actor's performance transferred onto the target (``dvp transfer``), or a curve edit of the
target's own track. There is no ground-truth frame, so no PSNR; the report holds, for the model and the
nearest-neighbour retrieval baseline (the target's training frame closest in parameters to each asked frame):

* ``identity``: dlib descriptor distance of each output frame to the target actor's reference descriptor (the
  mean over up to 24 of its training frames, spread over the clip); ``reference_spread`` is the mean distance
  of those training frames themselves to the reference (how much the actor's own frames vary);
* ``controllability``: the output re-tracked with the target's identity against the asked parameters (the
  retrieval baseline: its retrieved frames' tracked parameters).

A contact sheet shows the colour conditioning, the model and the retrieval baseline, each with its face box
enlarged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from dvp_engine.core import FaceTrack
from dvp_engine.core.atomic import write_text_atomic
from dvp_engine.core.errors import DvpError
from dvp_engine.core.frames import FrameSet

from .eval_scoring import Scorer, json_safe, with_face_crops
from .evaluation import NN_CHANNELS, load_model_track, summary_row
from .portrait import conditioning_frames, prepare_data

REFERENCE_FRAMES = 24


def evaluate_cross(
    model_dir: Path,
    track_path: Path,
    out_dir: Path,
    *,
    frames: FrameSet | Iterable[int] | None = None,
    device: str = "cpu",
    batch: int = 8,
    controllability: bool = True,
) -> dict[str, Any]:
    """Render ``track_path`` (the frames ``frames``, default all) with the model and score identity and
    controllability (see the module docstring); writes ``report.json`` and ``contact_sheet.png`` in ``out_dir``."""
    import torch

    from dvp_engine.facemodel import load_default_model
    from dvp_engine.network import Renderer
    from dvp_engine.network.data import gather_windows, to_network_range, window_indices
    from dvp_engine.network.evaluate import nearest_neighbour, to_unit, write_contact_sheet
    from dvp_engine.network.metrics_identity import mean_descriptor
    from dvp_engine.network.metrics_regions import region_boxes

    t_start = time.perf_counter()
    info, target_path, target = load_model_track(model_dir)
    if not Path(track_path).is_file():
        raise DvpError("track file not found", path=track_path)
    other = FaceTrack.load(track_path)
    f = info.framing
    if f.x0 + f.side > other.width or f.y0 + f.side > other.height:
        raise DvpError(
            f"the track's image size {other.width}x{other.height} does not hold the model's crop ({f.side} px at "
            f"{f.x0},{f.y0}); evaluate tracks in the target footage's frame (e.g. made by 'dvp transfer')",
            path=track_path,
        )
    wanted = other.frames_of(frames)
    if not wanted:
        raise DvpError("no frames to evaluate", path=track_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = "cuda" if device.startswith("cuda") else "cpu"

    # render the asked frames (each with the Nw frames ending at it)
    rows = sorted({j for fr in wanted for j in window_indices(other.index_of(fr), info.nw)})
    pos = {int(other.frames[i]): k for k, i in enumerate(rows)}
    sub = other.select([int(other.frames[i]) for i in rows])
    cond, _ = conditioning_frames(sub, f, device=dev, batch=batch)
    windows = [
        [pos[int(other.frames[j])] for j in window_indices(other.index_of(fr), info.nw)] for fr in wanted
    ]
    renderer = Renderer(model_dir, device=device, batch=batch, expect={"size": f.size, "nw": info.nw})
    out = to_unit(renderer.render(gather_windows(cond, windows)))
    inputs = to_unit(to_network_range(cond[[pos[fr] for fr in wanted]][:, :3]))

    # the retrieval baseline over the target's training frames, and the target's reference descriptor
    _, frames_path = prepare_data(target, info.source, f, model_dir / "cache", device=dev)
    video = np.load(frames_path, mmap_mode="r")
    train = [target.index_of(fr) for fr in info.train_frames]
    asked = other.params()[[other.index_of(fr) for fr in wanted]]
    t_chans = np.stack([target.channels[c] for c in NN_CHANNELS], axis=1).astype(np.float64)
    o_chans = np.stack([other.channels[c] for c in NN_CHANNELS], axis=1).astype(np.float64)
    idx = nearest_neighbour(t_chans[train], o_chans[[other.index_of(fr) for fr in wanted]])
    retrieved = [train[i] for i in idx]
    nn = torch.from_numpy(np.stack([video[r] for r in retrieved]).astype(np.float32) / 255.0)

    scorer = Scorer(load_default_model(), target, f, device=device, controllability=controllability)
    ref_rows = [train[round(i)] for i in np.linspace(0, len(train) - 1, min(REFERENCE_FRAMES, len(train)))]
    ref_images = torch.from_numpy(np.stack([video[r] for r in ref_rows]).astype(np.float32) / 255.0)
    ref_hints = scorer.boxes(target.params()[ref_rows])["face"]
    reference = mean_descriptor(scorer.describer, ref_images, ref_hints)
    if not np.isfinite(reference).all():
        raise DvpError(
            "no face found in the target's training frames for an identity reference", path=target_path
        )
    spread = scorer.identity(ref_images, reference, ref_hints)["distance"]

    s = f.size
    boxes = region_boxes(scorer.model, other, [], scorer.net_intrinsics, (s, s), params=asked)
    report: dict[str, Any] = {
        "mode": "cross_reenactment",
        "model_dir": str(model_dir),
        "target_track": str(target_path),
        "track": str(track_path),
        "frames": wanted,
        "identity_matches_target": bool(np.allclose(other.identity, target.identity, atol=1e-5)),
        "reference_frames": [int(target.frames[r]) for r in ref_rows],
        "reference_spread": spread,
    }
    report["model"] = {
        "identity": scorer.identity(out, reference, boxes["face"]),
        "controllability": scorer.controllability_of(out, asked, wanted),
    }
    report["nearest_neighbour"] = {
        "retrieved_frames": [info.train_frames[i] for i in idx],
        "identity": scorer.identity(nn, reference, boxes["face"]),
        "controllability": scorer.controllability_of_params(
            target.params()[retrieved], asked, wanted, "tracked parameters of the retrieved frames"
        ),
    }
    report["summary"] = {m: summary_row(report[m]) for m in ("model", "nearest_neighbour")}
    k = min(6, len(wanted))
    pick = [round(i * (len(wanted) - 1) / max(1, k - 1)) for i in range(k)]
    sheet = out_dir / "contact_sheet.png"
    write_contact_sheet(sheet, [with_face_crops(r[pick], boxes["face"][pick]) for r in (inputs, out, nn)])
    report["contact_sheet"] = str(sheet)
    report["contact_sheet_rows"] = ["input colour", "model", "nearest neighbour"]
    report["contact_sheet_columns"] = f"frames {[wanted[i] for i in pick]}"
    report["contact_sheet_tiles"] = "each tile: the network frame, then its face box (15 % padding) enlarged"
    report["seconds"] = {"total": round(time.perf_counter() - t_start, 3)}
    report = json_safe(report)
    write_text_atomic(out_dir / "report.json", json.dumps(report, indent=1) + "\n")
    return report
