"""Tracking that scales out: identity solved once, frame chunks tracked on many hosts, then merged.

Examples (the farm job's three kinds of task)::

    dvp track clip.mov --identity-only -o work/clip.identity.npz                 # one task
    dvp track clip.mov --identity work/clip.identity.npz --frames 1-100 -o work/clip.0001.npz  # one per chunk
    dvp track --merge work/clip.0001.npz work/clip.0101.npz -o work/clip.npz     # one task

The identity task runs the landmark pass over every frame, picks the keyframes and solves identity and
reflectance exactly as one-process tracking does (:func:`dvp_engine.tracking.pipeline.track_video`), and
writes an **identity file**: the solved identity plus every frame's landmark observation. A chunk task reads
it, decodes only its frames and runs tracking mode on them with the shared identity and the stored landmarks;
it writes a partial FaceTrack whose metadata names the identity file (its sha256) and every frame of the job.
The merge joins the parts in frame order, refuses overlapping chunks and missing frames (naming them), and
restores what one process does across a chunk boundary: a lost frame holds the last good frame before it.

The only difference from one process: the tracker warm-starts each batch of frames from the previous batch,
so the first batch of a chunk starts cold (landmark alignment and a light solve, as the first frame of a
clip does). Identity, landmarks and every other frame's inputs are the same.

The identity file is an ``.npz`` (no pickles) with a JSON ``header`` (schema :data:`IDENTITY_SCHEMA`).
"""

from __future__ import annotations

import json
import logging
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dvp_engine.core import FaceTrack, layout
from dvp_engine.core.atomic import atomic_path, sha256_file
from dvp_engine.core.errors import InputError, SchemaError
from dvp_engine.core.frames import FrameSet

from .pipeline import (
    ProgressFn,
    as_landmark_source,
    count_frames,
    landmark_pass,
    model_fingerprint,
    pack_track,
    pick_keyframes,
    source_name,
    source_rate,
    stream_source,
    tracking_pass,
)
from .tracker import FrameObservation, Tracker, TrackerSettings, smooth_params

log = logging.getLogger("dvp.track")

IDENTITY_SCHEMA = "DvpIdentity.1"
"""Schema of an identity file (``dvp track --identity-only``)."""


