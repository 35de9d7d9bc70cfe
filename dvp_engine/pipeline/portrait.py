"""The portrait pipeline's data steps: framing, conditioning images, video frames, training, rendering.

Framing: the network sees a square crop of the plate (:meth:`Framing.choose`: the whole plate when it is
square, else the smallest square holding the head and shoulders in every tracked frame), resized to the network
size S. Conditioning images are rendered with the camera intrinsics moved into that crop and scaled to S, so
renders and video frames line up pixel for pixel. The crop is stored with the model (``model/dvp_model.json``)
and reused at render time; rendered frames are written at the crop's resolution in the plate's pixels and
placed in the plate: an EXR's data window is the crop inside a display window of the plate's size, so it lands
where it belongs when merged over the plate (``--output-size crop`` writes the crop alone, ``--output-size
network`` the S x S network image).

Caches: per-frame conditioning images and video frames are stored as uint8 ``.npy`` arrays ``(T, 9, S, S)``
and ``(T, 3, S, S)`` (display-referred sRGB, 0..255), which :class:`dvp_engine.network.PairDataset` reads
lazily (memory-mapped) to stack the 11-frame windows on the fly.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import math
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dvp_engine.core import FaceTrack, layout
from dvp_engine.core.atomic import atomic_path, write_text_atomic
from dvp_engine.core.errors import DvpError, InputError

log = logging.getLogger("dvp")

ProgressFn = Callable[[int], None]
MODEL_INFO = "dvp_model.json"
HEAD_EXTENT_M = 0.45
"""Side in metres of the square a head (with hair and a little of the shoulders) is given by ``--framing head``."""


@dataclass(frozen=True)
class Framing:
    """A square crop of the plate and the network size.

    Attributes:
        x0, y0: top-left corner of the crop in plate pixels.
        side: crop side in plate pixels.
        size: network resolution S (the crop is resized to S x S).
    """

    x0: int
    y0: int
    side: int
    size: int

    @classmethod
    def centred(cls, width: int, height: int, size: int) -> Framing:
        """The largest square centred in a ``width`` x ``height`` plate."""
        side = min(width, height)
        return cls((width - side) // 2, (height - side) // 2, side, size)

    @classmethod
    def around_head(cls, track: FaceTrack, size: int, extent: float = HEAD_EXTENT_M) -> Framing:
        """The smallest square (within the plate) holding the head and shoulders in every valid frame.

        Per valid frame the head centre (the model origin, moved ``0.05 m`` down toward the chin) is projected
        with the track's intrinsics and given a square of ``extent`` metres (head, hair and a little of the
        shoulders at 0.45 m); the crop is the square around the union of those squares, as large as the plate
        allows and shifted to stay inside it. A track with no valid frame gets :meth:`centred`.
        """
        params = track.params()
        valid = valid_frames(track) & np.isfinite(params).all(axis=1)
        if not valid.any():
            return cls.centred(track.width, track.height, size)
        t = params[valid][:, layout.FRAME_LAYOUT["translation"]]
        fx, fy, cx, cy = track.intrinsics
        z = np.maximum(t[:, 2], 1e-3)
        u = fx * t[:, 0] / z + cx
        v = fy * (t[:, 1] + 0.05) / z + cy
        half = 0.5 * extent * max(fx, fy) / z
        x_lo, x_hi = float((u - half).min()), float((u + half).max())
        y_lo, y_hi = float((v - half).min()), float((v + half).max())
        side = int(min(round(max(x_hi - x_lo, y_hi - y_lo)), track.width, track.height))
        side = max(side, 1)
        x0 = int(np.clip(round(0.5 * (x_lo + x_hi) - side / 2), 0, track.width - side))
        y0 = int(np.clip(round(0.5 * (y_lo + y_hi) - side / 2), 0, track.height - side))
        return cls(x0, y0, side, size)

    @classmethod
    def choose(cls, spec: str, track: FaceTrack, size: int) -> Framing:
        """The crop for a ``--framing`` value.

        ``auto`` (default): the whole plate when it is square, else :meth:`around_head`; ``centred``: the
        largest centred square; ``head``: :meth:`around_head`; ``X,Y,SIDE``: that square in plate pixels.

        Raises:
            InputError: an unknown value, or a square that does not lie inside the plate.
        """
        text = spec.strip().lower()
        if text == "centred" or text == "centered" or (text == "auto" and track.width == track.height):
            return cls.centred(track.width, track.height, size)
        if text in ("auto", "head"):
            return cls.around_head(track, size)
        try:
            parts = text.split(",")
            if not all(p.strip().isascii() and p.strip().lstrip("+-").isdigit() for p in parts):
                raise ValueError(text)
            x0, y0, side = (int(v) for v in parts)
        except ValueError:
            raise InputError(
                f"--framing must be auto, centred, head or X,Y,SIDE (plate pixels), got {spec!r}"
            ) from None
        if side < 1 or x0 < 0 or y0 < 0 or x0 + side > track.width or y0 + side > track.height:
            raise InputError(
                f"--framing {spec}: the square {side} px at ({x0}, {y0}) is not inside the "
                f"{track.width}x{track.height} plate"
            )
        return cls(x0, y0, side, size)

    @property
    def scale(self) -> float:
        """Network pixels per plate pixel."""
        return self.size / self.side

    def intrinsics(self, intrinsics: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """Plate intrinsics ``(fx, fy, cx, cy)`` mapped into the network image (pixel-centre convention)."""
        fx, fy, cx, cy = intrinsics
        s = self.scale
        return fx * s, fy * s, (cx - self.x0 + 0.5) * s - 0.5, (cy - self.y0 + 0.5) * s - 0.5

    def crop(self, rgb: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Cut the crop out of an ``(H, W, C)`` plate frame."""
        return rgb[self.y0 : self.y0 + self.side, self.x0 : self.x0 + self.side]


