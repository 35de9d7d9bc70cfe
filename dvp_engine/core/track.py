"""FaceTrack: the tracked parameters of one actor over a range of frames, and its file format.

On disk a track is one ``.npz`` (loaded with ``allow_pickle=False``, never unpickled) holding:

* ``header``: a UTF-8 JSON document stored as a ``uint8`` array, with ``"schema": "FaceTrack.2"``, the frame
  rate, image size, camera intrinsics, the channel names (column order of ``channels``), the per-actor eye
  calibration ``eyes`` (null: the face model's eyeball centres; see :mod:`dvp_engine.core.gaze`) and free
  metadata;
* ``frames``: ``(F,)`` int64 frame numbers, strictly increasing (gaps and offsets such as 1001 allowed);
* ``channels``: ``(F, C)`` float32 values, one column per channel name;
* ``identity``: ``(80,)`` float32 geometry coefficients alpha; ``reflectance``: ``(80,)`` float32 beta.

Hosts can read it with numpy alone. Older schemas are upgraded on load through :data:`UPGRADES`
(``FaceTrack.1`` had no ``eyes`` entry: it loads with ``eyes = None`` and renders as before).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from . import layout
from .atomic import atomic_path
from .errors import InputError, SchemaError
from .frames import FrameSet
from .gaze import EyeCalibration

SCHEMA: Final = "FaceTrack.2"

Arrays = dict[str, npt.NDArray[Any]]
Upgrade = Callable[[dict[str, Any], Arrays], tuple[dict[str, Any], Arrays]]

#: schema name -> function that turns a header + arrays of that schema into the next schema's.
#: Applied repeatedly on load until the header says :data:`SCHEMA`.
UPGRADES: dict[str, Upgrade] = {}

#: The entries of a track file that are read; any other entry is ignored without being decompressed.
ENTRIES: Final = ("header", "frames", "channels", "identity", "reflectance")
#: The largest uncompressed size of one entry (bytes): a million frames of 256 float32 channels; the header
#: (JSON) may hold at most 64 MiB. Larger entries are refused before anything is decompressed.
MAX_ENTRY_BYTES: Final = 1 << 30
MAX_HEADER_BYTES: Final = 64 << 20
#: The largest image side (pixels) a track may describe (a 32K plate).
MAX_IMAGE_SIDE: Final = 32768


def _read_entries(src: Path) -> Arrays:
    """The :data:`ENTRIES` of an ``.npz``, each size-checked from the zip directory before it is read."""
    with np.load(src, allow_pickle=False) as data:
        arrays: Arrays = {}
        for key in ENTRIES:
            if key not in data.files:
                continue
            size = data.zip.getinfo(f"{key}.npy").file_size
            limit = MAX_HEADER_BYTES if key == "header" else MAX_ENTRY_BYTES
            if size > limit:
                raise InputError(
                    f"track entry {key!r} is {size} bytes uncompressed, more than {limit}", path=src
                )
            arrays[key] = data[key]
        return arrays


def _upgrade_1_to_2(header: dict[str, Any], arrays: Arrays) -> tuple[dict[str, Any], Arrays]:
    """FaceTrack.1 -> .2: no eye calibration (the face model's eyeball centres, as those tracks were made)."""
    return {**header, "schema": "FaceTrack.2", "eyes": None}, arrays


UPGRADES["FaceTrack.1"] = _upgrade_1_to_2


@dataclass
class FaceTrack:
    """Per-frame face parameters of one actor.

    Attributes:
        frames: ``(F,)`` int64 frame numbers, strictly increasing.
        rate: frames per second as a fraction (``Fraction(25)``, ``Fraction(24000, 1001)``).
        width, height: image size in pixels of the tracked footage.
        intrinsics: ``(fx, fy, cx, cy)`` in pixels, OpenCV convention (pixel (0, 0)'s centre at (0, 0)).
        channels: channel name -> ``(F,)`` float32 values in channel units (see :mod:`dvp_engine.core.layout`).
        identity: ``(80,)`` float32 geometry coefficients (per actor, constant over frames).
        reflectance: ``(80,)`` float32 reflectance coefficients (per actor).
        metadata: JSON-serialisable facts: source footage, face model, tracker settings, named controls.
        eyes: the actor's eye calibration (:class:`~dvp_engine.core.gaze.EyeCalibration`), or None: gaze is
            measured from the face model's fixed eyeball centres.
    """

    frames: npt.NDArray[np.int64]
    rate: Fraction
    width: int
    height: int
    intrinsics: tuple[float, float, float, float]
    channels: dict[str, npt.NDArray[np.float32]]
    identity: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros(layout.N_IDENTITY, np.float32))
    reflectance: npt.NDArray[np.float32] = field(
        default_factory=lambda: np.zeros(layout.N_REFLECTANCE, np.float32)
    )
    metadata: dict[str, Any] = field(default_factory=dict)
    eyes: EyeCalibration | None = None

    def __post_init__(self) -> None:
        self.frames = np.asarray(self.frames, dtype=np.int64).reshape(-1)
        self.rate = Fraction(self.rate)
        self.channels = {k: np.asarray(v, dtype=np.float32).reshape(-1) for k, v in self.channels.items()}
        self.identity = np.asarray(self.identity, dtype=np.float32).reshape(-1)
        self.reflectance = np.asarray(self.reflectance, dtype=np.float32).reshape(-1)
        self.intrinsics = tuple(float(x) for x in self.intrinsics)  # type: ignore[assignment]
        self.validate()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_params(
        cls,
        frames: npt.ArrayLike,
        params: npt.ArrayLike,
        *,
        rate: Fraction | int,
        width: int,
        height: int,
        intrinsics: Sequence[float],
        identity: npt.ArrayLike | None = None,
        reflectance: npt.ArrayLike | None = None,
        confidence: npt.ArrayLike | None = None,
        valid: npt.ArrayLike | None = None,
        metadata: Mapping[str, Any] | None = None,
        eyes: EyeCalibration | None = None,
    ) -> FaceTrack:
        """Build a track from a packed ``(F, FRAME_SIZE)`` parameter matrix (radians for angles)."""
        chans = layout.unpack(params)
        n = len(np.asarray(frames).reshape(-1))
        chans[layout.CONFIDENCE] = (
            np.ones(n, np.float32) if confidence is None else np.asarray(confidence, np.float32)
        )
        chans[layout.VALID] = np.ones(n, np.float32) if valid is None else np.asarray(valid, np.float32)
        fx, fy, cx, cy = (float(x) for x in intrinsics)
        return cls(
            frames=np.asarray(frames, dtype=np.int64),
            rate=Fraction(rate),
            width=int(width),
            height=int(height),
            intrinsics=(fx, fy, cx, cy),
            channels=chans,
            identity=np.zeros(layout.N_IDENTITY, np.float32) if identity is None else np.asarray(identity),
            reflectance=np.zeros(layout.N_REFLECTANCE, np.float32)
            if reflectance is None
            else np.asarray(reflectance),
            metadata=dict(metadata or {}),
            eyes=eyes,
        )

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise :class:`SchemaError` if shapes disagree, frames are not increasing or a value is NaN/inf."""
        n = len(self.frames)
        if n and np.any(np.diff(self.frames) <= 0):
            raise SchemaError("FaceTrack frames must be strictly increasing (no duplicates)")
        for name, values in self.channels.items():
            if values.shape != (n,):
                raise SchemaError(f"channel {name!r} has {values.shape[0]} values for {n} frames")
            bad = ~np.isfinite(values)
            if bad.any():
                frame = int(self.frames[int(np.argmax(bad))])
                raise SchemaError(f"channel {name!r} holds NaN or inf", frame=frame)
        if self.identity.shape != (layout.N_IDENTITY,):
            raise SchemaError(f"identity must have {layout.N_IDENTITY} values, got {self.identity.shape}")
        if self.reflectance.shape != (layout.N_REFLECTANCE,):
            raise SchemaError(
                f"reflectance must have {layout.N_REFLECTANCE} values, got {self.reflectance.shape}"
            )
        if not (np.all(np.isfinite(self.identity)) and np.all(np.isfinite(self.reflectance))):
            raise SchemaError("identity/reflectance hold NaN or inf")
        if not (0 < self.width <= MAX_IMAGE_SIDE and 0 < self.height <= MAX_IMAGE_SIDE):
            raise SchemaError(
                f"image size must be 1..{MAX_IMAGE_SIDE} pixels a side, got {self.width}x{self.height}"
            )
        if self.rate <= 0:
            raise SchemaError(f"frame rate must be positive, got {self.rate}")
        if len(self.intrinsics) != 4 or not all(np.isfinite(self.intrinsics)):
            raise SchemaError(f"intrinsics must be 4 finite numbers (fx, fy, cx, cy), got {self.intrinsics}")
        if not (self.intrinsics[0] > 0 and self.intrinsics[1] > 0):
            raise SchemaError(f"focal lengths fx, fy must be > 0 pixels, got {self.intrinsics[:2]}")
        if self.frames.dtype.kind not in "iu":
            raise SchemaError(f"frame numbers must be integers, got {self.frames.dtype}")

    # ------------------------------------------------------------------ access
    @property
    def n_frames(self) -> int:
        """Number of frames F."""
        return len(self.frames)

    @property
    def channel_names(self) -> list[str]:
        """Channel names in file order."""
        return list(self.channels)

    def index_of(self, frame: int) -> int:
        """Row index of a frame number; :class:`InputError` if the track does not hold it."""
        i = int(np.searchsorted(self.frames, frame))
        if i >= len(self.frames) or self.frames[i] != frame:
            first = int(self.frames[0]) if len(self.frames) else None
            last = int(self.frames[-1]) if len(self.frames) else None
            raise InputError(
                f"not in track (track holds {first}-{last}, {len(self.frames)} frames)", frame=int(frame)
            )
        return i

    def frames_of(self, frames: FrameSet | str | Iterable[int] | None = None) -> list[int]:
        """The frame numbers ``frames`` names (a :class:`FrameSet`, a range such as ``"1001-1100x2"``, or
        numbers; None: every frame of the track), each checked to be in the track (:class:`InputError`
        naming the frame and the track's range otherwise)."""
        if frames is None:
            return [int(f) for f in self.frames]
        wanted = [int(f) for f in (FrameSet.parse(frames) if isinstance(frames, str) else frames)]
        for f in wanted:
            self.index_of(f)
        return wanted

    def tracker_setting(self, name: str, default: Any = None) -> Any:
        """A setting of the tracker that made this track (``metadata["tracker"]["settings"]``), else
        ``default``."""
        tracker = self.metadata.get("tracker", {})
        settings = tracker.get("settings", {}) if isinstance(tracker, dict) else {}
        return settings.get(name, default) if isinstance(settings, dict) else default

    def channel(self, name: str) -> npt.NDArray[np.float32]:
        """Values of one channel ``(F,)``; ``KeyError`` listing valid names if absent."""
        if name not in self.channels:
            raise KeyError(layout.unknown_channel_message(name, tuple(self.channels)))
        return self.channels[name]

    def params(self) -> npt.NDArray[np.float64]:
        """Packed parameters ``(F, FRAME_SIZE)``, radians for angles."""
        return layout.pack(self.channels, self.n_frames)

    def with_params(self, params: npt.ArrayLike) -> FaceTrack:
        """A copy whose packed channels are replaced by ``params`` ``(F, FRAME_SIZE)``; other channels kept."""
        p = np.asarray(params, dtype=np.float64)
        if p.shape[0] != self.n_frames:
            raise ValueError(f"with_params: {p.shape[0]} rows for {self.n_frames} frames")
        chans = dict(self.channels)
        chans.update(layout.unpack(p))
        return self.replace(channels=chans)

    def replace(self, **changes: Any) -> FaceTrack:
        """A copy with some fields replaced (arrays are copied)."""
        values: dict[str, Any] = {
            "frames": self.frames.copy(),
            "rate": self.rate,
            "width": self.width,
            "height": self.height,
            "intrinsics": self.intrinsics,
            "channels": {k: v.copy() for k, v in self.channels.items()},
            "identity": self.identity.copy(),
            "reflectance": self.reflectance.copy(),
            "metadata": json.loads(json.dumps(self.metadata)),
            "eyes": self.eyes,
        }
        values.update(changes)
        return FaceTrack(**values)

    def select(self, frames: Iterable[int]) -> FaceTrack:
        """A track holding only the given frame numbers (each must be present)."""
        idx = np.array([self.index_of(int(f)) for f in frames], dtype=np.int64)
        return self.replace(
            frames=self.frames[idx], channels={k: v[idx].copy() for k, v in self.channels.items()}
        )

    def summary(self) -> str:
        """A few human-readable lines: frames, rate, size, channels, confidence."""
        lines = [
            f"FaceTrack ({SCHEMA}): {self.n_frames} frames"
            + (f" {int(self.frames[0])}-{int(self.frames[-1])}" if self.n_frames else ""),
            f"  rate {float(self.rate):g} fps ({self.rate}), image {self.width}x{self.height}, "
            f"fx={self.intrinsics[0]:.1f} fy={self.intrinsics[1]:.1f} "
            f"cx={self.intrinsics[2]:.1f} cy={self.intrinsics[3]:.1f}",
            f"  {len(self.channels)} channels",
        ]
        if layout.CONFIDENCE in self.channels and self.n_frames:
            conf = self.channels[layout.CONFIDENCE]
            lines.append(f"  confidence mean {conf.mean():.3f}, min {conf.min():.3f}")
        if layout.VALID in self.channels and self.n_frames:
            lost = self.frames[self.channels[layout.VALID] < 0.5]
            lines.append(f"  frames lost: {len(lost)}" + (f" (first {int(lost[0])})" if len(lost) else ""))
        if self.eyes is not None:
            off = self.eyes.offsets
            shift = "" if off is None else f", offsets from the model {np.round(off * 1000, 1).tolist()} mm"
            lines.append(
                f"  eyes: calibration {self.eyes.method} ({self.eyes.frames_used} frames{shift})"
                + (f": {self.eyes.note}" if self.eyes.note else "")
            )
        for key in ("source", "face_model"):
            if key in self.metadata:
                lines.append(f"  {key}: {self.metadata[key]}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ files
    def to_arrays(self) -> Arrays:
        """The arrays written to disk, ``header`` included."""
        names = list(self.channels)
        header = {
            "schema": SCHEMA,
            "rate": [self.rate.numerator, self.rate.denominator],
            "width": self.width,
            "height": self.height,
            "intrinsics": list(self.intrinsics),
            "channel_names": names,
            "metadata": self.metadata,
            "eyes": None if self.eyes is None else self.eyes.to_json(),
        }
        matrix = (
            np.stack([self.channels[n] for n in names], axis=1)
            if names
            else np.zeros((self.n_frames, 0), np.float32)
        )
        return {
            "header": np.frombuffer(json.dumps(header, sort_keys=True).encode("utf-8"), dtype=np.uint8),
            "frames": self.frames,
            "channels": matrix.astype(np.float32),
            "identity": self.identity,
            "reflectance": self.reflectance,
        }

    def save(self, path: str | Path) -> Path:
        """Write the track to ``path`` (``.npz``) atomically; returns the path."""
        dest = Path(path)
        if dest.suffix != ".npz":
            raise InputError("a FaceTrack file must end in .npz", path=dest)
        self.validate()
        with atomic_path(dest) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, allow_pickle=False, **self.to_arrays())
        return dest

    @classmethod
    def load(cls, path: str | Path) -> FaceTrack:
        """Read a track, upgrading older schemas; clear errors for missing, truncated or foreign files."""
        src = Path(path)
        if not src.is_file():
            raise InputError("track file not found", path=src)
        try:
            arrays = _read_entries(src)
        except InputError:
            raise
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
            raise InputError(
                f"not a readable FaceTrack .npz (truncated or corrupt: {exc})", path=src
            ) from exc
        if "header" not in arrays:
            raise SchemaError("not a FaceTrack file (no 'header' entry)", path=src)
        try:
            header = json.loads(arrays["header"].tobytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SchemaError(f"FaceTrack header is not valid JSON ({exc})", path=src) from exc
        if not isinstance(header, dict):
            raise SchemaError(
                f"FaceTrack header must be a JSON object, not {type(header).__name__}", path=src
            )
        header, arrays = upgrade(header, arrays, path=src)
        try:
            names = list(header["channel_names"])
            matrix = np.asarray(arrays["channels"], dtype=np.float32)
            if matrix.ndim != 2 or matrix.shape[1] != len(names):
                raise SchemaError(
                    f"channels array has shape {matrix.shape} for {len(names)} channel names", path=src
                )
            num, den = header["rate"]
            if int(den) <= 0 or int(num) <= 0:
                raise SchemaError(f"frame rate must be a positive fraction [num, den], got {header['rate']}")
            metadata = header.get("metadata", {})
            if not isinstance(metadata, dict):
                raise SchemaError(f"FaceTrack metadata must be a JSON object, not {type(metadata).__name__}")
            track = cls(
                frames=arrays["frames"],
                rate=Fraction(int(num), int(den)),
                width=int(header["width"]),
                height=int(header["height"]),
                intrinsics=tuple(float(x) for x in header["intrinsics"]),  # type: ignore[arg-type]
                channels={n: matrix[:, i] for i, n in enumerate(names)},
                identity=arrays["identity"],
                reflectance=arrays["reflectance"],
                metadata=dict(metadata),
                eyes=None if header.get("eyes") is None else EyeCalibration.from_json(header["eyes"]),
            )
        except SchemaError as exc:
            if exc.path is None:
                raise SchemaError(str(exc), path=src) from exc
            raise
        except (KeyError, TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
            raise SchemaError(f"FaceTrack file is missing or has malformed field {exc}", path=src) from exc
        return track


def upgrade(
    header: dict[str, Any], arrays: Arrays, *, path: str | Path | None = None
) -> tuple[dict[str, Any], Arrays]:
    """Bring a header + arrays of any known schema up to :data:`SCHEMA` using :data:`UPGRADES`."""
    seen: set[str] = set()
    while True:
        schema = header.get("schema")
        if schema == SCHEMA:
            return header, arrays
        if not isinstance(schema, str) or not schema.startswith("FaceTrack."):
            raise SchemaError(f"not a FaceTrack file (schema {schema!r})", path=path)
        if schema in seen or schema not in UPGRADES:
            raise SchemaError(
                f"unknown FaceTrack schema {schema!r}: this dvp reads {SCHEMA}"
                + (" and upgrades " + ", ".join(sorted(UPGRADES)) if UPGRADES else "")
                + "; a newer schema needs a newer dvp",
                path=path,
            )
        seen.add(schema)
        header, arrays = UPGRADES[schema](header, arrays)
