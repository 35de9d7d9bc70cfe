"""Picture for docs/guide.md: which square of a wide plate the network sees (``--framing``).

The sample clip (512 x 512) is placed 100 px from the left edge of a 912 x 512 plate, as a 16:9-ish shot with
the actor off-centre; 12 frames are tracked and the crops of ``--framing auto`` (head and shoulders in every
frame; green) and ``--framing centred`` (grey) are drawn on the first frame.

    python tools/make_framing_image.py            # writes docs/images/framing.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def draw_square(
    img, x0: int, y0: int, side: int, colour: tuple[float, float, float], width: int = 4, dash: int = 0
):  # noqa: ANN001, ANN201
    """Draw a square outline in place on an ``(H, W, 3)`` float image (``dash`` > 0: dashed)."""
    h, w = img.shape[:2]
    x1, y1 = min(x0 + side, w) - 1, min(y0 + side, h) - 1
    for t in range(width):
        for axis_pos, along in (((y0 + t), "h"), ((y1 - t), "h"), ((x0 + t), "v"), ((x1 - t), "v")):
            n = (x1 - x0 + 1) if along == "h" else (y1 - y0 + 1)
            keep = [(k // dash) % 2 == 0 for k in range(n)] if dash else [True] * n
            for k in range(n):
                if not keep[k]:
                    continue
                if along == "h":
                    img[axis_pos, x0 + k] = colour
                else:
                    img[y0 + k, axis_pos] = colour
    return img


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "framing.png")
    args = p.parse_args()

    import numpy as np

    from dvp_engine.io.images import write_image
    from dvp_engine.io.video import read_frames
    from dvp_engine.pipeline.portrait import Framing
    from dvp_engine.tracking.pipeline import track_video

    sample = ROOT / "dvp_engine" / "data" / "sample" / "wda_kh.mp4"
    plates = []
    for _, rgb in read_frames(sample, "1-12"):
        plate = np.full((512, 912, 3), 0.25, np.float32)
        plate[:, 100:612] = rgb
        plates.append((plate * 255 + 0.5).astype(np.uint8))
    track = track_video("wide", images=plates, frame_numbers=list(range(1, 13)), identity_keyframes=2)
    auto = Framing.choose("auto", track, 256)
    centred = Framing.choose("centred", track, 256)
    img = plates[0].astype(np.float32) / 255.0
    draw_square(img, centred.x0, centred.y0, centred.side, (0.8, 0.8, 0.8), dash=16)
    draw_square(img, auto.x0, auto.y0, auto.side, (0.1, 0.9, 0.2))
    write_image(args.out, img[::2, ::2])
    print(f"wrote {args.out}: auto {auto}, centred {centred}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
