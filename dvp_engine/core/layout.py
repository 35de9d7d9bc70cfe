"""Parameter layout: sizes (paper section 4), the packed per-frame vector and the public channel names.

The per-frame parameters live in two equivalent forms:

* **channels** (the artist view, what hosts show as curves): named float curves such as ``head.ry`` in
  degrees or ``gaze.left.x`` in degrees; see :data:`FRAME_CHANNELS`.
* the **packed vector** (the engine view) of length :data:`FRAME_SIZE` per frame, named slices in
  :data:`FRAME_LAYOUT`. Angles in the packed vector are **radians**; in channels they are **degrees**.

Per-actor constants (identity ``alpha`` and reflectance ``beta``) are not per-frame and are stored once.
Units: translation in metres in the OpenCV camera frame (x right, y down, z forward).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np
import numpy.typing as npt

N_IDENTITY: Final = 80
"""Geometry identity coefficients alpha (paper N_alpha)."""
N_REFLECTANCE: Final = 80
"""Reflectance coefficients beta (paper N_beta)."""
N_EXPRESSION: Final = 64
"""Expression coefficients delta (paper N_delta)."""
N_SH: Final = 27
"""Spherical-harmonics light: 9 bands x RGB, coefficient index ``3 * band + channel``."""
N_GAZE: Final = 4
"""Gaze angles: left yaw, left pitch, right yaw, right pitch."""
N_BLINK: Final = 2
"""Eyelid closure: left, right (0 open .. 1 closed)."""

#: Named slices of the packed per-frame vector, in order.
FRAME_LAYOUT: Final[dict[str, slice]] = {}
_offset = 0
for _name, _size in (
    ("rotation", 3),  # Euler (rx, ry, rz), radians, R = Rz @ Ry @ Rx
    ("translation", 3),  # metres, camera frame
    ("expression", N_EXPRESSION),
    ("sh", N_SH),
    ("gaze", N_GAZE),  # radians: left yaw, left pitch, right yaw, right pitch
    ("blink", N_BLINK),
):
    FRAME_LAYOUT[_name] = slice(_offset, _offset + _size)
    _offset += _size
FRAME_SIZE: Final = _offset
"""Length of the packed per-frame vector (103)."""

HEAD_ROTATION: Final = ("head.rx", "head.ry", "head.rz")
HEAD_TRANSLATION: Final = ("head.tx", "head.ty", "head.tz")
GAZE: Final = ("gaze.left.x", "gaze.left.y", "gaze.right.x", "gaze.right.y")
BLINK: Final = ("blink.left", "blink.right")
EXPRESSION: Final = tuple(f"expr.{i:02d}" for i in range(N_EXPRESSION))
LIGHT: Final = tuple(f"light.sh.{i:02d}" for i in range(N_SH))

#: Channel names of the packed vector, index for index.
FRAME_CHANNELS: Final[tuple[str, ...]] = HEAD_ROTATION + HEAD_TRANSLATION + EXPRESSION + LIGHT + GAZE + BLINK

CONFIDENCE: Final = "track.confidence"
"""Per-frame tracking confidence in [0, 1] (not part of the packed vector)."""
VALID: Final = "track.valid"
"""Per-frame flag: 1 where a face was tracked, 0 where it was lost (parameters there are interpolated from the
neighbouring tracked frames, confidence 0)."""
AUX_CHANNELS: Final[tuple[str, ...]] = (CONFIDENCE, VALID)

LOOK_AT: Final = ("look.x", "look.y", "look.z", "look.weight")
"""Look-at control (optional, not part of the packed vector): a gaze target in the camera frame (metres) and
its blend weight 0..1 over the per-eye gaze angles (see :mod:`dvp_engine.core.gaze`)."""

#: Channels whose unit is degrees (converted to radians in the packed vector).
ANGLE_CHANNELS: Final[frozenset[str]] = frozenset(HEAD_ROTATION + GAZE)

#: Groups of channels, for hosts that build knob/property groups.
CHANNEL_GROUPS: Final[dict[str, tuple[str, ...]]] = {
    "head.rotate": HEAD_ROTATION,
    "head.translate": HEAD_TRANSLATION,
    "gaze": GAZE,
    "blink": BLINK,
    "expression": EXPRESSION,
    "light": LIGHT,
    "track": AUX_CHANNELS,
    "look": LOOK_AT,
}

_UNITS: Final[dict[str, str]] = {
    **dict.fromkeys(HEAD_ROTATION, "deg"),
    **dict.fromkeys(HEAD_TRANSLATION, "m"),
    **dict.fromkeys(GAZE, "deg"),
    **dict.fromkeys(BLINK, "0-1"),
    **dict.fromkeys(EXPRESSION, "coef"),
    **dict.fromkeys(LIGHT, "coef"),
    CONFIDENCE: "0-1",
    VALID: "bool",
    **dict.fromkeys(LOOK_AT[:3], "m"),
    LOOK_AT[3]: "0-1",
}


def channel_unit(name: str) -> str:
    """The unit of a channel: ``deg``, ``m``, ``0-1``, ``coef`` or ``bool``; ``coef`` for named controls."""
    if name in _UNITS:
        return _UNITS[name]
    if name.startswith("face."):
        return "coef"
    raise KeyError(unknown_channel_message(name))


#: The largest magnitude (in channel units) a curve key, ``--set`` value or key slope (units per frame) may
#: have: ten full turns for angles, 1 km for translations, 10,000 for 0-1 channels and coefficients (loose
#: bounds for key handles and offsets). Beyond these a value is a typo (``1e30`` degrees) and is refused rather
#: than rendered.
VALUE_LIMITS: Final[dict[str, float]] = {"deg": 3600.0, "m": 1000.0, "0-1": 1e4, "coef": 1e4, "bool": 1e4}


def channel_limit(name: str) -> float:
    """The largest magnitude a curve may give channel ``name`` (see :data:`VALUE_LIMITS`)."""
    return VALUE_LIMITS[channel_unit(name)]


def is_known_channel(name: str) -> bool:
    """True for the packed channels, the auxiliary ``track.*`` and ``look.*`` channels and named ``face.*``
    controls."""
    return name in _UNITS or (name.startswith("face.") and len(name) > 5)


def unknown_channel_message(name: str, valid: tuple[str, ...] | None = None) -> str:
    """An error message for an unknown channel that lists the valid names compactly."""
    valid = valid if valid is not None else FRAME_CHANNELS + AUX_CHANNELS
    return (
        f"unknown channel {name!r}; valid channels are head.rx head.ry head.rz head.tx head.ty head.tz, "
        f"gaze.left.x gaze.left.y gaze.right.x gaze.right.y, blink.left blink.right, "
        f"expr.00..expr.{N_EXPRESSION - 1:02d}, light.sh.00..light.sh.{N_SH - 1:02d}, "
        f"{' '.join(AUX_CHANNELS)}, {' '.join(LOOK_AT)} and named controls face.* ({len(valid)} in all)"
    )


def pack(channels: Mapping[str, npt.ArrayLike], n_frames: int | None = None) -> npt.NDArray[np.float64]:
    """Pack named channels into the per-frame parameter matrix.

    Args:
        channels: channel name -> ``(F,)`` values in channel units (degrees for angles). Missing packed
            channels are zero (blinks, gaze, expression) — except that a missing ``head.tz`` is an error.
        n_frames: F, needed only when ``channels`` is empty.

    Returns:
        ``(F, FRAME_SIZE)`` float64, angles in radians.
    """
    lengths = {len(np.atleast_1d(np.asarray(v))) for k, v in channels.items() if k in FRAME_CHANNELS}
    if n_frames is None:
        if not lengths:
            raise ValueError("pack: no channels given and n_frames not set")
        n_frames = max(lengths)
    if any(n != n_frames for n in lengths):
        raise ValueError(f"pack: channels have different lengths {sorted(lengths)}, expected {n_frames}")
    if "head.tz" not in channels:
        raise ValueError("pack: channel 'head.tz' is required (the head's distance from the camera, metres)")
    out = np.zeros((n_frames, FRAME_SIZE), dtype=np.float64)
    for i, name in enumerate(FRAME_CHANNELS):
        if name in channels:
            values = np.asarray(channels[name], dtype=np.float64).reshape(-1)
            out[:, i] = np.deg2rad(values) if name in ANGLE_CHANNELS else values
    return out


def unpack(params: npt.ArrayLike) -> dict[str, npt.NDArray[np.float32]]:
    """Inverse of :func:`pack`: ``(F, FRAME_SIZE)`` (radians) to channel name -> ``(F,)`` float32 (degrees)."""
    p = np.asarray(params, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != FRAME_SIZE:
        raise ValueError(f"unpack expects (F, {FRAME_SIZE}) parameters, got shape {p.shape}")
    out: dict[str, npt.NDArray[np.float32]] = {}
    for i, name in enumerate(FRAME_CHANNELS):
        col = p[:, i]
        out[name] = (np.rad2deg(col) if name in ANGLE_CHANNELS else col).astype(np.float32)
    return out


def gaze_direction(yaw_deg: npt.ArrayLike, pitch_deg: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Unit gaze directions in the head frame from yaw/pitch degrees: ``(..., 3)``.

    ``d = (sin(yaw) cos(pitch), sin(pitch), -cos(yaw) cos(pitch))``; zero gaze looks out of the face (-z).
    """
    yaw = np.deg2rad(np.asarray(yaw_deg, dtype=np.float64))
    pitch = np.deg2rad(np.asarray(pitch_deg, dtype=np.float64))
    return np.stack([np.sin(yaw) * np.cos(pitch), np.sin(pitch), -np.cos(yaw) * np.cos(pitch)], axis=-1)


def gaze_angles(direction: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Yaw and pitch degrees ``(..., 2)`` of unit gaze directions ``(..., 3)`` in the head frame, the inverse
    of :func:`gaze_direction`: ``pitch = asin(d_y)``, ``yaw = atan2(d_x, -d_z)``."""
    d = np.asarray(direction, dtype=np.float64)
    yaw = np.degrees(np.arctan2(d[..., 0], -d[..., 2]))
    pitch = np.degrees(np.arcsin(np.clip(d[..., 1], -1.0, 1.0)))
    return np.stack([yaw, pitch], axis=-1)