def resize_images(images: npt.NDArray[Any], size: int) -> npt.NDArray[np.float32]:
    """Resize ``(N, H, W, C)`` float images to ``(N, C, size, size)`` with antialiasing (torch)."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).permute(0, 3, 1, 2)
    if t.shape[-1] != size or t.shape[-2] != size:
        t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return t.clamp_(0.0, 1.0).numpy()


def to_uint8(a: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """[0, 1] floats to uint8."""
    out: npt.NDArray[np.uint8] = np.clip(np.rint(np.asarray(a, np.float32) * 255.0), 0, 255).astype(np.uint8)
    return out


def save_npy_atomic(path: Path, array: npt.NDArray[Any]) -> Path:
    """``np.save`` through a temporary file."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
    return path


def load_video_frames(
    source: str | Path,
    frames: list[int],
    framing: Framing,
    *,
    first_frame: int = 1,
    progress: ProgressFn | None = None,
) -> npt.NDArray[np.uint8]:
    """Decode, crop and resize video frames: ``(T, 3, S, S)`` uint8 sRGB, in the order of ``frames``."""
    from dvp_engine.io.video import read_frames

    out = np.zeros((len(frames), 3, framing.size, framing.size), np.uint8)
    pos = {f: i for i, f in enumerate(frames)}
    chunk: list[tuple[int, npt.NDArray[np.float32]]] = []

    def flush() -> None:
        if not chunk:
            return
        imgs = np.stack([framing.crop(rgb) for _, rgb in chunk])
        small = to_uint8(resize_images(imgs, framing.size))
        for (f, _), img in zip(chunk, small, strict=True):
            out[pos[f]] = img
            if progress is not None:
                progress(f)
        chunk.clear()

    for f, rgb in read_frames(source, frames, first_frame=first_frame):
        chunk.append((f, rgb))
        if len(chunk) >= 16:
            flush()
    flush()
    return out


