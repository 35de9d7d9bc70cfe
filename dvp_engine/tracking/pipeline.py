"""``track_video``: the function behind ``dvp track`` (decode, landmarks, identity, tracking, FaceTrack).

Steps: decode the requested frames (movie via :mod:`dvp_engine.io` or PyAV; image sequences via
:mod:`dvp_engine.io`), run the landmark source on every frame (dlib 68 landmarks + pupils, see
:mod:`dvp_engine.tracking.landmarks`), solve identity and reflectance over ``identity_keyframes`` frames spread
over the clip (identity mode), then track every frame (tracking mode) and pack the result as a
:class:`~dvp_engine.core.FaceTrack` whose metadata records the source, the face model (name, schema, file hash),
the tracker settings, the named expression controls and per-frame notes on lost frames.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dvp_engine.core import FaceTrack
from dvp_engine.core.errors import InputError

from .tracker import FrameObservation, Tracker, TrackerSettings, TrackResult

log = logging.getLogger("dvp.track")

ProgressFn = Callable[[str, int, int], None]
LandmarkSource = Callable[[npt.NDArray[np.uint8]], FrameObservation]
"""A landmark source maps an ``(H, W, 3)`` uint8 sRGB frame to a :class:`FrameObservation`. Sources may keep
state between calls (box tracking), so call them on the frames in order."""


# ---------------------------------------------------------------------------------------------------- decoding
def read_source(
    source: str | Path, frames: Iterable[int] | str | None = None, *, errors: dict[int, str] | None = None
) -> tuple[list[int], list[npt.NDArray[np.uint8]], Fraction]:
    """Decode the requested frames of a movie or image sequence (through :mod:`dvp_engine.io.video`).

    Args:
        source: a movie file (frames numbered from 1, docs/conventions.md) or an image-sequence pattern.
        frames: frame numbers (an iterable or a range string such as ``"1-20"``); None = all.
        errors: if given, unreadable frames of an image sequence do not raise: their message is stored here
            by frame number and their image is an all-zero frame (the tracker then flags them lost).

    Returns:
        ``(frame numbers, (H, W, 3) uint8 sRGB images, frame rate)``; the rate of an image sequence is taken
        as 25 fps.
    """
    rate = source_rate(source)
    pairs = list(stream_source(source, frames, errors=errors))
    read = [img for _, img in pairs if img is not None]
    if not read:
        raise InputError("no readable frames", path=source)
    blank = np.zeros_like(read[0])
    return [n for n, _ in pairs], [blank if img is None else img for _, img in pairs], rate


def stream_source(
    source: str | Path, frames: Iterable[int] | str | None = None, *, errors: dict[int, str] | None = None
) -> Iterator[tuple[int, npt.NDArray[np.uint8] | None]]:
    """Decode frames one at a time, in order: ``(frame number, uint8 (H, W, 3) image)``.

    With ``errors`` given, an unreadable frame of an image sequence yields ``(number, None)`` and its message
    is stored in ``errors``; otherwise it raises :class:`InputError`. All frames of a sequence (``frames``
    None) are its first to last frame on disk; one missing in between raises :class:`InputError` listing it.
    """
    from dvp_engine.core.sequence import ImageSequence, is_pattern
    from dvp_engine.io.video import read_frames

    if frames is None and is_pattern(source):
        # every frame from the first to the last on disk: a frame missing inside is an error naming it, not a
        # track that silently lacks that frame
        found = ImageSequence.parse(source).scan()
        assert found.first is not None and found.last is not None
        frames = f"{found.first}-{found.last}"
    bad: dict[int, str] = {}
    done: set[int] = set()

    def on_error(exc: Exception) -> None:
        frame = getattr(exc, "frame", None)
        if frame is None:
            raise exc
        bad[int(frame)] = f"unreadable frame ({exc})"

    def flush(limit: float) -> Iterator[tuple[int, None]]:
        for f in sorted(k for k in bad if k < limit and k not in done):
            done.add(f)
            if errors is not None:
                errors[f] = bad[f]
            yield f, None

    for num, rgb in read_frames(source, frames, on_error=on_error if errors is not None else None):
        yield from flush(num)
        yield int(num), _to_uint8(rgb)
    yield from flush(float("inf"))


def count_frames(source: str | Path, frames: Iterable[int] | str | None = None) -> int | None:
    """How many frames :func:`stream_source` will yield (None when it cannot tell cheaply)."""
    if frames is not None:
        if isinstance(frames, str):
            from dvp_engine.core.frames import parse_frames

            return len(parse_frames(frames))
        return len(set(frames)) if not isinstance(frames, Iterator) else None
    try:
        from dvp_engine.io.video import MOVIE_SUFFIXES, open_video

        if Path(source).suffix.lower() in MOVIE_SUFFIXES:
            with open_video(source) as video:
                return int(video.n_frames)
        from dvp_engine.core.sequence import ImageSequence

        rng = ImageSequence.find(source).frame_range
        return None if rng is None else len(rng)
    except Exception:
        return None


def source_rate(source: str | Path) -> Fraction:
    """Frame rate of a movie (25 fps for image sequences)."""
    from dvp_engine.io.video import MOVIE_SUFFIXES, open_video

    if Path(source).suffix.lower() in MOVIE_SUFFIXES:
        if not Path(source).is_file():
            raise InputError("video file not found", path=source)
        with open_video(source) as video:
            return Fraction(video.rate)
    return Fraction(25)


def _to_uint8(img: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    if img.dtype == np.uint8:
        return img[..., :3]
    return (np.clip(np.asarray(img, np.float64)[..., :3], 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------- landmarks
def default_landmark_source() -> LandmarkSource:
    """The landmarks module's dlib tracker (68 landmarks, box tracking, re-detection) with pupils from the
    eyes module, as a :data:`LandmarkSource`."""
    from .landmarks import LandmarkTracker

    return ObservationAdapter(LandmarkTracker())


class ObservationAdapter:
    """Turns a :class:`~dvp_engine.tracking.landmarks.LandmarkSource` (``track(image) -> LandmarkResult``) into
    a :data:`LandmarkSource` of :class:`FrameObservation`, adding pupils from :mod:`dvp_engine.tracking.eyes`
    (or the ``eyes`` module given)."""

    def __init__(self, source: Any, eyes: Any = None) -> None:
        from . import eyes as eyes_module

        self.source = source
        self.eyes = eyes if eyes is not None else eyes_module

    def __call__(self, img: npt.NDArray[np.uint8]) -> FrameObservation:
        res = self.source.track(img)
        return _observation_from(res, img, self.eyes)


def as_landmark_source(src: Any) -> LandmarkSource:
    """Accept a :data:`LandmarkSource` callable, or an object with ``track(image) -> LandmarkResult``."""
    if src is None:
        return default_landmark_source()
    if hasattr(src, "track") and not isinstance(src, ObservationAdapter):
        return ObservationAdapter(src)
    if callable(src):
        return src  # type: ignore[no-any-return]
    raise TypeError(f"not a landmark source: {src!r} (needs track(image) or to be callable)")


def source_name(src: Any) -> str:
    inner = src.source if isinstance(src, ObservationAdapter) else src
    name = getattr(inner, "__name__", None) or type(inner).__name__
    if isinstance(src, ObservationAdapter) and src.eyes is not None:
        name += " + eyes"
    return str(name)


def _observation_from(res: Any, img: npt.NDArray[np.uint8], eyes: Any) -> FrameObservation:
    if isinstance(res, FrameObservation):
        return res
    pts = getattr(res, "landmarks", None)
    status = getattr(res, "status", "")
    message = str(getattr(res, "message", "") or "")
    if not bool(getattr(res, "found", pts is not None)) or pts is None:
        why = message or (
            f"no face found ({getattr(status, 'value', status)})" if status else "no face found"
        )
        return FrameObservation(None, 0.0, message=why)
    pts64 = np.asarray(pts, np.float64)
    pupils = None
    pconf = np.zeros(2)
    if eyes is not None:
        pupils, pconf = _measure_pupils(eyes, img, pts64)
    return FrameObservation(pts64, float(getattr(res, "confidence", 1.0)), pupils, pconf, message=message)


def _measure_pupils(eyes: Any, img: npt.NDArray[np.uint8], pts: npt.NDArray[np.float64]) -> tuple[Any, Any]:
    """Pupils ``(2, 2)`` (actor's left, right) and confidences ``(2,)`` from the eyes module, or (None, 0)."""
    fn = getattr(eyes, "measure_eyes", None)
    if fn is None:
        return None, np.zeros(2)
    try:
        e = fn(img, pts)
    except Exception as exc:  # pragma: no cover - depends on the eyes module
        log.debug("eye measurement failed: %s", exc)
        return None, np.zeros(2)
    pupils = getattr(e, "pupils", None)
    if pupils is None:
        return None, np.zeros(2)
    return np.asarray(pupils, np.float64), np.asarray(getattr(e, "pupil_confidence", np.ones(2)), np.float64)


# ---------------------------------------------------------------------------------------------------- main entry
def pick_keyframes(observations: Sequence[FrameObservation], k: int) -> list[int]:
    """Indices of up to ``k`` frames with a face, spread evenly over the clip (the most confident in each
    of ``k`` equal segments)."""
    good = [i for i, o in enumerate(observations) if o.found]
    if not good or k <= 0:
        return []
    n = len(observations)
    out: list[int] = []
    for s in range(k):
        lo, hi = s * n // k, (s + 1) * n // k
        seg = [i for i in good if lo <= i < hi]
        if seg:
            out.append(max(seg, key=lambda i: float(np.mean(observations[i].landmark_confidence))))
    return sorted(set(out))


def model_fingerprint(model: Any) -> str:
    """sha256 (first 16 hex digits) of the model's arrays."""
    h = hashlib.sha256()
    for name in (
        "mean_shape",
        "faces",
        "id_basis",
        "expr_basis",
        "blink_basis",
        "mean_albedo",
        "albedo_basis",
    ):
        h.update(np.ascontiguousarray(getattr(model, name)).tobytes())
    return h.hexdigest()[:16]


def track_video(
    source: str | Path,
    frames: Iterable[int] | str | None = None,
    device: str = "cpu",
    smooth: bool = False,
    progress: ProgressFn | None = None,
    identity_keyframes: int = 5,
    on_bad_frame: str = "flag",
    *,
    model: Any = None,
    settings: TrackerSettings | None = None,
    intrinsics: Sequence[float] | None = None,
    landmark_source: LandmarkSource | None = None,
    images: Sequence[npt.NDArray[np.uint8]] | None = None,
    frame_numbers: Sequence[int] | None = None,
    rate: Fraction | int | None = None,
    result: list[TrackResult] | None = None,
    smoothing: Mapping[str, float] | None = None,
    update: FaceTrack | None = None,
) -> FaceTrack:
    """Track a face through a video or image sequence.

    Args:
        source: movie file or image sequence (recorded in the metadata; not read if ``images`` is given).
        frames: frame numbers or a range string (``"1-20"``); None = all frames. Movies count from 1.
        device: ``"cpu"`` (numpy) or ``"cuda"`` (CuPy; frames solved in batches of 64).
        smooth: Gaussian temporal smoothing of the curves (sigma 1 frame, within runs of valid frames).
        progress: called as ``progress(stage, done, total)`` with stage ``"landmarks"`` then ``"track"``.
        identity_keyframes: K keyframes for the identity solve (0 = mean face, no identity mode).
        on_bad_frame: ``"flag"`` (lost frames get ``track.valid = 0``, parameters held from the last good
            frame) or ``"error"`` (raise :class:`~dvp_engine.core.errors.InputError` naming the frame).
        model: a FaceModel (default :func:`dvp_engine.facemodel.load_default_model`).
        settings: :class:`TrackerSettings` (``device``/``smooth`` arguments override its fields).
        intrinsics: ``(fx, fy, cx, cy)``; default ``fx = fy = 2 * max(w, h)``, centred principal point.
        landmark_source: a :data:`LandmarkSource`; default :func:`default_landmark_source`.
        images, frame_numbers, rate: frames already in memory (tests, hosts) instead of decoding ``source``.
        result: if a list is given, the raw :class:`TrackResult` is appended to it (diagnostics).
        smoothing: strength (sigma in frames) per channel group ``pose expression gaze blinks light``
            (:func:`dvp_engine.transfer.smoothing.smooth_track`: blinks keep their edges), applied to the
            tracked frames (with ``update``: to the re-tracked stretch only).
        update: an existing track of the same footage to re-track ``frames`` into (:func:`merge_stretch`):
            its identity, reflectance, intrinsics and eye calibration are kept (no identity mode), the first
            frame starts from the track's values at the frame before the stretch (or at its first frame, e.g.
            an artist's fixed key), and the result is the existing track with those frames replaced.

    Returns:
        The :class:`~dvp_engine.core.FaceTrack` (per-frame channels incl. ``track.confidence`` and
        ``track.valid``; identity and reflectance; metadata).
    """
    if on_bad_frame not in ("flag", "error"):
        raise ValueError(f"on_bad_frame must be 'flag' or 'error', got {on_bad_frame!r}")
    t_start = time.perf_counter()
    if model is None:
        from dvp_engine.facemodel import load_default_model

        model = load_default_model()
    st = settings or TrackerSettings()
    st.device = device
    st.smooth = smooth
    if device.startswith("cuda") and settings is None:
        st.batch_size = 64
    st.identity_keyframes = identity_keyframes
    unreadable: dict[int, str] = {}
    errors = None if on_bad_frame == "error" else unreadable
    if images is not None:
        mem = [_to_uint8(np.asarray(i)) for i in images]
        mem_numbers = list(frame_numbers) if frame_numbers is not None else list(range(1, len(mem) + 1))
        if len(mem_numbers) != len(mem):
            raise InputError(f"{len(mem_numbers)} frame numbers for {len(mem)} images", path=source)
        fps = Fraction(rate if rate is not None else 25)
    else:
        fps = source_rate(source)

    def stream() -> Iterator[tuple[int, npt.NDArray[np.uint8] | None]]:
        if images is not None:
            return iter(zip(mem_numbers, mem, strict=True))
        return stream_source(source, frames, errors=errors)

    # pass 1: landmarks, in order (sources may track boxes between frames); frames are not kept
    if isinstance(frames, Iterator):
        frames = list(frames)
    total = len(mem) if images is not None else count_frames(source, frames)
    lsrc = as_landmark_source(landmark_source)
    marks = landmark_pass(source, stream(), lsrc, total, on_bad_frame, progress, unreadable)
    numbers, obs = marks.numbers, marks.observations
    w, h = marks.size

    # identity mode on keyframes (re-read), then pass 2: tracking mode, streaming in order
    start = None
    if update is not None:
        if (update.width, update.height) != (w, h):
            raise InputError(
                f"the track to update is {update.width}x{update.height}, the footage {w}x{h}", path=source
            )
        intrinsics = update.intrinsics
        before = [k for k in range(update.n_frames) if update.frames[k] < numbers[0]]
        row = before[-1] if before else int(np.searchsorted(update.frames, numbers[0]))
        start = update.params()[min(row, update.n_frames - 1)]
    tracker = Tracker(model, w, h, st, intrinsics)
    keys = [] if update is not None else pick_keyframes(obs, identity_keyframes)
    if update is not None:
        tracker.set_identity(update.identity, update.reflectance)
    if keys:
        want = {numbers[k] for k in keys}
        if images is not None:
            key_imgs = {numbers[k]: mem[k] for k in keys}
        else:
            key_imgs = {
                n: img for n, img in stream_source(source, sorted(want), errors={}) if img is not None
            }
        tracker.fit_identity([key_imgs[numbers[k]] for k in keys], [obs[k] for k in keys])
    res = tracking_pass(
        source,
        tracker,
        stream(),
        numbers,
        obs,
        (w, h),
        on_bad_frame,
        progress,
        start=start,
        eyes=update.eyes if update is not None else None,
    )
    if result is not None:
        result.append(res)
    track = pack_track(
        source, model, st, tracker, res, numbers, fps, marks, [int(numbers[k]) for k in keys], lsrc, t_start
    )
    if smoothing:  # with ``update``: the re-tracked stretch only
        from dvp_engine.transfer.smoothing import smooth_track

        track = smooth_track(track, smoothing)
    if update is not None:
        track = merge_stretch(update, track)
    return track


@dataclass
class LandmarkPass:
    """Pass 1 of tracking: frame numbers, one :class:`FrameObservation` each, notes on frames tracked with a
    warning (by frame number, as text), the frame size ``(width, height)`` in pixels and the seconds spent."""

    numbers: list[int]
    observations: list[FrameObservation]
    notes: dict[str, str]
    size: tuple[int, int]
    seconds: float


def landmark_pass(
    source: str | Path,
    frames: Iterable[tuple[int, npt.NDArray[np.uint8] | None]],
    lsrc: LandmarkSource,
    total: int | None,
    on_bad_frame: str,
    progress: ProgressFn | None,
    unreadable: dict[int, str],
) -> LandmarkPass:
    """Run the landmark source on ``(frame number, image or None)`` pairs, in order (see :func:`track_video`)."""
    t0 = time.perf_counter()
    numbers: list[int] = []
    obs: list[FrameObservation] = []
    notes: dict[str, str] = {}
    size: tuple[int, int] | None = None
    for num, img in frames:
        if img is None:
            o = FrameObservation(None, 0.0, message=unreadable.get(num, "unreadable frame"))
        else:
            if size is None:
                size = (img.shape[1], img.shape[0])
            elif (img.shape[1], img.shape[0]) != size:
                raise InputError(
                    f"frame size {img.shape[1]}x{img.shape[0]} differs from {size[0]}x{size[1]}",
                    path=source,
                    frame=num,
                )
            try:
                o = lsrc(img)
            except Exception as exc:  # a corrupt frame must not end the track
                o = FrameObservation(None, 0.0, message=f"landmark detection failed ({exc})")
        if not o.found and on_bad_frame == "error":
            raise InputError(o.message or "no face found", path=source, frame=num)
        if o.message:
            if o.found:  # e.g. several faces, the largest taken: tracked, but worth saying
                notes[str(num)] = o.message
            log.log(logging.WARNING if o.found else logging.INFO, "frame %d: %s", num, o.message)
        numbers.append(num)
        obs.append(o)
        if progress is not None:
            progress("landmarks", len(numbers), max(total or 0, len(numbers)))
    if not numbers or size is None:
        raise InputError("no readable frames to track", path=source)
    return LandmarkPass(numbers, obs, notes, size, time.perf_counter() - t0)


def tracking_pass(
    source: str | Path,
    tracker: Tracker,
    frames: Iterable[tuple[int, npt.NDArray[np.uint8] | None]],
    numbers: Sequence[int],
    obs: Sequence[FrameObservation],
    size: tuple[int, int],
    on_bad_frame: str,
    progress: ProgressFn | None,
    start: npt.NDArray[np.float64] | None = None,
    eyes: Any = None,
    blink_closure: npt.NDArray[np.float64] | None = None,
) -> TrackResult:
    """Pass 2: tracking mode over the frames (streamed in order; they must be ``numbers``), identity held.

    ``blink_closure``: eyelid closure observations measured over the whole clip (chunks; see
    :meth:`~dvp_engine.tracking.tracker.Tracker.track`).

    ``start``: the packed parameters the first frame starts from (re-tracking a stretch); ``eyes``: a fixed
    :class:`~dvp_engine.core.gaze.EyeCalibration` (None: estimated from these frames)."""
    w, h = size
    blank = np.zeros((h, w, 3), np.uint8)
    it = iter(frames)

    def frame_at(k: int) -> npt.NDArray[np.uint8]:
        num, img = next(it)
        if num != numbers[k]:
            raise InputError(
                f"the source changed while tracking (expected frame {numbers[k]})", path=source, frame=num
            )
        return blank if img is None else img

    res = tracker.track(
        frame_at, obs, progress=(lambda d, n: progress("track", d, n)) if progress is not None else None,
        start=start, eyes=eyes, blink_closure=blink_closure,
    )  # fmt: skip
    if on_bad_frame == "error" and not res.valid.all():
        bad = int(np.flatnonzero(~res.valid)[0])
        raise InputError(res.messages.get(bad, "tracking lost"), path=source, frame=numbers[bad])
    return res


def pack_track(
    source: str | Path,
    model: Any,
    st: TrackerSettings,
    tracker: Tracker,
    res: TrackResult,
    numbers: Sequence[int],
    fps: Fraction,
    marks: LandmarkPass,
    keyframes: Sequence[int],
    lsrc: Any,
    t_start: float,
) -> FaceTrack:
    """The :class:`~dvp_engine.core.FaceTrack` of a tracking result, with its metadata (see the module doc)."""
    w, h = marks.size
    lost = {str(numbers[k]): v for k, v in sorted(res.messages.items())}
    have = {str(n) for n in numbers}
    header = getattr(model, "header", {}) or {}
    metadata: dict[str, Any] = {
        "source": str(source),
        "face_model": {
            "name": header.get("name", "custom"),
            "schema": header.get("schema", "FaceModel.1"),
            "hash": model_fingerprint(model),
        },
        "controls": {
            "names": list(model.control_names),
            "matrix": np.asarray(model.control_matrix, np.float64).round(7).tolist(),
        },
        "tracker": {
            "settings": st.as_dict(),
            "identity_keyframes": [int(k) for k in keyframes],
            "landmarks": source_name(lsrc) if not isinstance(lsrc, str) else lsrc,
            "seconds": {
                "landmarks": round(marks.seconds, 3),
                **{k: round(v, 3) for k, v in res.timings.items()},
                "total": round(time.perf_counter() - t_start, 3),
            },
        },
        "lost_frames": lost,
        "frame_notes": {k: v for k, v in marks.notes.items() if k in have},
    }
    if res.eyes is not None:
        metadata["tracker"]["eye_calibration"] = {
            "method": res.eyes.method,
            "fallback": res.eyes.fallback,
            "frames_used": res.eyes.frames_used,
            "note": res.eyes.note,
        }
        if res.eyes.note:
            log.warning("eye calibration: %s", res.eyes.note)
        else:
            log.info(
                "eye calibration (%s, %d frames): eyeball centres moved %s mm from the model's",
                res.eyes.method,
                res.eyes.frames_used,
                np.round(np.asarray(res.eyes.offsets) * 1000, 1).tolist(),
            )
    return FaceTrack.from_params(
        np.asarray(numbers, np.int64),
        res.params,
        rate=fps,
        width=w,
        height=h,
        intrinsics=tracker.intrinsics,
        identity=res.identity.astype(np.float32),
        reflectance=res.reflectance.astype(np.float32),
        confidence=res.confidence.astype(np.float32),
        valid=res.valid.astype(np.float32),
        metadata=metadata,
        eyes=res.eyes,
    )


def merge_stretch(existing: FaceTrack, stretch: FaceTrack) -> FaceTrack:
    """``existing`` with the frames of ``stretch`` replaced (or inserted in order): identity, reflectance, eye
    calibration and metadata of ``existing`` kept; channels only one of them has are 0 where missing;
    ``metadata["updates"]`` lists the re-tracked ranges; lost-frame notes of the stretch replace the old ones."""
    from dvp_engine.core.frames import FrameSet

    frames = np.union1d(existing.frames, stretch.frames)
    names = list(existing.channels) + [n for n in stretch.channels if n not in existing.channels]
    chans = {n: np.zeros(len(frames), np.float32) for n in names}
    pos_e = np.searchsorted(frames, existing.frames)
    pos_s = np.searchsorted(frames, stretch.frames)
    for n in names:
        if n in existing.channels:
            chans[n][pos_e] = existing.channels[n]
        if n in stretch.channels:
            chans[n][pos_s] = stretch.channels[n]
    meta = json.loads(json.dumps(existing.metadata))
    span = str(FrameSet.from_frames([int(f) for f in stretch.frames]))
    meta["updates"] = [*meta.get("updates", []), span]
    kept = {
        k: v for k, v in meta.get("lost_frames", {}).items() if int(k) not in set(stretch.frames.tolist())
    }
    meta["lost_frames"] = {**kept, **stretch.metadata.get("lost_frames", {})}
    return existing.replace(frames=frames, channels=chans, metadata=meta)
