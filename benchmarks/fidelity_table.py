"""Print the Markdown table of a ``bench_fidelity.py`` result file (docs/network.md's reference figures).

    python benchmarks/fidelity_table.py benchmarks/results/cpu-2core_fidelity_demo10min.json

One row per clip and method (the model, nearest-neighbour retrieval, the mean training frame): whole-frame and
face-box PSNR (dB), face-box SSIM, sharpness and high-frequency fidelity in the face box, identity distance
(dlib descriptor), and the controllability errors (head rotation, degrees; gaze, degrees per eye; blinks, 0..1)
of the re-tracked output; then the iterations each model reached and its training time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

COLUMNS = (
    ("psnr", "PSNR", 2),
    ("face_psnr", "face PSNR", 2),
    ("face_ssim", "face SSIM", 3),
    ("sharpness", "sharpness", 2),
    ("hf_fidelity", "HF fidelity", 3),
    ("identity", "identity", 3),
    ("rotation_deg", "rot. err", 2),
    ("gaze_deg", "gaze err", 1),
    ("blink", "blink err", 3),
)
METHODS = (("model", "model"), ("nearest_neighbour", "retrieval"), ("mean_frame", "mean frame"))


def _cell(v: Any, digits: int) -> str:
    return "-" if v is None else f"{float(v):.{digits}f}"


def table(doc: dict[str, Any]) -> str:
    """The Markdown table of one result document."""
    head = "| clip | method | " + " | ".join(t for _, t, _ in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for row in doc["rows"]:
        for key, name in METHODS:
            s = row["summary"].get(key)
            if s is None:
                continue
            cells = [_cell(s.get(k), d) for k, _, d in COLUMNS]
            if key == "model":
                cells = [f"**{c}**" if c != "-" else c for c in cells]
            lines.append(f"| {row['clip']} | {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("| clip | frames | iterations | training s | ms / iteration |")
    lines.append("|---|---|---|---|---|")
    for row in doc["rows"]:
        tr = row.get("training", {})
        lines.append(
            f"| {row['clip']} | {row['frames']} | {tr.get('iters', '-')} | {row['seconds']['train']} | "
            f"{tr.get('ms_per_iter', '-')} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    print(table(json.loads(Path(argv[0]).read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
