"""Draw docs/images/nuke_panel.png (the DVPortrait panel, from mapping.knob_layout) and nuke_graph.png.

Run from the repository root with the dev venv (matplotlib is a build-time tool, never needed in Nuke)::

    .venv/bin/python nuke_plugin/tools/make_doc_images.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "nuke_plugin"), str(ROOT)]
from dvp_nuke import mapping  # noqa: E402

BG, FIELD, TEXT, ACCENT = "#3a3a3a", "#262626", "#dddddd", "#c9a24a"


def panel(out: Path) -> None:
    specs = mapping.knob_layout()
    rows: list[list[mapping.KnobSpec]] = []
    in_group = False
    for s in specs:
        if s.kind == "begin_closed_group":
            rows.append([s])
            in_group = True
            continue
        if s.kind == "end_group":
            in_group = False
            continue
        if in_group or s.kind == "tab":
            continue
        if not s.startline and rows and rows[-1][0].kind in ("button", "xy"):
            rows[-1].append(s)  # Nuke puts a knob without a start line beside the one before it
        else:
            rows.append([s])
    h = 0.42 * len(rows) + 1.0
    fig, ax = plt.subplots(figsize=(8.4, h), dpi=110)
    fig.patch.set_facecolor(BG)
    ax.set_xlim(0, 10)
    ax.set_ylim(-len(rows) - 1.2, 0.6)
    ax.axis("off")
    ax.add_patch(Rectangle((0.05, -0.05), 1.9, 0.6, color="#4a4a4a"))
    ax.text(1.0, 0.25, "DVPortrait", color=TEXT, ha="center", va="center", fontsize=9, weight="bold")
    for r, row in enumerate(rows):
        y = -r - 0.8
        s = row[0]
        label = s.label or ""
        if s.kind == "begin_closed_group":
            ax.text(
                0.3,
                y,
                "\u25b6 advanced  (expr.00..63, light.sh.00..26: closed group)",
                color=ACCENT,
                va="center",
                fontsize=8.5,
            )
            continue
        if s.kind == "text":
            ax.text(
                3.0,
                y,
                str(s.default).replace("<b>", "").replace("</b>", ""),
                color="#aaaaaa",
                va="center",
                fontsize=8,
                style="italic",
            )
            continue
        if s.kind == "button":
            step = min(1.9, 7.9 / len(row))
            for i, b in enumerate(row):
                ax.add_patch(
                    FancyBboxPatch(
                        (2.0 + i * step, y - 0.17),
                        step - 0.2,
                        0.34,
                        boxstyle="round,pad=0.02",
                        color="#5a5a5a",
                    )
                )
                ax.text(
                    1.9 + (i + 0.5) * step, y, b.label, color=TEXT, ha="center", va="center", fontsize=7.5
                )
            continue
        if s.kind == "xy":  # two fields (x, y) and the knobs beside it; a handle in the Viewer
            ax.text(2.8, y, label, color=TEXT, ha="right", va="center", fontsize=8)
            for i, axis in enumerate("xy"):
                ax.add_patch(Rectangle((3.0 + i * 1.0, y - 0.15), 0.9, 0.3, color=FIELD))
                ax.text(3.05 + i * 1.0, y, f"{axis} px", color="#8fb3d9", va="center", fontsize=6.2)
            for b in row[1:]:
                ax.text(5.6, y, b.label, color=TEXT, ha="right", va="center", fontsize=8)
                ax.add_patch(Rectangle((5.7, y - 0.15), 0.9, 0.3, color=FIELD))
                ax.text(5.75, y, "metres", color="#8fb3d9", va="center", fontsize=6.2)
            ax.text(7.0, y, "\u2295 handle on the plate", color="#aaaaaa", va="center", fontsize=7)
            ax.text(9.7, y, "\u25c6", color="#5fa8d3", ha="center", va="center", fontsize=8)
            continue
        ax.text(2.8, y, label, color=TEXT, ha="right", va="center", fontsize=8)
        n = 1
        width = {"file": 5.6, "string": 3.0, "enum": 2.2}.get(s.kind, 1.1)
        for i in range(n):
            ax.add_patch(Rectangle((3.0 + i * 1.25, y - 0.15), width, 0.3, color=FIELD))
            if s.channels:
                ax.text(3.05 + i * 1.25, y, s.channels[i], color="#8fb3d9", va="center", fontsize=6.2)
        if s.kind == "double":
            ax.plot([4.3, 8.8], [y, y], color="#777777", lw=1)
            ax.plot([6.0], [y], marker="o", color="#aaaaaa", ms=4)
        if s.channels or s.name == "look_weight":
            ax.text(9.7, y, "\u25c6", color="#5fa8d3", ha="center", va="center", fontsize=8)  # animated
        if s.kind == "enum":
            ax.text(3.1, y, s.values[0] + "  \u25be", color=TEXT, va="center", fontsize=7)
        if s.kind == "file":
            ax.text(8.8, y, "...", color=TEXT, va="center", fontsize=8)
    ax.text(
        0.2,
        -len(rows) - 0.9,
        "\u25c6 = animatable, keyed per tracked frame by Import Track; "
        "track confidence shows as a curve in the Curve Editor",
        color="#aaaaaa",
        fontsize=7.5,
    )
    fig.savefig(out, facecolor=BG, bbox_inches="tight")
    plt.close(fig)


def _box(ax: plt.Axes, x: float, y: float, text: str, color: str, w: float = 1.9, h: float = 0.55) -> None:
    ax.add_patch(
        FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.04", fc=color, ec="#222222")
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=8.5)


def _arrow(ax: plt.Axes, a: tuple[float, float], b: tuple[float, float], text: str = "") -> None:
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=12, color="#333333", lw=1.2))
    if text:
        ax.text((a[0] + b[0]) / 2 + 0.08, (a[1] + b[1]) / 2, text, fontsize=7.5, color="#444444")


def graph(out: Path) -> None:
    fig, ax = plt.subplots(figsize=(10, 5.6), dpi=110)
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 6)
    ax.axis("off")
    ax.add_patch(Rectangle((2.6, 0.6), 4.2, 4.9, fc="#efe8f6", ec="#7b4fa8", lw=1.5))
    ax.text(2.7, 5.3, "DVPortrait (Group)", color="#7b4fa8", fontsize=9, weight="bold")
    _box(ax, 1.2, 4.7, "Read\nplate", "#d9d9d9")
    _box(ax, 3.6, 4.7, "Input\nplate", "#ffffff")
    _box(ax, 5.7, 4.7, "Read result\nout.####.exr", "#cfe3f5")
    _box(ax, 5.7, 3.6, "Transform place\n(crop on plate)", "#ffffff")
    _box(ax, 3.9, 2.5, "Copy matte -> alpha, Premult\n-> Merge2 over (B plate)", "#ffffff", w=2.5)
    _box(ax, 5.2, 1.4, "Switch\n(knob 'show')", "#ffffff")
    _box(ax, 8.4, 1.4, "Viewer / comp", "#d9d9d9")
    _arrow(ax, (2.15, 4.7), (2.65, 4.7))
    _arrow(ax, (5.7, 4.42), (5.7, 3.88))
    _arrow(ax, (3.6, 4.42), (3.75, 2.8), "B")
    _arrow(ax, (5.2, 3.32), (4.3, 2.8), "A")
    _arrow(ax, (3.9, 2.22), (4.9, 1.7), "1")
    _arrow(ax, (5.75, 3.32), (5.4, 1.7), "0")
    _arrow(ax, (6.15, 1.4), (7.45, 1.4))
    _box(ax, 8.4, 4.7, "dvp render / track\n(separate process)", "#fbe3c4", w=2.4)
    _arrow(ax, (6.8, 3.9), (7.6, 4.45))
    ax.text(
        7.0,
        3.5,
        "Render: dvp render --track track.npz\n--curves curves.json --frames R",
        fontsize=7.5,
        color="#444444",
    )
    _arrow(ax, (7.2, 4.85), (6.65, 4.85))
    ax.text(7.05, 5.05, "EXRs", fontsize=7.5, color="#444444")
    ax.text(
        7.0,
        2.6,
        "progress lines -> ProgressTask\nerrors -> message naming the frame",
        fontsize=7.5,
        color="#444444",
    )
    ax.text(
        0.2,
        0.25,
        "Knobs (head, gaze, blinks, controls, advanced expr/light) are keyed from the track; "
        "Export Curves writes only the edited channels.",
        fontsize=8,
        color="#333333",
    )
    fig.savefig(out, bbox_inches="tight", facecolor="white")
    plt.close(fig)


def icon(out: Path) -> None:
    """The 24 x 24 menu icon: a face profile in the node's colour."""
    fig = plt.figure(figsize=(0.24, 0.24), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    ax.add_patch(
        FancyBboxPatch((0.05, 0.05), 0.9, 0.9, boxstyle="round,pad=0.0,rounding_size=0.2", fc="#7b4fa8")
    )
    ax.add_patch(matplotlib.patches.Ellipse((0.5, 0.52), 0.5, 0.66, fc="#f0d9c0"))
    ax.plot([0.4, 0.6], [0.6, 0.6], "o", color="#333333", ms=1.5)
    fig.savefig(out, transparent=True)
    plt.close(fig)


if __name__ == "__main__":
    icon(ROOT / "nuke_plugin" / "icons" / "DVPortrait.png")
    images = ROOT / "docs" / "images"
    panel(images / "nuke_panel.png")
    graph(images / "nuke_graph.png")
    print("wrote", images / "nuke_panel.png", images / "nuke_graph.png")