@dataclass
class IdentitySolve:
    """An actor's identity solved once for a whole clip, with the landmark observation of every frame.

    Attributes:
        source: the video it was solved on (as given).
        frames: ``(N,)`` int64 frame numbers of the whole job, increasing.
        width, height: frame size in pixels.
        rate: frames per second.
        intrinsics: ``(fx, fy, cx, cy)`` in pixels (OpenCV convention).
        identity, reflectance: ``(80,)`` coefficients (geometry, reflectance).
        keyframes: frame numbers the identity was solved on.
        found: ``(N,)`` bool, a face was reported on the frame.
        landmarks: ``(N, 68, 2)`` pixel positions (0 where no face).
        landmark_confidence: ``(N, 68)`` in [0, 1].
        has_pupils: ``(N,)`` bool; pupils: ``(N, 2, 2)`` pixels (actor's left eye first); pupil_confidence
            ``(N, 2)`` in [0, 1].
        messages: per-frame message of the landmark source ("" for none).
        notes: frame (text) -> warning for frames tracked despite it (several faces...).
        face_model: the face model's fingerprint (:func:`model_fingerprint`).
        landmark_name: the landmark source's name.
        seconds: time spent: ``landmarks``, ``identity``.
    """

    source: str
    frames: npt.NDArray[np.int64]
    width: int
    height: int
    rate: Fraction
    intrinsics: tuple[float, float, float, float]
    identity: npt.NDArray[np.float64]
    reflectance: npt.NDArray[np.float64]
    keyframes: list[int]
    found: npt.NDArray[np.bool_]
    landmarks: npt.NDArray[np.float64]
    landmark_confidence: npt.NDArray[np.float64]
    has_pupils: npt.NDArray[np.bool_]
    pupils: npt.NDArray[np.float64]
    pupil_confidence: npt.NDArray[np.float64]
    messages: list[str]
    notes: dict[str, str] = field(default_factory=dict)
    face_model: str = ""
    landmark_name: str = ""
    seconds: dict[str, float] = field(default_factory=dict)

    def observations(self, index: Sequence[int]) -> list[FrameObservation]:
        """The :class:`FrameObservation` of the frames at these indices (into :attr:`frames`)."""
        out = []
        for i in index:
            if not self.found[i]:
                out.append(FrameObservation(None, 0.0, message=self.messages[i]))
                continue
            out.append(
                FrameObservation(
                    self.landmarks[i].copy(),
                    self.landmark_confidence[i].copy(),
                    self.pupils[i].copy() if self.has_pupils[i] else None,
                    self.pupil_confidence[i].copy(),
                    message=self.messages[i],
                )
            )
        return out

    def save(self, path: str | Path) -> Path:
        """Write the identity file atomically (``.npz``); returns the path."""
        dest = Path(path)
        if dest.suffix != ".npz":
            raise InputError("an identity file must end in .npz", path=dest)
        header = {
            "schema": IDENTITY_SCHEMA,
            "source": self.source,
            "width": self.width,
            "height": self.height,
            "rate": [self.rate.numerator, self.rate.denominator],
            "intrinsics": list(self.intrinsics),
            "keyframes": self.keyframes,
            "messages": self.messages,
            "notes": self.notes,
            "face_model": self.face_model,
            "landmarks": self.landmark_name,
            "seconds": self.seconds,
        }
        arrays: dict[str, npt.NDArray[Any]] = {
            "header": np.frombuffer(json.dumps(header, sort_keys=True).encode("utf-8"), np.uint8),
            "frames": self.frames,
            "identity": self.identity,
            "reflectance": self.reflectance,
            "found": self.found,
            "landmarks": self.landmarks,
            "landmark_confidence": self.landmark_confidence,
            "has_pupils": self.has_pupils,
            "pupils": self.pupils,
            "pupil_confidence": self.pupil_confidence,
        }
        with atomic_path(dest) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, allow_pickle=False, **arrays)
        return dest

    @classmethod
    def load(cls, path: str | Path) -> IdentitySolve:
        """Read an identity file; clear errors for a missing, corrupt or foreign file."""
        src = Path(path)
        if not src.is_file():
            raise InputError("identity file not found", path=src)
        try:
            with np.load(src, allow_pickle=False) as data:
                a = {k: data[k] for k in data.files}
            header = json.loads(a["header"].tobytes().decode("utf-8"))
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
            raise InputError(f"not a readable identity file ({exc})", path=src) from exc
        if header.get("schema") != IDENTITY_SCHEMA:
            raise SchemaError(
                f"not an identity file (schema {header.get('schema')!r}; expected {IDENTITY_SCHEMA})",
                path=src,
            )
        try:
            num, den = header["rate"]
            return cls(
                source=str(header["source"]),
                frames=np.asarray(a["frames"], np.int64),
                width=int(header["width"]),
                height=int(header["height"]),
                rate=Fraction(int(num), int(den)),
                intrinsics=tuple(float(x) for x in header["intrinsics"]),  # type: ignore[arg-type]
                identity=np.asarray(a["identity"], np.float64),
                reflectance=np.asarray(a["reflectance"], np.float64),
                keyframes=[int(k) for k in header["keyframes"]],
                found=np.asarray(a["found"], bool),
                landmarks=np.asarray(a["landmarks"], np.float64),
                landmark_confidence=np.asarray(a["landmark_confidence"], np.float64),
                has_pupils=np.asarray(a["has_pupils"], bool),
                pupils=np.asarray(a["pupils"], np.float64),
                pupil_confidence=np.asarray(a["pupil_confidence"], np.float64),
                messages=[str(m) for m in header["messages"]],
                notes=dict(header.get("notes", {})),
                face_model=str(header.get("face_model", "")),
                landmark_name=str(header.get("landmarks", "")),
                seconds=dict(header.get("seconds", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"identity file is missing or has malformed field {exc}", path=src) from exc


def _settings(device: str) -> TrackerSettings:
    st = TrackerSettings()
    st.device = device
    if device.startswith("cuda"):
        st.batch_size = 64
    return st


def solve_identity(
    source: str | Path,
    frames: Sequence[int] | str | None = None,
    device: str = "cpu",
    identity_keyframes: int = 5,
    *,
    on_bad_frame: str = "flag",
    intrinsics: Sequence[float] | None = None,
    model: Any = None,
    landmark_source: Any = None,
    progress: ProgressFn | None = None,
) -> IdentitySolve:
    """The identity task: the landmark pass over every frame, keyframes, identity mode (as :func:`track_video`).

    Args:
        source: movie or image sequence; frames: numbers or a range string (None = all).
        device, identity_keyframes, on_bad_frame, intrinsics: as :func:`track_video`.
    """
    if model is None:
        from dvp_engine.facemodel import load_default_model

        model = load_default_model()
    st = _settings(device)
    st.identity_keyframes = identity_keyframes
    unreadable: dict[int, str] = {}
    errors = None if on_bad_frame == "error" else unreadable
    fps = source_rate(source)
    lsrc = as_landmark_source(landmark_source)
    marks = landmark_pass(
        source,
        stream_source(source, frames, errors=errors),
        lsrc,
        count_frames(source, frames),
        on_bad_frame,
        progress,
        unreadable,
    )
    w, h = marks.size
    tracker = Tracker(model, w, h, st, intrinsics)
    obs = marks.observations
    keys = pick_keyframes(obs, identity_keyframes)
    t0 = time.perf_counter()
    if keys:
        want = sorted({marks.numbers[k] for k in keys})
        imgs = {n: img for n, img in stream_source(source, want, errors={}) if img is not None}
        tracker.fit_identity([imgs[marks.numbers[k]] for k in keys], [obs[k] for k in keys])
    n = len(obs)
    found = np.array([o.found for o in obs], bool)
    lm = np.zeros((n, 68, 2))
    lc = np.zeros((n, 68))
    hp = np.zeros(n, bool)
    pp = np.zeros((n, 2, 2))
    pc = np.zeros((n, 2))
    for i, o in enumerate(obs):
        if o.found and o.landmarks is not None:
            lm[i] = o.landmarks
            lc[i] = np.broadcast_to(np.asarray(o.landmark_confidence, np.float64), (68,))
            if o.pupils is not None:
                hp[i] = True
                pp[i] = o.pupils
            pc[i] = np.asarray(o.pupil_confidence, np.float64)
    return IdentitySolve(
        source=str(source),
        frames=np.asarray(marks.numbers, np.int64),
        width=w,
        height=h,
        rate=fps,
        intrinsics=tracker.intrinsics,
        identity=_host(tracker.alpha),
        reflectance=_host(tracker.beta),
        keyframes=[int(marks.numbers[k]) for k in keys],
        found=found,
        landmarks=lm,
        landmark_confidence=lc,
        has_pupils=hp,
        pupils=pp,
        pupil_confidence=pc,
        messages=[o.message for o in obs],
        notes=marks.notes,
        face_model=model_fingerprint(model),
        landmark_name=source_name(lsrc),
        seconds={"landmarks": round(marks.seconds, 3), "identity": round(time.perf_counter() - t0, 3)},
    )


def _host(a: Any) -> npt.NDArray[np.float64]:
    from .xp import asnumpy

    return np.asarray(asnumpy(a), np.float64)


def track_chunk(
    identity_path: str | Path,
    source: str | Path,
    frames: Sequence[int] | str | None,
    device: str = "cpu",
    *,
    on_bad_frame: str = "flag",
    model: Any = None,
    progress: ProgressFn | None = None,
) -> FaceTrack:
    """A chunk task: track ``frames`` of ``source`` with the identity and landmarks of the identity file.

    Returns a partial :class:`FaceTrack` (metadata ``chunk``: the identity file's sha256, the chunk's frames
    and every frame of the job) for :func:`merge_tracks`. Frames outside the identity file are an error.
    """
    t_start = time.perf_counter()
    ident = IdentitySolve.load(identity_path)
    if model is None:
        from dvp_engine.facemodel import load_default_model

        model = load_default_model()
    if ident.face_model and ident.face_model != model_fingerprint(model):
        raise InputError("the identity was solved with a different face model", path=identity_path)
    all_frames = FrameSet.from_frames(ident.frames.tolist())
    want = all_frames if frames is None else (FrameSet.parse(frames) if isinstance(frames, str) else None)
    if want is None:
        want = FrameSet.from_frames(frames)  # type: ignore[arg-type]
    outside = want - all_frames
    if outside:
        raise InputError(
            f"frames {outside} are not in the identity file (it covers {all_frames})", path=identity_path
        )
    index = {int(f): i for i, f in enumerate(ident.frames)}
    numbers = list(want)
    obs = ident.observations([index[f] for f in numbers])
    st = _settings(device)
    tracker = Tracker(model, ident.width, ident.height, st, ident.intrinsics)
    tracker.set_identity(ident.identity, ident.reflectance)
    # clip-level statistics come from every frame of the identity file, as one process measures them
    clip_blinks = tracker.blink_measures(ident.observations(range(len(ident.frames))))
    blink_closure = None if clip_blinks is None else clip_blinks[[index[f] for f in numbers]]
    errors: dict[int, str] | None = None if on_bad_frame == "error" else {}
    if on_bad_frame == "error":
        bad = [n for n, o in zip(numbers, obs, strict=True) if not o.found]
        if bad:
            raise InputError(obs[numbers.index(bad[0])].message or "no face found", path=source, frame=bad[0])
    res = tracking_pass(
        source,
        tracker,
        stream_source(source, numbers, errors=errors),
        numbers,
        obs,
        (ident.width, ident.height),
        on_bad_frame,
        progress,
        blink_closure=blink_closure,
    )
    from .pipeline import LandmarkPass

    marks = LandmarkPass(numbers, obs, ident.notes, (ident.width, ident.height), 0.0)
    track = pack_track(
        source,
        model,
        st,
        tracker,
        res,
        numbers,
        ident.rate,
        marks,
        ident.keyframes,
        ident.landmark_name,
        t_start,
    )
    track.metadata["tracker"]["seconds"]["landmarks"] = 0.0
    track.metadata["chunk"] = {
        "identity": sha256_file(identity_path),
        "identity_path": str(Path(identity_path).resolve()),
        "frames": str(want),
        "all_frames": str(all_frames),
        "identity_seconds": ident.seconds,
    }
    return track


def merge_tracks(
    parts: Sequence[FaceTrack],
    names: Sequence[str] | None = None,
    *,
    smooth: float = 0.0,
    identity: IdentitySolve | None = None,
    model: Any = None,
) -> FaceTrack:
    """Join chunk tracks (:func:`track_chunk`) of one identity file into the whole job's track.

    The eye calibration is a clip-level estimate (:mod:`dvp_engine.tracking.eye_calibration`): with the
    chunks' ``identity`` file (its pupils of every frame), the eyes are calibrated once over the merged poses
    and every frame's gaze is solved again with that calibration, as one process does. Without it, each chunk
    keeps the gaze of its own calibration and the merged track records none (a warning says so).

    Args:
        parts: the chunks, in any order.
        names: their file names, for error messages (default ``part 1``, ``part 2``...).
        smooth: if > 0, Gaussian temporal smoothing of sigma ``smooth`` frames over the merged track.
        identity: the identity file the chunks were tracked with (checked against their sha256 by the caller).
        model: the face model (default: the shipped one).

    Raises:
        InputError: a part is not a chunk, the parts come from different identity files, two parts track
            the same frames (names both and the frames), or frames of the job are in no part (names them).
    """
    if not parts:
        raise InputError("nothing to merge")
    labels = list(names) if names is not None else [f"part {i + 1}" for i in range(len(parts))]
    chunks = []
    for t, name in zip(parts, labels, strict=True):
        c = t.metadata.get("chunk")
        if not isinstance(c, dict) or "identity" not in c:
            raise InputError("not a chunk track (written by 'dvp track --identity ...')", path=name)
        chunks.append(c)
    ids = {c["identity"] for c in chunks}
    if len(ids) > 1:
        raise InputError(
            "the chunks were tracked with different identity files: "
            + ", ".join(f"{n} ({c['identity'][:12]})" for n, c in zip(labels, chunks, strict=True))
        )
    order = sorted(range(len(parts)), key=lambda i: int(parts[i].frames[0]) if parts[i].n_frames else 0)
    seen: dict[int, str] = {}
    for i in order:
        have = FrameSet.from_frames(parts[i].frames.tolist())
        clash = [f for f in have if f in seen]
        if clash:
            other = seen[clash[0]]
            raise InputError(
                f"chunks overlap: frames {FrameSet.from_frames(clash)} are in both {other} and {labels[i]}",
                path=labels[i],
            )
        seen.update({f: labels[i] for f in have})
    all_frames = FrameSet.parse(chunks[0]["all_frames"])
    missing = all_frames - FrameSet.from_frames(seen)
    if missing:
        raise InputError(f"frames {missing} of {all_frames} are in no chunk: track them before merging")
    first = parts[order[0]]
    names = list(first.channels)
    for i in order:
        if list(parts[i].channels) != names:
            raise InputError("the chunk's channels differ from the other chunks'", path=labels[i])
    chans = {k: np.concatenate([parts[i].channels[k] for i in order]) for k in names}
    frames_all = np.concatenate([parts[i].frames for i in order])
    eyes = None
    if identity is not None:
        chans, eyes = _calibrate_merged(first, frames_all, chans, identity, model)
    else:
        log.warning("merging without the identity file: the eyes are not calibrated over the whole clip")
    valid = chans[layout.VALID] > 0.5
    n = len(valid)
    good = np.flatnonzero(valid)
    if good.size:  # a lost frame holds the last good frame before it, across chunk boundaries too
        src = np.maximum.accumulate(np.where(valid, np.arange(n), -1))
        src = np.where(src < 0, good[0], src)
        for k in names:
            if k not in (layout.VALID, layout.CONFIDENCE):
                chans[k] = chans[k][src]
    meta = json.loads(json.dumps(first.metadata))
    del meta["chunk"]
    meta["lost_frames"] = {}
    meta["frame_notes"] = {}
    secs: dict[str, float] = {}
    for i in order:
        meta["lost_frames"].update(parts[i].metadata.get("lost_frames", {}))
        meta["frame_notes"].update(parts[i].metadata.get("frame_notes", {}))
        for k, v in parts[i].metadata.get("tracker", {}).get("seconds", {}).items():
            secs[k] = round(secs.get(k, 0.0) + float(v), 3)
    for k, v in chunks[0].get("identity_seconds", {}).items():
        secs[k] = round(secs.get(k, 0.0) + float(v), 3)
    meta["tracker"]["seconds"] = secs
    meta["tracker"]["settings"]["smooth"] = smooth > 0
    if smooth > 0:
        meta["tracker"]["settings"]["smooth_sigma"] = smooth
    meta["merged_from"] = {"identity": chunks[0]["identity"], "chunks": [chunks[i]["frames"] for i in order]}
    if eyes is not None:
        meta["tracker"]["eye_calibration"] = {
            "method": eyes.method,
            "fallback": eyes.fallback,
            "frames_used": eyes.frames_used,
            "note": eyes.note,
        }
    else:
        meta["tracker"].pop("eye_calibration", None)
    merged = FaceTrack(
        frames=frames_all,
        rate=first.rate,
        width=first.width,
        height=first.height,
        intrinsics=first.intrinsics,
        channels=chans,
        identity=first.identity,
        reflectance=first.reflectance,
        metadata=meta,
        eyes=eyes,
    )
    if smooth > 0:
        merged = merged.with_params(smooth_params(merged.params(), valid, smooth))
    return merged


def _calibrate_merged(
    first: FaceTrack,
    frames: npt.NDArray[np.int64],
    chans: dict[str, npt.NDArray[np.float32]],
    identity: IdentitySolve,
    model: Any,
) -> tuple[dict[str, npt.NDArray[np.float32]], Any]:
    """Calibrate the eyes over every merged frame and solve each valid frame's gaze with it."""
    if model is None:
        from dvp_engine.facemodel import load_default_model

        model = load_default_model()
    index = {int(f): i for i, f in enumerate(identity.frames)}
    missing = [int(f) for f in frames if int(f) not in index]
    if missing:
        raise InputError(f"frames {FrameSet.from_frames(missing)} are not in the identity file")
    obs = identity.observations([index[int(f)] for f in frames])
    whole = FaceTrack(
        frames=frames,
        rate=first.rate,
        width=first.width,
        height=first.height,
        intrinsics=first.intrinsics,
        channels=dict(chans),
        identity=first.identity,
        reflectance=first.reflectance,
    )
    params = whole.params()
    valid = chans[layout.VALID] > 0.5
    tracker = Tracker(model, first.width, first.height, _settings("cpu"), first.intrinsics)
    tracker.set_identity(identity.identity, identity.reflectance)
    eyes = tracker.solve_clip_gaze(params, valid, obs, np.zeros((len(frames), 2, 3)), None)
    solved = whole.with_params(params)
    return {k: solved.channels[k].astype(np.float32) for k in chans}, eyes
