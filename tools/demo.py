"""`make demo`: the main job on the bundled sample clip, on two CPU cores in at most 15 minutes.

1. track the 200-frame public-domain sample clip (dvp_engine/data/sample/wda_kh.mp4);
2. train the default ``fast`` space-time network of its speaker at 256 x 256 for ten minutes
   (dvp_engine.pipeline.budgets.DEMO) on the first 90 % of the frames — the last 20 frames (181-200) are held
   out and never trained on;
3. edit the held-out frames: a head turn (head.ry ramps to +15 degrees) and a gaze change (both eyes ramp to
   20 degrees toward image right), written as a curve file like the ones the Nuke and Blender adapters export;
4. render the edited frames to EXR (ACEScg RGB, the head matte in the channel matte.A, metadata), a side-by-side
   preview MP4 (original | conditioning | result) and a contact sheet PNG.

It is one `dvp reenact` job, so rerunning `make demo` skips what is done. `--arch paper` trains the paper's
network instead (the reference; at the same budget it is blurred). With a GPU, `--full` trains the ``fast``
network at 256 with GPU settings (budgets.FULL: width 64, batch 16, 6,000 iterations; untested on a GPU so
far), `--full --arch paper` the paper's recipe (31,000 iterations, batch 16).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dvp_engine.cli.main import main as dvp  # noqa: E402
from dvp_engine.core import Curve, CurveSet, Key  # noqa: E402
from dvp_engine.pipeline.budgets import DEMO, FULL_BY_ARCH  # noqa: E402

SAMPLE = ROOT / "dvp_engine" / "data" / "sample" / "wda_kh.mp4"
HELD_OUT = (181, 200)


def edit_curves() -> CurveSet:
    """A head turn and a gaze change over the held-out frames, as offsets that ease in and hold."""
    a, b = HELD_OUT
    mid = a + (b - a) * 2 // 3

    def ramp(amount: float) -> Curve:
        return Curve([Key(a, 0.0, "smooth"), Key(mid, amount, "linear"), Key(b, amount)], "offset", (a, b))

    return CurveSet(
        {"head.ry": ramp(15.0), "gaze.left.x": ramp(20.0), "gaze.right.x": ramp(20.0)},
        metadata={"made_by": "tools/demo.py", "what": "head turn and gaze change on the held-out frames"},
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "demo_out", help="job folder (default demo_out/)")
    p.add_argument("--full", action="store_true", help="GPU settings (dvp_engine.pipeline.budgets.FULL)")
    p.add_argument("--arch", choices=("fast", "paper"), default="fast", help="network architecture (fast)")
    p.add_argument("--iters", type=int, help="override the training iterations (the most, with a time limit)")
    p.add_argument(
        "--minutes", type=float, help="override the training time limit (demo: 10 minutes; 0: none)"
    )
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    curves = args.out / "demo_edits.json"
    edit_curves().save(curves)
    # the one definition of each budget, shared with benchmarks/bench_fidelity.py
    budget = (FULL_BY_ARCH[args.arch] if args.full else DEMO).with_arch(args.arch)
    if args.minutes is not None:
        budget = replace(budget, seconds=60.0 * args.minutes if args.minutes > 0 else None)
    iters = args.iters or budget.iters
    t0 = time.time()
    code = dvp(
        [
            "reenact",
            "--source", str(SAMPLE),
            "--target", str(SAMPLE),
            "--mode", "full",
            "--curves", str(curves),
            "--frames", f"{HELD_OUT[0]}-{HELD_OUT[1]}",
            *budget.dvp_train_args(iters),
            "--device", args.device,
            "-o", str(args.out),
        ]
    )  # fmt: skip
    if code:
        return code
    minutes = (time.time() - t0) / 60
    print(
        f"\ndvp demo finished in {minutes:.1f} min. Outputs in {args.out}/:\n"
        f"  frames/frame.####.exr   edited held-out frames {HELD_OUT[0]}-{HELD_OUT[1]} (ACEScg RGB + head matte in matte.A)\n"
        f"  preview.mp4             original | conditioning | result\n"
        f"  contact_sheet.png       rows: original, colour conditioning, eye gaze, result\n"
        f"  model/                  the trained network (previews/, log.jsonl, checkpoints/)\n"
        f"  work/*.npz              tracks: try `dvp info {args.out}/work/target.npz`\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