def conditioning_frames(
    track: FaceTrack,
    framing: Framing,
    *,
    device: str = "cpu",
    batch: int = 16,
    progress: ProgressFn | None = None,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
    """Render the three conditioning images of every track frame at the network size.

    Returns:
        ``(T, 9, S, S)`` uint8 (colour, correspondence, eye gaze; sRGB 0..255) and ``(T, S, S)`` float32
        face masks in [0, 1] (for mattes).
    """
    import torch

    from dvp_engine.facemodel import load_default_model
    from dvp_engine.render.camera import Camera
    from dvp_engine.render.conditioning import eyeball_follows_face, render_conditioning, track_render_inputs

    model = load_default_model()
    camera = Camera.from_intrinsics(framing.intrinsics(track.intrinsics), framing.size, framing.size)
    params, centres = track_render_inputs(track, model)
    follows = eyeball_follows_face(track)
    n = track.n_frames
    cond = np.zeros((n, 9, framing.size, framing.size), np.uint8)
    mask = np.zeros((n, framing.size, framing.size), np.float32)
    with torch.inference_mode():
        for start in range(0, n, batch):
            stop = min(n, start + batch)
            res = render_conditioning(
                model,
                params[start:stop],
                track.identity,
                track.reflectance,
                camera,
                device=device,
                eyeball_follows_face=follows,
                eye_centres=centres,
            )
            images = res.images.float().cpu().numpy()
            cond[start:stop] = to_uint8(images)
            # the correspondence codes are >= 0.1 wherever the mesh covers a pixel
            mask[start:stop] = (images[:, 3:6].max(axis=1) > 0.05).astype(np.float32)
            if progress is not None:
                for f in track.frames[start:stop]:
                    progress(int(f))
    return cond, mask


@dataclass
class ModelInfo:
    """What a trained model folder records besides its checkpoints (``dvp_model.json``)."""

    framing: Framing
    nw: int
    track: str
    source: str
    train_frames: list[int]
    held_out_frames: list[int]
    identity: list[float]
    reflectance: list[float]

    def save(self, model_dir: Path) -> None:
        doc = asdict(self)
        doc["schema"] = "DVPModel.1"
        write_text_atomic(model_dir / MODEL_INFO, json.dumps(doc, indent=1) + "\n")

    @classmethod
    def load(cls, model_dir: Path) -> ModelInfo:
        path = model_dir / MODEL_INFO
        if not path.is_file():
            raise InputError(
                f"not a dvp model folder (no {MODEL_INFO}); train one with 'dvp train'", path=model_dir
            )
        try:
            doc = json.loads(path.read_text())
            if doc.get("schema") != "DVPModel.1":
                raise InputError(f"unknown model schema {doc.get('schema')!r}", path=path)
            doc.pop("schema")
            doc["framing"] = Framing(**doc["framing"])
            return cls(**doc)
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InputError(f"model description is malformed ({exc})", path=path) from exc


MAX_FEATHER = 256.0
"""The widest matte feather (pixels at the output resolution) :func:`matte_from_mask` accepts."""


def matte_from_mask(mask: npt.NDArray[np.float32], feather: float) -> npt.NDArray[np.float32]:
    """A soft head matte: the rendered face mask dilated and feathered by ``feather`` pixels (box blurs)."""
    import torch
    import torch.nn.functional as F

    m = torch.from_numpy(np.ascontiguousarray(mask, np.float32))[:, None]
    if not (math.isfinite(feather) and 0 <= feather <= MAX_FEATHER):
        raise ValueError(f"matte feather must be 0..{MAX_FEATHER:g} pixels, got {feather}")
    r = max(1, int(round(feather)))
    m = F.max_pool2d(m, 2 * r + 1, stride=1, padding=r)  # grow over hair line and jaw
    for _ in range(3):  # three box blurs ~ a Gaussian
        m = F.avg_pool2d(m, 2 * r + 1, stride=1, padding=r, count_include_pad=False)
    return m[:, 0].clamp(0, 1).numpy()


def valid_frames(track: FaceTrack) -> npt.NDArray[np.bool_]:
    """Frames where the face was tracked (``track.valid``; all when the channel is absent)."""
    v = track.channels.get(layout.VALID)
    return np.ones(track.n_frames, bool) if v is None else v > 0.5


def prepare_data(
    track: FaceTrack,
    source: str | Path,
    framing: Framing,
    cache: Path,
    *,
    device: str = "cpu",
    first_frame: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[Path, Path]:
    """Render the conditioning images and cut the video frames for every track frame, cached as ``.npy``.

    Returns the paths of ``cond_S.npy`` ``(T, 9, S, S)`` and ``frames_S.npy`` ``(T, 3, S, S)`` (uint8). A cache
    whose recorded inputs (track file contents, source, framing) match is reused.
    """
    from .steps import Step, run_steps

    cache.mkdir(parents=True, exist_ok=True)
    s = framing.size
    cond_path, frames_path = cache / f"cond_{s}.npy", cache / f"frames_{s}.npy"
    mask_path = cache / f"mask_{s}.npy"
    key = {
        "frames": track.frames.tolist(),
        # every value the renders depend on, exactly (a sum could miss a sign flip; albedo was missing)
        "params": hashlib.sha256(track.params().tobytes()).hexdigest(),
        "identity": hashlib.sha256(track.identity.tobytes() + track.reflectance.tobytes()).hexdigest(),
        "framing": asdict(framing),
    }
    frames = [int(f) for f in track.frames]

    def counter(stage: str) -> ProgressFn | None:
        if progress is None:
            return None
        done = [0]

        def step(_: int) -> None:
            done[0] += 1
            progress(stage, done[0], len(frames))

        return step

    def do_frames() -> None:
        first = first_frame if first_frame is not None else 1
        arr = load_video_frames(source, frames, framing, first_frame=first, progress=counter("frames"))
        save_npy_atomic(frames_path, arr)

    def do_cond() -> None:
        cond, mask = conditioning_frames(track, framing, device=device, progress=counter("conditioning"))
        save_npy_atomic(mask_path, mask.astype(np.float16))
        save_npy_atomic(cond_path, cond)

    run_steps(
        [
            Step(f"frames_{s}", do_frames, [frames_path], {"source": Path(source), **key}),
            Step(f"conditioning_{s}", do_cond, [cond_path, mask_path], key),
        ],
        cache,
    )
    return cond_path, frames_path


def train_portrait(
    track_path: Path,
    source: str | Path,
    model_dir: Path,
    *,
    size: int | None = None,
    iters: int = 31000,
    batch: int | None = None,
    ngf: int | None = None,
    nw: int | None = None,
    device: str = "auto",
    seed: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    arch: str | None = None,
    preview_every: int = 1000,
    checkpoint_every: int = 1000,
    log_every: int = 50,
    bar: bool = True,
    on_log: Callable[[int, dict[str, Any]], None] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    framing: str = "auto",
    time_limit: float | None = None,
) -> dict[str, float]:
    """Train the space-time generator of one target actor (paper section 6) on a tracked video.

    The last 10 % of the frames are held out (never trained on); frames where the face was lost are left out.
    ``framing`` picks the square crop of the plate the network sees (:meth:`Framing.choose`; a resumed model keeps
    its own). Returns the last logged losses.

    Model folders are never replaced by accident: a folder that holds a model already needs ``resume``
    (continue from its latest checkpoint, exactly) or ``overwrite`` (start again: its checkpoints, log,
    previews and ``dvp_model.json`` are removed once every check has passed). On ``resume``, ``arch``,
    ``size``, ``nw``, ``ngf``, ``batch`` and ``seed`` left at ``None`` are the checkpoint's; a value that differs
    from the checkpoint's is an error, raised before anything is written. Otherwise ``None`` means the
    defaults: ``fast``, 256, 11, the architecture's width (32 for ``fast``, 64 for ``paper``), 16, 0. A lock
    file (``model_dir/.dvp-lock``, see :mod:`dvp_engine.core.lock`) keeps two trainings out of one folder.

    ``time_limit``: seconds of training after which this run stops early (checkpointed; ``resume`` continues
    it to ``iters``); preparing the data is not counted.

    ``arch`` names the architecture (:mod:`dvp_engine.network.arch`: ``fast`` or ``paper``). ``fast`` also
    takes the plate's background estimate from the training frames
    (:func:`~dvp_engine.network.inputs.estimate_background`; a moving background is logged and replaced by
    grey).

    Raises:
        DvpError: no tracked training frames, fewer than the ``fast`` background estimate needs, a model
            folder of the other architecture (or other settings) to resume, or a folder holding a model
            without ``resume``/``overwrite``.
    """
    from dvp_engine.core.lock import hold_lock
    from dvp_engine.network.arch import ARCH_DEFAULTS, check_arch

    if arch is not None:
        try:
            check_arch(arch)
        except ValueError as exc:
            raise DvpError(str(exc)) from None
    track = FaceTrack.load(track_path)
    asked: dict[str, Any] = {"arch": arch, "size": size, "nw": nw, "ngf": ngf, "batch": batch, "seed": seed}
    state = _resume_state(model_dir) if resume else None
    if not (resume or overwrite) and _holds_model(model_dir):
        raise DvpError(
            "the folder holds a trained model already; pass --resume to continue it or --overwrite to "
            "start again (its checkpoints and log are removed)",
            path=model_dir,
        )
    if state is not None:
        config = state["config"]
        old_arch = config.get("arch") or "paper"  # checkpoints from before architectures were named
        if arch is not None and arch != old_arch:
            raise DvpError(
                f"the folder holds a model of the {old_arch!r} architecture and {arch!r} was asked for; "
                "leave --arch out to continue it, or pass --overwrite (without --resume) to start again with "
                f"{arch!r}",
                path=model_dir,
            )
        diffs = [
            f"--{k} {v} (the checkpoint was trained with {config.get(k)!r})"
            for k, v in asked.items()
            if v is not None and k != "arch" and v != config.get(k)
        ]
        if diffs:
            raise DvpError(
                "cannot resume with other settings: " + "; ".join(diffs) + "; leave them out to continue "
                "with the checkpoint's, or pass --overwrite (without --resume) to start again",
                path=model_dir,
            )
        asked = {k: config.get(k) for k in asked}
        asked["arch"] = old_arch
    chosen_arch = str(asked["arch"] or "fast")
    defaults = {"size": 256, "nw": 11, "ngf": int(ARCH_DEFAULTS[chosen_arch]["ngf"]), "batch": 16, "seed": 0}
    chosen: dict[str, int] = {k: int(v) if (v := asked[k]) is not None else defaults[k] for k in defaults}
    size, nw, ngf, batch, seed = (chosen[k] for k in ("size", "nw", "ngf", "batch", "seed"))
    crop = Framing.choose(framing, track, size)
    if (resume or state is not None) and (model_dir / MODEL_INFO).is_file():
        old = ModelInfo.load(model_dir)
        crop = old.framing
        if crop.size != size:
            raise DvpError(
                f"cannot resume at size {size}: the model was trained at {crop.size}", path=model_dir
            )
        if state is not None and old.nw != nw:
            raise DvpError(
                f"cannot resume with --nw {nw}: the model was trained with {old.nw}", path=model_dir
            )
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DvpError(f"cannot create the model folder ({exc.strerror})", path=model_dir) from exc
    with hold_lock(model_dir / ".dvp-lock", f"dvp train into {model_dir}"):
        if state is None and _holds_model(model_dir):  # --overwrite, or --resume before any checkpoint
            _clear_model(model_dir)
        return _train_locked(
            track, track_path, source, model_dir, crop, size, iters, batch, ngf, nw, device, seed,
            arch=chosen_arch, resume=state is not None or resume, preview_every=preview_every, checkpoint_every=checkpoint_every,
            log_every=log_every, bar=bar, on_log=on_log, progress=progress, time_limit=time_limit,
        )  # fmt: skip


_MODEL_ENTRIES = ("latest.json", MODEL_INFO, "log.jsonl", "checkpoints", "previews")
"""What a model folder holds besides its cache (removed by ``overwrite``)."""


def _holds_model(model_dir: Path) -> bool:
    return model_dir.is_dir() and any((model_dir / n).exists() for n in _MODEL_ENTRIES)


def _clear_model(model_dir: Path) -> None:
    import shutil

    for name in _MODEL_ENTRIES:
        p = model_dir / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def _resume_state(model_dir: Path) -> dict[str, Any] | None:
    """The latest checkpoint's checked training state, or None when the folder has no checkpoint yet."""
    from dvp_engine.network import checkpoint as ck

    if not (model_dir / ck.LATEST_FILE).is_file():
        return None
    ck_dir = ck.latest_checkpoint(model_dir)
    state = ck.read_state(ck_dir)
    ck.verify_files(ck_dir, state)
    if not isinstance(state.get("config"), dict):
        raise ck.CheckpointError("training state has no config", path=ck_dir)
    return state


def _train_locked(
    track: FaceTrack,
    track_path: Path,
    source: str | Path,
    model_dir: Path,
    crop: Framing,
    size: int,
    iters: int,
    batch: int,
    ngf: int,
    nw: int,
    device: str,
    seed: int,
    *,
    arch: str,
    resume: bool,
    preview_every: int,
    checkpoint_every: int,
    log_every: int,
    bar: bool,
    on_log: Callable[[int, dict[str, Any]], None] | None,
    progress: Callable[[str, int, int], None] | None,
    time_limit: float | None = None,
) -> dict[str, float]:
    """:func:`train_portrait` once the settings are checked and the folder is locked."""
    from dvp_engine.network import PairDataset, TrainConfig, Trainer
    from dvp_engine.network.checkpoint import CheckpointError
    from dvp_engine.network.data import held_out_split
    from dvp_engine.network.infer import resolve_device

    cond_path, frames_path = prepare_data(
        track,
        source,
        crop,
        model_dir / "cache",
        device=resolve_device(device).type,
        progress=progress,
    )
    cond = np.load(cond_path, mmap_mode="r")
    video = np.load(frames_path, mmap_mode="r")
    train_idx, held_idx = held_out_split(track.n_frames, 0.1, nw)
    ok = valid_frames(track)
    train_idx = [i for i in train_idx if ok[i]]
    if not train_idx:
        raise DvpError(
            "no tracked frames to train on (the face was lost in every training frame)", path=track_path
        )
    background = None
    if arch == "fast":
        from dvp_engine.network.inputs import MIN_BACKGROUND_FRAMES, estimate_background

        if len(train_idx) < MIN_BACKGROUND_FRAMES:
            raise DvpError(
                f"the target clip is too short for the 'fast' architecture: {len(train_idx)} tracked training "
                f"frames, its background estimate needs at least {MIN_BACKGROUND_FRAMES} (use a longer clip "
                "or --arch paper)",
                path=track_path,
            )
        masks = np.load(cond_path.parent / f"mask_{size}.npy", mmap_mode="r")
        estimate = estimate_background(video[train_idx], masks[train_idx], label=str(source))
        background = estimate.image
        log.info(
            "background estimate from %d frames: spread %.4f (%s)",
            estimate.frames,
            estimate.spread,
            "used" if estimate.reliable else "unreliable, not used",
        )
    dataset = PairDataset.from_sequence(cond, video, nw)
    train_set, held_set = dataset.subset(train_idx), dataset.subset(held_idx)
    info = ModelInfo(
        framing=crop,
        nw=nw,
        track=str(track_path),
        source=str(source),
        train_frames=[int(track.frames[i]) for i in train_idx],
        held_out_frames=[int(track.frames[i]) for i in held_idx],
        identity=track.identity.tolist(),
        reflectance=track.reflectance.tolist(),
    )
    info.save(model_dir)
    cfg = TrainConfig(
        arch=arch,
        size=size,
        nw=nw,
        ngf=ngf,
        ndf=ngf if arch == "fast" else TrainConfig.ndf,
        batch=batch,
        iters=iters,
        seed=seed,
        device=device,
        preview_every=preview_every,
        checkpoint_every=checkpoint_every,
        log_every=log_every,
        progress=bar,
    )
    if resume:
        try:
            trainer = Trainer.resume(
                model_dir,
                train_set,
                held_set,
                arch=arch,
                iters=iters,
                device=device,
                progress=bar,
                preview_every=preview_every,
                checkpoint_every=checkpoint_every,
                log_every=log_every,
            )
            log.info("resuming %s at iteration %d", model_dir, trainer.iteration)
        except CheckpointError as exc:
            if "no checkpoint" not in str(exc).lower():
                raise
            log.info("no checkpoint in %s yet: starting from scratch", model_dir)
            trainer = Trainer(model_dir, train_set, held_set, cfg, background=background)
    else:
        trainer = Trainer(model_dir, train_set, held_set, cfg, background=background)
    return trainer.train(on_log=on_log, time_limit=time_limit)


@dataclass
class RenderResult:
    """What :func:`render_portrait` wrote."""

    written: list[int]
    skipped: list[int]
    pattern: str
    events: list[str]


OUTPUT_SIZES = ("plate", "crop", "network")
"""Choices of ``render_portrait(output_size=...)`` / ``dvp render --output-size``."""


def _done(fn: Callable[..., Path], *args: Any) -> Future[Path]:
    """Run ``fn(*args)`` now and return its outcome as a finished future."""
    fut: Future[Path] = Future()
    try:
        fut.set_result(fn(*args))
    except BaseException as exc:  # handed back through the future, raised by its result()
        fut.set_exception(exc)
    return fut


_LOADED: dict[tuple[str, str, int, float], Any] = {}
"""Generators kept loaded by ``render_portrait(..., keep_loaded=True)`` (at most one)."""


def _model_stamp(model_dir: Path) -> float:
    """Changes when the model folder gets a new checkpoint (its ``latest.json``)."""
    try:
        return (Path(model_dir) / "latest.json").stat().st_mtime
    except OSError:
        return 0.0


def render_portrait(
    model_dir: Path,
    track: FaceTrack,
    out_pattern: str | Path,
    *,
    frames: list[int] | None = None,
    device: str = "auto",
    batch: int = 16,
    overwrite: bool = False,
    resume: bool = False,
    output_size: str = "plate",
    feather: float = 4.0,
    track_label: str = "",
    progress: Callable[[int], None] | None = None,
    writers: int | None = None,
    frames_per_chunk: int = 256,
    allow_nan: bool = False,
    matte: str = "layer",
    keep_loaded: bool = False,
) -> RenderResult:
    """Render frames with a trained model; see :func:`_render_portrait` for the arguments.

    While it runs, a lock file beside the frames (``.dvp-render.<prefix><ext>.<host>.<pid>.<n>.lock`` listing
    its frames, :func:`dvp_engine.core.lock.hold_frames_lock`) keeps a second render of any of the same frames
    out (it fails naming the holder's host and pid); renders of other frames of the sequence may run at once.
    """
    from dvp_engine.core.frames import FrameSet
    from dvp_engine.core.lock import hold_frames_lock
    from dvp_engine.core.sequence import ImageSequence

    try:
        seq = ImageSequence.parse(str(out_pattern))
        seq.directory.mkdir(parents=True, exist_ok=True)
    except (ValueError, OSError):  # a bad pattern or folder: the renderer's own checks name it
        return _render_portrait(
            model_dir,
            track,
            out_pattern,
            frames=frames,
            device=device,
            batch=batch,
            overwrite=overwrite,
            resume=resume,
            output_size=output_size,
            feather=feather,
            track_label=track_label,
            progress=progress,
            writers=writers,
            frames_per_chunk=frames_per_chunk,
            allow_nan=allow_nan,
            matte=matte,
            keep_loaded=keep_loaded,
        )
    name = f"dvp-render.{seq.prefix}{seq.suffix.lstrip('.')}"
    wanted = FrameSet.from_frames(int(f) for f in (frames if frames is not None else track.frames))
    with hold_frames_lock(seq.directory, name, wanted, f"dvp render {seq.pattern()}"):
        return _render_portrait(
            model_dir,
            track,
            out_pattern,
            frames=frames,
            device=device,
            batch=batch,
            overwrite=overwrite,
            resume=resume,
            output_size=output_size,
            feather=feather,
            track_label=track_label,
            progress=progress,
            writers=writers,
            frames_per_chunk=frames_per_chunk,
            allow_nan=allow_nan,
            matte=matte,
            keep_loaded=keep_loaded,
        )


def _render_portrait(
    model_dir: Path,
    track: FaceTrack,
    out_pattern: str | Path,
    *,
    frames: list[int] | None = None,
    device: str = "auto",
    batch: int = 16,
    overwrite: bool = False,
    resume: bool = False,
    output_size: str = "plate",
    feather: float = 4.0,
    track_label: str = "",
    progress: Callable[[int], None] | None = None,
    writers: int | None = None,
    frames_per_chunk: int = 256,
    allow_nan: bool = False,
    matte: str = "layer",
    keep_loaded: bool = False,
) -> RenderResult:
    """Turn a (possibly edited or transferred) target track into photo-real frames with a trained model.

    For each output frame the conditioning images of the 11 frames ending at it are stacked (the first
    frames of the track repeat frame 0). EXRs are scene-linear (ACEScg) RGB plus the feathered head matte as
    the channel ``matte.A``, with metadata: source frame, checkpoint hash, the frame's parameters, ``dvp:synthetic = 1``.
    Frames are written atomically by ``writers`` threads (colour conversion and EXR compression overlap the next
    batch's network pass): a failure names the first failing frame in frame order and keeps every frame written
    before it; with ``writers=1`` frames are written one by one in order and nothing after the failure is written.

    Args:
        model_dir: a folder written by :func:`train_portrait`.
        track: the parameters to render (target identity).
        out_pattern: ``out/frame.####.exr`` (PNG/TIFF/... also work, sRGB).
        frames: frame numbers to write (default: every track frame).
        output_size: ``plate`` (default: the crop at the plate's resolution, placed in the plate: an EXR data
            window in a display window of the track's image size; other formats are padded to the plate),
            ``crop`` (the crop at the plate's resolution, not placed) or ``network`` (S x S, not placed).
        resume: skip frames already on disk that read back whole with the right size and channels (a
            truncated, empty or foreign file is rendered again); ``overwrite``: replace them; neither: refuse
            if any exist.
        allow_nan: write frames holding NaN or inf pixels (by default such a frame is an error naming it:
            a broken model or input must not leave plausible-looking files behind).
        writers: threads writing frames (default ``min(8, CPU count)``).
        keep_loaded: keep the loaded generator for the next call with the same model, device and batch
            (``dvp serve``: a preview frame then costs its 11 conditioning renders and one network pass).
        matte: ``layer`` (opaque RGB + ``matte.A``, default) or ``alpha`` (premultiplied RGBA) (io.output).
        frames_per_chunk: frames whose conditioning images are rendered and held at once (rounded up to whole batches;
            memory stays bounded on long shots: 256 frames at 512 are 600 MB).
    """
    import torch
    import torch.nn.functional as F

    from dvp_engine.core.frames import FrameSet
    from dvp_engine.io.output import MATTE_MODES, output_sequence, write_frame
    from dvp_engine.network import Renderer
    from dvp_engine.network.checkpoint import checkpoint_hash
    from dvp_engine.network.infer import resolve_device
    from dvp_engine.render.volume import gather_windows, window_indices

    if matte not in MATTE_MODES:
        raise ValueError(f"matte must be one of {', '.join(MATTE_MODES)}, got {matte!r}")
    if output_size not in OUTPUT_SIZES:
        raise ValueError(f"output_size must be one of {', '.join(OUTPUT_SIZES)}, got {output_size!r}")
    info = ModelInfo.load(model_dir)
    framing = info.framing
    side_ok = framing.x0 + framing.side <= track.width and framing.y0 + framing.side <= track.height
    if not side_ok:
        raise DvpError(
            f"the track's image size {track.width}x{track.height} does not hold the model's crop "
            f"({framing.side} px at {framing.x0},{framing.y0}); render tracks of the footage the model knows",
            path=model_dir,
        )
    if not (math.isfinite(feather) and 0 <= feather <= 64):
        raise DvpError(f"matte feather must be 0..64 pixels at 256, got {feather}")
    if Path(str(out_pattern)).suffix.lower() in (".jpg", ".jpeg"):
        raise DvpError(
            "JPEG cannot hold the head matte (RGB + matte.A): write .exr (scene-linear), .png or .tif",
            path=out_pattern,
        )
    wanted = [int(f) for f in (frames if frames is not None else track.frames)]
    for f in wanted:
        track.index_of(f)  # clear error for frames the track lacks
    fs = FrameSet.from_frames(wanted)
    seq = output_sequence(out_pattern, fs, overwrite=overwrite or resume)
    out_side = framing.size if output_size == "network" else framing.side
    placement = (
        (framing.x0, framing.y0, track.width, track.height)
        if output_size == "plate" and (framing.side, framing.side) != (track.width, track.height)
        else None
    )
    shape = (track.height, track.width, 4) if placement is not None else (out_side, out_side, 4)
    events: list[str] = []
    skipped = []
    if resume and not overwrite:
        for f in wanted:
            if seq.path(f).exists():
                problem = _check_frame(seq.path(f), shape)
                if problem is None:
                    skipped.append(f)
                else:
                    events.append(f"frame {f}: {seq.path(f)} {problem}: rendered again")
    skip = set(skipped)
    todo = [f for f in wanted if f not in skip]
    result = RenderResult([], skipped, seq.pattern(), events)
    if not todo:
        return result
    dev = resolve_device(device).type

    def conditioning(
        part: list[int],
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32], dict[int, int]]:
        """Conditioning images and feathered mattes of the frames ``part`` and the windows before them, and
        each track frame's row in them (``frames_per_chunk`` at a time, so memory stays bounded)."""
        rows = sorted({j for f in part for j in window_indices(track.index_of(f), info.nw)})
        cond, mask = conditioning_frames(
            track.select([int(track.frames[i]) for i in rows]), framing, device=dev, batch=batch
        )
        return (
            cond,
            matte_from_mask(mask, feather * framing.size / 256.0),
            {int(track.frames[i]): k for k, i in enumerate(rows)},
        )

    key = (str(Path(model_dir).resolve()), str(device), batch, _model_stamp(model_dir))
    renderer = _LOADED.get(key) if keep_loaded else None
    if renderer is None:
        renderer = Renderer(
            model_dir, device=device, batch=batch, expect={"size": framing.size, "nw": info.nw}
        )
        if keep_loaded:
            _LOADED.clear()  # one model at a time
            _LOADED[key] = renderer
    digest = checkpoint_hash(model_dir)

    def volumes(chunk: list[int], cond: npt.NDArray[np.uint8], pos: dict[int, int]) -> torch.Tensor:
        """``(B, 9 nw, S, S)`` on the renderer's device: the nw track frames ending at each frame of the chunk
        (before the track's start its first frame repeats), as rows of ``cond``."""
        windows = [
            [pos[int(track.frames[j])] for j in window_indices(track.index_of(f), info.nw)] for f in chunk
        ]
        return gather_windows(cond, windows, renderer.device)

    params = track.params()
    n_writers = max(1, writers if writers is not None else min(8, os.cpu_count() or 1))
    pending: collections.deque[tuple[int, Future[Path]]] = collections.deque()

    def finish(f: int, job: Future[Path]) -> None:
        try:
            job.result()
        except DvpError as exc:
            for _, other in pending:
                other.cancel()
            raise DvpError(
                f"writing failed ({exc}); frames before it are kept", path=seq.path(f), frame=f
            ) from exc
        result.written.append(f)
        if progress is not None:
            progress(f)

    def write(f: int, rgb_f: npt.NDArray[Any], alpha_f: npt.NDArray[Any]) -> Path:
        i = track.index_of(f)
        meta = {
            "dvp:synthetic": 1,
            "dvp:source_frame": f,
            "dvp:checkpoint_sha256": digest,
            "dvp:model": str(model_dir),
            "dvp:track": track_label,
            "dvp:parameters": [float(x) for x in params[i]],
            "dvp:parameter_layout": "FRAME_LAYOUT of dvp_engine.core.layout (radians, metres)",
            "dvp:crop": [framing.x0, framing.y0, framing.side],
        }
        return write_frame(
            seq.path(f),
            rgb_f,
            matte=alpha_f,
            metadata=meta,
            placement=placement,
            matte_as=matte,
            allow_nan=allow_nan,
        )

    per_chunk = max(1, -(-frames_per_chunk // batch)) * batch  # whole batches
    with ThreadPoolExecutor(n_writers, thread_name_prefix="dvp-write") as pool:
        try:
            for start in range(0, len(todo), batch):
                chunk = todo[start : start + batch]
                if start % per_chunk == 0:
                    cond, mattes, pos = conditioning(todo[start : start + per_chunk])
                out = renderer.render(
                    volumes(chunk, cond, pos), on_device=True
                )  # post-processing on the device
                rgb = (out.clamp(-1, 1) + 1) / 2
                alpha = torch.from_numpy(mattes[[pos[f] for f in chunk]])[:, None].to(out.device)
                if out_side != framing.size:
                    size2 = (out_side, out_side)
                    rgb = F.interpolate(rgb, size=size2, mode="bicubic", align_corners=False).clamp(0, 1)
                    alpha = F.interpolate(alpha, size=size2, mode="bilinear", align_corners=False)
                rgb_np = rgb.permute(0, 2, 3, 1).float().cpu().numpy()
                alpha_np = alpha[:, 0].float().cpu().numpy()
                for j, f in enumerate(chunk):
                    if n_writers == 1:  # in order, nothing after a failure
                        finish(f, _done(write, f, rgb_np[j], alpha_np[j]))
                        continue
                    pending.append((f, pool.submit(write, f, rgb_np[j], alpha_np[j])))
                    # collect finished frames in order; bound the frames held in memory
                    while pending and (pending[0][1].done() or len(pending) > 4 * n_writers):
                        finish(*pending.popleft())
            while pending:
                finish(*pending.popleft())
        finally:
            for _, other in pending:
                other.cancel()
    result.events = events + list(renderer.events)
    return result


def _check_frame(path: Path, shape: tuple[int, int, int]) -> str | None:
    """Why an existing output frame cannot count as done (unreadable, truncated, another size or channel
    count, non-finite pixels), or ``None`` when it reads back whole as an ``(H, W, C)`` = ``shape`` image."""
    from dvp_engine.io.images import read_image

    try:
        px, _ = read_image(path)
    except DvpError as exc:
        return f"is unreadable ({exc})"
    if px.shape != shape:
        return (
            f"has shape {px.shape[1]}x{px.shape[0]}x{px.shape[2]}, expected {shape[1]}x{shape[0]}x{shape[2]}"
        )
    if not np.isfinite(px).all():
        return "holds NaN or inf pixels"
    return None
