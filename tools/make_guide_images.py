"""Pictures for docs/guide.md: each transfer mode applied to the sample clip, with the demo's model.

The sample clip drives itself across time: the source is its first half (frames 1-100), the target its second
half (frames 101-200), so each mode's effect is visible while everything stays public domain.

    python tools/make_guide_images.py --job demo_out      # after `make demo`

Writes docs/images/guide_modes.png: columns = target frame, full, expression, gaze, pose, dubbing; rows =
colour conditioning, eye-gaze conditioning, the network's output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODES = ("full", "expression", "gaze", "pose", "dubbing")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--job", type=Path, default=ROOT / "demo_out", help="a finished demo job folder")
    p.add_argument("--frame", type=int, default=190, help="target frame to show (default 190)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "guide_modes.png")
    args = p.parse_args()

    import numpy as np
    import torch

    from dvp_engine.core import FaceTrack
    from dvp_engine.facemodel import load_default_model
    from dvp_engine.network import Renderer
    from dvp_engine.network.data import stack_window
    from dvp_engine.network.evaluate import to_unit, write_contact_sheet
    from dvp_engine.pipeline.portrait import ModelInfo, conditioning_frames
    from dvp_engine.render.volume import window_indices
    from dvp_engine.transfer import transfer

    track = FaceTrack.load(args.job / "work" / "target.npz")
    model_dir = args.job / "model"
    info = ModelInfo.load(model_dir)
    source = track.select(range(1, 101))
    target = track.select(range(101, 201))
    weights = load_default_model().mouth_weights()
    renderer = Renderer(model_dir, device="cpu", batch=8)
    cols_colour, cols_gaze, cols_out = [], [], []
    for mode in (None, *MODES):
        new = target if mode is None else transfer(source, target, mode, mouth_weights=weights)[0]
        i = new.index_of(args.frame)
        window = new.select([int(new.frames[j]) for j in window_indices(i, info.nw)])
        cond, _ = conditioning_frames(window, info.framing)
        vol = stack_window(cond, info.nw - 1, info.nw)[None]
        out = renderer.render(vol)
        cols_colour.append(cond[-1, 0:3].astype(np.float32) / 255.0)
        cols_gaze.append(cond[-1, 6:9].astype(np.float32) / 255.0)
        cols_out.append(to_unit(out)[0].numpy())
    rows = [torch.from_numpy(np.stack(c)) for c in (cols_colour, cols_gaze, cols_out)]
    write_contact_sheet(args.out, rows)
    print(f"wrote {args.out} (columns: target, {', '.join(MODES)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
