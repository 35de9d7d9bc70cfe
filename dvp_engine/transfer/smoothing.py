"""Per-channel-group temporal smoothing of a track, with a strength per group (``dvp track``/``dvp edit``
``--smooth-group GROUP=STRENGTH``).

Groups (:data:`SMOOTH_GROUPS`): ``pose`` (head rotation and translation), ``expression`` (``expr.*``),
``gaze`` (``gaze.*``), ``blinks`` (``blink.*``), ``light`` (``light.sh.*``). The strength is a sigma in frames:

* pose, expression, gaze, light: a normalised Gaussian of that sigma (truncated at 3 sigma, renormalised at the
  ends of a run);
* blinks: a bilateral filter, the same Gaussian in time times a Gaussian of the value difference (sigma 0.15):
  jitter of a few hundredths is averaged away, but a lid closing (a step of 0.3 or more) keeps its edge, so a
  smoothed blink still closes the eye on the frames it did.

Only runs of valid frames (``track.valid`` 1) are smoothed, each separately: lost frames never mix into good
ones and keep their values. Strength 0 (or a group not named) leaves the group as it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

import numpy as np
import numpy.typing as npt

from dvp_engine.core import FaceTrack, layout

SMOOTH_GROUPS: Final[dict[str, tuple[str, ...]]] = {
    "pose": layout.HEAD_ROTATION + layout.HEAD_TRANSLATION,
    "expression": layout.EXPRESSION,
    "gaze": layout.GAZE,
    "blinks": layout.BLINK,
    "light": layout.LIGHT,
}
BLINK_RANGE_SIGMA: Final = 0.15
"""Value sigma of the blink channels' bilateral filter (blink units, 0..1)."""


def parse_smooth_groups(items: list[str]) -> dict[str, float]:
    """``["pose=2", "blinks=1", "all=1"]`` -> strengths per group; ``ValueError`` naming the bad item."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            strength = float(value)
        except ValueError:
            strength = float("nan")
        if not sep or not math.isfinite(strength) or strength < 0:
            raise ValueError(
                f"--smooth-group {item!r}: expected GROUP=STRENGTH with a strength >= 0 (frames)"
            )
        if name == "all":
            out.update(dict.fromkeys(SMOOTH_GROUPS, strength))
        elif name in SMOOTH_GROUPS:
            out[name] = strength
        else:
            raise ValueError(
                f"--smooth-group {item!r}: unknown group {name!r}; groups are all, {', '.join(SMOOTH_GROUPS)}"
            )
    return out


def _filter_run(
    seg: npt.NDArray[np.float64], sigma: float, range_sigma: float | None
) -> npt.NDArray[np.float64]:
    r = max(1, int(math.ceil(3 * sigma)))
    n = len(seg)
    num = np.zeros_like(seg)
    den = np.zeros_like(seg)
    for o in range(-r, r + 1):
        lo, hi = max(0, -o), min(n, n - o)
        if lo >= hi:
            continue
        w = math.exp(-0.5 * (o / sigma) ** 2)
        other = seg[lo + o : hi + o]
        wt = w if range_sigma is None else w * np.exp(-0.5 * ((other - seg[lo:hi]) / range_sigma) ** 2)
        num[lo:hi] += wt * other
        den[lo:hi] += wt
    return num / den


def smooth_track(track: FaceTrack, strengths: Mapping[str, float]) -> FaceTrack:
    """A copy of ``track`` with each named group smoothed at its strength (module docstring)."""
    for name in strengths:
        if name not in SMOOTH_GROUPS:
            raise ValueError(f"unknown smoothing group {name!r}; groups are {', '.join(SMOOTH_GROUPS)}")
    out = track.replace()
    valid = out.channels.get(layout.VALID, np.ones(out.n_frames, np.float32)) > 0.5
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return out
    runs = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
    for group, sigma in strengths.items():
        if sigma <= 0:
            continue
        rng = BLINK_RANGE_SIGMA if group == "blinks" else None
        for name in SMOOTH_GROUPS[group]:
            if name not in out.channels:
                continue
            values = out.channels[name].astype(np.float64)
            for run in runs:
                values[run] = _filter_run(values[run], float(sigma), rng)
            out.channels[name] = values.astype(np.float32)
    out.metadata["smoothing"] = {
        **out.metadata.get("smoothing", {}),
        **{k: float(v) for k, v in strengths.items()},
    }
    return out
