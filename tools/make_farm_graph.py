"""Draw docs/images/farm_steps.png: the step graph of a real `dvp farm openjd` template (matplotlib).

Usage: python tools/make_farm_graph.py [-o docs/images/farm_steps.png]

Writes a bundle for the sample clip (a second actor: its first 12 frames, tracked in chunks) into a temporary
folder, reads the template.yaml back and draws each step (its tasks, its GPU needs) in columns by dependency
depth, with an arrow per dependency.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "images" / "farm_steps.png")
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import yaml
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    from dvp_engine.cli.main import main as dvp
    from dvp_engine.io.video import read_frames, write_video

    sample = ROOT / "dvp_engine" / "data" / "sample" / "wda_kh.mp4"
    with tempfile.TemporaryDirectory() as tmp:
        actor = write_video(Path(tmp) / "actor.mp4", (rgb for _, rgb in read_frames(sample, "1-40")), 25)
        code = dvp(["farm", "openjd", "-o", f"{tmp}/bundle", "--source", str(actor), "--target", str(sample),
                    "--job-dir", "/farm/jobs/shot010", "--frames", "1-40", "--chunk", "10", "--track-chunk", "20",
                    "--train-gpus", "4", "-q"])  # fmt: skip
        if code:
            return code
        tpl = yaml.safe_load((Path(tmp) / "bundle" / "template.yaml").read_text())
    steps = {s["name"]: s for s in tpl["steps"]}
    deps = {n: [d["dependsOn"] for d in s.get("dependencies", [])] for n, s in steps.items()}
    depth: dict[str, int] = {}

    def level(n: str) -> int:
        if n not in depth:
            depth[n] = 1 + max((level(d) for d in deps[n]), default=-1)
        return depth[n]

    for n in steps:
        level(n)
    cols: dict[int, list[str]] = {}
    for n in steps:
        cols.setdefault(depth[n], []).append(n)
    pos = {}
    for c, names in cols.items():
        for r, n in enumerate(names):
            pos[n] = (c * 2.35, -(r - (len(names) - 1) / 2) * 1.25)
    fig, ax = plt.subplots(figsize=(14, 4.6), dpi=110)
    w, h = 2.0, 0.9
    for n, (x, y) in pos.items():
        s = steps[n]
        amounts = {a["name"]: a["min"] for a in s["hostRequirements"]["amounts"]}
        space = s.get("parameterSpace", {}).get("taskParameterDefinitions", [])
        tasks = len(space[0]["range"]) if space else 1
        gpus = amounts.get("amount.worker.gpu", 0)
        colour = "#f6d5a8" if gpus else "#cfe3f5"
        ax.add_patch(
            FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.03", fc=colour, ec="#334")
        )
        cmd = s["script"]["actions"]["onRun"]
        head = cmd["command"] if cmd["command"] != "dvp" else "dvp " + cmd["args"][0]
        extra = f"{tasks} tasks" if tasks > 1 else "1 task"
        extra += f", {gpus} GPU" + ("s" if gpus > 1 else "") if gpus else ""
        extra += f", {amounts['amount.worker.memory'] // 1024} GiB"
        ax.text(x, y + 0.18, n, ha="center", va="center", fontsize=9.5, weight="bold")
        ax.text(x, y - 0.06, head, ha="center", va="center", fontsize=8, family="monospace")
        ax.text(x, y - 0.27, extra, ha="center", va="center", fontsize=7.5, color="#333")
    for n, ds in deps.items():
        for d in ds:
            (x0, y0), (x1, y1) = pos[d], pos[n]
            ax.add_patch(FancyArrowPatch((x0 + w / 2, y0), (x1 - w / 2, y1), arrowstyle="-|>", mutation_scale=12,
                                         color="#556", lw=1.1))  # fmt: skip
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 1.2, max(xs) + 1.2)
    ax.set_ylim(min(ys) - 0.9, max(ys) + 0.9)
    ax.axis("off")
    ax.set_title("dvp farm openjd: steps of the reenact job (orange: GPU host), from a generated template.yaml",
                 fontsize=10)  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, bbox_inches="tight")
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
