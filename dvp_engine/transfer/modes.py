"""Source-to-target parameter transfer (paper sections 5 and 7.1), relative to neutral reference frames.

All parameters are copied *relative* to a neutral reference frame of each actor:

* rotation: ``R = R_s(f) R_s(ref)^T R_t(ref)`` (the source's motion since its neutral pose, applied to the
  target's neutral pose);
* translation: ``t = t_t(ref) + (t_s(f) - t_s(ref)) * t_t(ref).z / t_s(ref).z`` (motion scaled to the target's
  distance from the camera);
* expression, gaze: ``x = x_t(ref) + (x_s(f) - x_s(ref))``; blinks likewise, clipped to [0, 1].
* gaze when **both** tracks carry an eye calibration (``FaceTrack.eyes``, method ``camera`` or ``forward``):
  copied as it is, ``x = x_s(f)``: calibrated gaze 0 looks along the face's forward axis for every actor, so
  the target looks where the source looks (relative to the head) rather than where it looked in its neutral
  frame. A source's look-at control (:mod:`dvp_engine.core.gaze`) is resolved into its gaze first, and the
  target's own look-at weight is set to 0 where the gaze is transferred.

The target's identity, reflectance and light are kept. Modes and the channels each may change:

=============  ====================================================================================
``full``       head rotation + translation, expression, gaze, blinks
``expression`` expression
``gaze``       gaze and blinks
``pose``       head rotation + translation
``dubbing``    the mouth part of the expression only (weights per expression component, see below)
=============  ====================================================================================

Source and target may have different lengths and frame rates: output frame ``k`` (numbered from the target's
first frame, at the target's rate) shows the source at the same time since its first frame. Where the source's
face was lost (``track.valid`` = 0) the target keeps its own parameters, and the frames are reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from dvp_engine.core import FaceTrack, layout
from dvp_engine.core.gaze import LOOK_WEIGHT, resolved_gaze
from dvp_engine.core.rotation import euler_to_matrix, matrix_to_euler

from .retime import sample_track

MODES: Final[dict[str, tuple[str, ...]]] = {
    "full": layout.HEAD_ROTATION + layout.HEAD_TRANSLATION + layout.EXPRESSION + layout.GAZE + layout.BLINK,
    "expression": layout.EXPRESSION,
    "gaze": layout.GAZE + layout.BLINK,
    "pose": layout.HEAD_ROTATION + layout.HEAD_TRANSLATION,
    "dubbing": layout.EXPRESSION,
}
"""Mode name -> the channels it may change."""


@dataclass
class TransferReport:
    """What a transfer did: reference frames used and the output frames where the source was lost."""

    mode: str
    source_reference: int
    target_reference: int
    source_lost_frames: list[int] = field(default_factory=list)
    output_frames: int = 0
    gaze: str = ""

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        out = [
            f"transfer mode {self.mode}: {self.output_frames} frames, neutral reference source frame "
            f"{self.source_reference}, target frame {self.target_reference}"
            + (f"; gaze {self.gaze}" if self.gaze else "")
        ]
        if self.source_lost_frames:
            lost = self.source_lost_frames
            out.append(
                f"source face lost for {len(lost)} output frames (first {lost[0]}, last {lost[-1]}): "
                "the target keeps its own parameters there"
            )
        return out


def _matrix(
    track_channels: dict[str, npt.NDArray[np.float32]], names: tuple[str, ...]
) -> npt.NDArray[np.float64]:
    return np.stack([track_channels[n].astype(np.float64) for n in names], axis=1)


def choose_neutral(track: FaceTrack, expression_std: npt.ArrayLike | None = None) -> int:
    """Pick a neutral reference frame: confident, facing the camera, open eyes, expression near zero.

    Score per valid frame = ``|expr / std|^2 / 64 + (|rx| + |ry| + |rz|) / 10 deg + blink sum + (1 - confidence)``;
    the lowest wins. ``expression_std`` (64,) scales the expression coefficients (1 when not given).
    """
    if track.n_frames == 0:
        raise ValueError("cannot choose a neutral frame of an empty track")
    std = np.ones(layout.N_EXPRESSION) if expression_std is None else np.asarray(expression_std, np.float64)
    expr = _matrix(track.channels, layout.EXPRESSION) / np.maximum(std, 1e-12)
    rot = np.abs(_matrix(track.channels, layout.HEAD_ROTATION)).sum(axis=1)
    blink = _matrix(track.channels, layout.BLINK).sum(axis=1) if layout.BLINK[0] in track.channels else 0.0
    conf = track.channels.get(layout.CONFIDENCE, np.ones(track.n_frames, np.float32)).astype(np.float64)
    score = (expr**2).mean(axis=1) + rot / 10.0 + blink + (1.0 - conf)
    valid = track.channels.get(layout.VALID, np.ones(track.n_frames, np.float32)) > 0.5
    if not valid.any():
        raise ValueError("no valid (tracked) frame to use as the neutral reference")
    score = np.where(valid, score, np.inf)
    return int(track.frames[int(np.argmin(score))])


def transfer(
    source: FaceTrack,
    target: FaceTrack,
    mode: str = "full",
    *,
    source_reference: int | None = None,
    target_reference: int | None = None,
    mouth_weights: npt.ArrayLike | None = None,
    n_frames: int | None = None,
) -> tuple[FaceTrack, TransferReport]:
    """Transfer parameters from ``source`` to ``target``.

    Args:
        source, target: tracks of the two actors (may differ in length and rate).
        mode: one of :data:`MODES`.
        source_reference, target_reference: neutral frame numbers (chosen by :func:`choose_neutral` if None).
        mouth_weights: ``(64,)`` in [0, 1], how much each expression component belongs to the mouth; required
            for ``dubbing`` (the face model gives it: :func:`dvp_engine.facemodel` ``mouth_weights``).
        n_frames: output length (default: the source's duration at the target's rate).

    Returns:
        The new target track (target identity, reflectance and light kept) and a :class:`TransferReport`.
    """
    if mode not in MODES:
        raise ValueError(f"unknown transfer mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "dubbing" and mouth_weights is None:
        raise ValueError("dubbing needs mouth_weights (64,) from the face model")
    s_ref = choose_neutral(source) if source_reference is None else int(source_reference)
    t_ref = choose_neutral(target) if target_reference is None else int(target_reference)
    si, ti = source.index_of(s_ref), target.index_of(t_ref)

    # Output frames: target numbering and rate; source sampled at the same time since its first frame.
    s0, t0 = int(source.frames[0]), int(target.frames[0])
    if n_frames is None:
        duration = float((source.frames[-1] - s0) / source.rate)
        n_frames = int(np.floor(duration * float(target.rate) + 1e-9)) + 1
    out_frames = np.arange(t0, t0 + n_frames, dtype=np.int64)
    src_pos = s0 + (out_frames - t0) / float(target.rate) * float(source.rate)
    src = sample_track(source, src_pos)
    gaze_mode = ""
    if mode in ("full", "gaze"):
        gaze_mode = (
            "absolute (both tracks calibrated)"
            if _calibrated(source) and _calibrated(target)
            else ("relative to the neutral frames")
        )
        src = _resolve_source_look_at(source, src, src_pos)
    # The target's own per-frame values where it has them, its reference frame's beyond its end.
    tgt_idx = np.searchsorted(target.frames, out_frames)
    has = (tgt_idx < target.n_frames) & (
        target.frames[np.minimum(tgt_idx, target.n_frames - 1)] == out_frames
    )
    take = np.where(has, np.minimum(tgt_idx, target.n_frames - 1), ti)
    chans = {k: v[take].copy() for k, v in target.channels.items()}

    def ref(track: FaceTrack, i: int, names: tuple[str, ...]) -> npt.NDArray[np.float64]:
        return np.array([float(track.channels[n][i]) for n in names])

    new: dict[str, npt.NDArray[np.float64]] = {}
    if mode in ("full", "pose"):
        r_s = euler_to_matrix(_matrix(src, layout.HEAD_ROTATION))
        r_s0 = euler_to_matrix(ref(source, si, layout.HEAD_ROTATION))
        r_t0 = euler_to_matrix(ref(target, ti, layout.HEAD_ROTATION))
        eul = matrix_to_euler(r_s @ r_s0.T @ r_t0)
        for j, n in enumerate(layout.HEAD_ROTATION):
            new[n] = eul[:, j]
        ts0, tt0 = ref(source, si, layout.HEAD_TRANSLATION), ref(target, ti, layout.HEAD_TRANSLATION)
        scale = tt0[2] / ts0[2] if abs(ts0[2]) > 1e-9 else 1.0
        trans = tt0 + (_matrix(src, layout.HEAD_TRANSLATION) - ts0) * scale
        for j, n in enumerate(layout.HEAD_TRANSLATION):
            new[n] = trans[:, j]
    if mode in ("full", "expression", "dubbing"):
        rel = (
            _matrix(src, layout.EXPRESSION)
            - ref(source, si, layout.EXPRESSION)
            + ref(target, ti, layout.EXPRESSION)
        )
        if mode == "dubbing":
            w = np.clip(np.asarray(mouth_weights, np.float64).reshape(-1), 0.0, 1.0)
            if w.shape != (layout.N_EXPRESSION,):
                raise ValueError(f"mouth_weights must have {layout.N_EXPRESSION} values, got {w.shape}")
            own = _matrix(chans, layout.EXPRESSION)
            rel = own + w * (rel - own)
        for j, n in enumerate(layout.EXPRESSION):
            new[n] = rel[:, j]
    if mode in ("full", "gaze"):
        absolute = gaze_mode.startswith("absolute")
        for names, lo, hi in ((layout.GAZE, -np.inf, np.inf), (layout.BLINK, 0.0, 1.0)):
            if names == layout.GAZE and absolute:
                vals = _matrix(src, names)
            else:
                vals = _matrix(src, names) - ref(source, si, names) + ref(target, ti, names)
            vals = np.clip(vals, lo, hi)
            for j, n in enumerate(names):
                new[n] = vals[:, j]

    src_valid = src.get(layout.VALID, np.ones(n_frames, np.float32)) > 0.5
    for name, values in new.items():
        chans[name] = np.where(src_valid, values, chans[name]).astype(np.float32)
    if mode in ("full", "gaze") and LOOK_WEIGHT in chans:  # the transferred gaze is not overridden
        chans[LOOK_WEIGHT] = np.where(src_valid, 0.0, chans[LOOK_WEIGHT]).astype(np.float32)
    out = target.replace(
        frames=out_frames,
        channels=chans,
        metadata={
            **target.metadata,
            "transfer": {"mode": mode, "source_reference": s_ref, "target_reference": t_ref},
        },
    )
    report = TransferReport(mode, s_ref, t_ref, [int(f) for f in out_frames[~src_valid]], n_frames, gaze_mode)
    return out, report


def _calibrated(track: FaceTrack) -> bool:
    """The track carries an estimated eye calibration (not the face model's centres)."""
    return track.eyes is not None and not track.eyes.fallback


def _resolve_source_look_at(
    source: FaceTrack, src: dict[str, npt.NDArray[np.float32]], positions: npt.NDArray[np.float64]
) -> dict[str, npt.NDArray[np.float32]]:
    """The sampled source channels with its look-at control baked into the gaze channels."""
    if LOOK_WEIGHT not in src or not np.any(src[LOOK_WEIGHT] > 0):
        return src
    if source.eyes is None:
        raise ValueError(
            "the source track drives its gaze with a look-at target but has no eye calibration (eyeball "
            "centres) to resolve it with; re-track it with this dvp"
        )
    frames = [int(round(float(p))) for p in positions]
    gaze = resolved_gaze(src, source.eyes.centres, frames)
    out = dict(src)
    if gaze is not None:
        for j, n in enumerate(layout.GAZE):
            out[n] = gaze[:, j].astype(np.float32)
    return out
