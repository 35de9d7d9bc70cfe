"""Checkpoints: safetensors weights and optimizer states plus a small JSON training state, written atomically.

Layout of a model folder (``dvp train -o model/``)::

    model/
      latest.json                     {"format": "dvp.latest.1", "checkpoint": "checkpoints/iter_00031000", ...}
      checkpoints/iter_00031000/
        generator.safetensors         G weights + BN buffers; metadata "dvp.arch" = generator signature (JSON)
        discriminator.safetensors     D weights + buffers; metadata "dvp.arch" = discriminator signature
        optimizer_g.safetensors       Adam state of G flattened to tensors "state.<param>.<key>";
        optimizer_d.safetensors       metadata "dvp.optim" = JSON of param_groups and non-tensor state
        state.json                    iteration, seed, config, signatures, RNG states, sha256 of each file
      log.jsonl  previews/

A checkpoint folder is first written as a hidden temporary folder and then renamed into place, and
``latest.json`` is replaced atomically afterwards, so an interrupted write never leaves a half checkpoint
that ``latest.json`` points to. Nothing is ever unpickled: weights are safetensors, the rest is JSON.
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from torch import nn

from dvp_engine.core.atomic import sha256_file, write_text_atomic
from dvp_engine.core.errors import DvpError, SchemaError

from .arch import AnyGenerator, arch_of_signature, build_generator, config_from_signature
from .fast_generator import FAST_ARCH_VERSION
from .generator import ARCH_VERSION

__all__ = [
    "ArchitectureMismatchError",
    "CheckpointError",
    "checkpoint_hash",
    "flatten_optimizer_state",
    "get_rng_state",
    "latest_checkpoint",
    "load_generator",
    "load_module_state",
    "load_optimizer_state",
    "read_safetensors",
    "resolve_generator_file",
    "save_module",
    "save_optimizer",
    "set_rng_state",
    "unflatten_optimizer_state",
    "write_checkpoint",
]

GENERATOR_FILE = "generator.safetensors"
DISCRIMINATOR_FILE = "discriminator.safetensors"
OPTIM_G_FILE = "optimizer_g.safetensors"
OPTIM_D_FILE = "optimizer_d.safetensors"
STATE_FILE = "state.json"
LATEST_FILE = "latest.json"
STATE_FORMAT = "dvp.train_state.1"


def _dir_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


_DIR_MODE = _dir_mode()
"""The mode a new folder gets (0o777 less the process's umask, read at import)."""


class CheckpointError(DvpError):
    """A checkpoint file is missing, truncated, corrupt or inconsistent (the message names the file)."""


class ArchitectureMismatchError(CheckpointError):
    """A checkpoint was made for another architecture (size, Nw, channels); the message names the fields."""


# ----------------------------------------------------------------------------------------------- safetensors


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read all tensors (on the CPU) and the string metadata of a safetensors file.

    Raises:
        CheckpointError: missing, truncated or corrupt file (naming it).
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError("checkpoint file not found", path=p)
    try:
        with safe_open(str(p), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except Exception as exc:  # safetensors raises its own SafetensorError / OSError subclasses
        raise CheckpointError(f"truncated or corrupt safetensors file ({exc})", path=p) from exc
    return tensors, meta


_ST_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def safetensors_bytes(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> bytes:
    """The safetensors encoding of ``tensors`` with string metadata ``meta``, byte for byte deterministic.

    The header (8-byte little-endian length, then JSON padded with spaces to a multiple of 8) lists tensors and
    metadata keys in sorted order, and the data follows in the same order, so identical weights and metadata
    always give identical files (and the same ``dvp:checkpoint_sha256``); the safetensors library's own writer
    orders metadata keys differently from run to run.
    """
    header: dict[str, Any] = {}
    blobs: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        if t.dtype not in _ST_DTYPES:
            raise TypeError(f"tensor {name!r}: dtype {t.dtype} has no safetensors code")
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {
            "dtype": _ST_DTYPES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    if meta:
        header["__metadata__"] = {str(k): str(v) for k, v in sorted(meta.items())}
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(blobs)


def _save_safetensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    """Save to ``path`` (the caller arranges atomicity) with an ordinary file's mode (0666 less the umask,
    readable by render nodes running as another user), deterministically (:func:`safetensors_bytes`)."""
    data = safetensors_bytes(tensors, meta)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def save_module(
    path: Path, module: nn.Module, signature: dict[str, Any], extra: dict[str, str] | None = None
) -> None:
    """Save ``module.state_dict()`` (parameters and buffers) with ``signature`` in the metadata as ``dvp.arch``."""
    meta = {"dvp.arch": json.dumps(signature, sort_keys=True), **(extra or {})}
    _save_safetensors(path, dict(module.state_dict()), meta)


def load_module_state(
    module: nn.Module, path: str | Path, tensors: dict[str, torch.Tensor] | None = None
) -> None:
    """Load a state dict saved by :func:`save_module` into ``module`` exactly (strict keys and shapes).

    Raises:
        CheckpointError: missing or unexpected tensors, or a tensor of another shape (naming them).
    """
    p = Path(path)
    if tensors is None:
        tensors, _ = read_safetensors(p)
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise ArchitectureMismatchError(
            f"tensors do not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}", path=p
        )
    for k, v in own.items():
        if tuple(v.shape) != tuple(tensors[k].shape):
            raise ArchitectureMismatchError(
                f"tensor {k!r} has shape {tuple(tensors[k].shape)} in the checkpoint, the model needs {tuple(v.shape)}",
                path=p,
            )
    module.load_state_dict(tensors, strict=True)


# ------------------------------------------------------------------------------------------------ optimizers


def _encode(v: Any) -> Any:
    if isinstance(v, tuple):
        return {"__tuple__": [_encode(x) for x in v]}
    if isinstance(v, list):
        return [_encode(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _encode(x) for k, x in v.items()}
    if isinstance(v, float | int | str | bool) or v is None:
        return v
    raise TypeError(f"cannot store optimizer value of type {type(v).__name__} in JSON")


def _decode(v: Any) -> Any:
    if isinstance(v, dict):
        if set(v) == {"__tuple__"}:
            return tuple(_decode(x) for x in v["__tuple__"])
        return {k: _decode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_decode(x) for x in v]
    return v


def flatten_optimizer_state(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer ``state_dict()`` into tensors ``state.<param_id>.<key>`` and a JSON-able rest.

    The rest holds ``param_groups`` (tuples tagged so they come back as tuples) and non-tensor state values.
    Inverse: :func:`unflatten_optimizer_state`.
    """
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"state.{pid}.{key}"] = val
            else:
                scalars.setdefault(str(pid), {})[key] = _encode(val)
    rest = {
        "param_groups": _encode(sd["param_groups"]),
        "scalars": scalars,
        "state_ids": [str(k) for k in sd["state"]],
    }
    return tensors, rest


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    """Rebuild an optimizer ``state_dict()`` from :func:`flatten_optimizer_state`'s output."""
    state: dict[int, dict[str, Any]] = {int(pid): {} for pid in rest.get("state_ids", [])}
    for name, val in tensors.items():
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = val
    for pid, vals in rest.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(_decode(vals))
    return {"state": state, "param_groups": _decode(rest["param_groups"])}


def save_optimizer(path: Path, opt: torch.optim.Optimizer) -> None:
    """Save an optimizer state to safetensors (tensors) with the non-tensor parts as JSON metadata."""
    tensors, rest = flatten_optimizer_state(opt.state_dict())
    _save_safetensors(path, tensors, {"dvp.optim": json.dumps(rest, sort_keys=True)})


def load_optimizer_state(opt: torch.optim.Optimizer, path: str | Path) -> None:
    """Load a state written by :func:`save_optimizer` into ``opt`` (whose params must match)."""
    p = Path(path)
    tensors, meta = read_safetensors(p)
    if "dvp.optim" not in meta:
        raise CheckpointError("not a dvp optimizer state (no dvp.optim metadata)", path=p)
    try:
        opt.load_state_dict(unflatten_optimizer_state(tensors, json.loads(meta["dvp.optim"])))
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"optimizer state does not match the model ({exc})", path=p) from exc


# ----------------------------------------------------------------------------------------------------- RNG


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.numpy().tobytes()).decode("ascii")


def _unb64(s: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8).clone()


def get_rng_state() -> dict[str, Any]:
    """torch (CPU and every CUDA device), numpy's global and Python's ``random`` states as JSON-able values."""
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # noqa: NPY002
    py = random.getstate()
    out: dict[str, Any] = {
        "torch_cpu": _b64(torch.get_rng_state()),
        "numpy": [str(name), [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
        "python": [py[0], list(py[1]), py[2]],
    }
    if torch.cuda.is_available():
        out["torch_cuda"] = [_b64(s.cpu()) for s in torch.cuda.get_rng_state_all()]
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore states saved by :func:`get_rng_state`."""
    torch.set_rng_state(_unb64(state["torch_cpu"]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "torch_cuda" in state and torch.cuda.is_available():
        cuda = [_unb64(s) for s in state["torch_cuda"]]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


# ------------------------------------------------------------------------------------------- checkpoint dirs


def checkpoint_hash(path: str | Path) -> str:
    """sha256 (hex) of the generator weights a model path resolves to; for EXR metadata."""
    return sha256_file(resolve_generator_file(path))


def write_checkpoint(
    model_dir: str | Path,
    iteration: int,
    modules: dict[str, tuple[nn.Module, dict[str, Any]]],
    optimizers: dict[str, torch.optim.Optimizer],
    state: dict[str, Any],
    keep: int = 3,
) -> Path:
    """Write ``model_dir/checkpoints/iter_<N>/`` atomically and point ``latest.json`` at it.

    Args:
        modules: file stem -> (module, architecture signature), e.g. ``{"generator": (G, sig)}``.
        optimizers: file stem -> optimizer, e.g. ``{"optimizer_g": opt}``.
        state: JSON-able training state (iteration, config, RNG, ...); file hashes are added.
        keep: number of most recent checkpoints to keep (older ones are removed; 0 keeps all).
    Returns:
        The checkpoint folder.
    """
    root = Path(model_dir)
    ck_root = root / "checkpoints"
    ck_root.mkdir(parents=True, exist_ok=True)
    name = f"iter_{iteration:08d}"
    final = ck_root / name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=ck_root))
    # mkdtemp makes a private (0700) folder and the rename keeps its mode: give it an ordinary folder's mode
    os.chmod(tmp, _DIR_MODE)
    try:
        hashes: dict[str, str] = {}
        for stem, (mod, sig) in modules.items():
            f = tmp / f"{stem}.safetensors"
            save_module(f, mod, sig, {"dvp.iteration": str(iteration)})
            hashes[f.name] = sha256_file(f)
        for stem, opt in optimizers.items():
            f = tmp / f"{stem}.safetensors"
            save_optimizer(f, opt)
            hashes[f.name] = sha256_file(f)
        full = {"format": STATE_FORMAT, "iteration": iteration, **state, "files": hashes}
        (tmp / STATE_FILE).write_text(json.dumps(full, indent=1, sort_keys=True), encoding="utf-8")
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=ck_root))
            os.replace(final, trash / name)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_text_atomic(
        root / LATEST_FILE,
        json.dumps({"format": "dvp.latest.1", "checkpoint": f"checkpoints/{name}", "iteration": iteration}),
    )
    if keep > 0:
        done = sorted(p for p in ck_root.iterdir() if p.is_dir() and p.name.startswith("iter_"))
        for old in done[:-keep]:
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(model_dir: str | Path) -> Path:
    """The checkpoint folder ``model_dir/latest.json`` points to.

    Raises:
        CheckpointError: no ``latest.json``, it points to a missing folder, or to one outside
            ``model_dir/checkpoints/`` (an absolute path, ``..`` or a symbolic link leading elsewhere).
    """
    root = Path(model_dir)
    f = root / LATEST_FILE
    if not f.is_file():
        raise CheckpointError(
            "no latest.json: not a dvp model folder, or no checkpoint written yet", path=root
        )
    try:
        rel = json.loads(f.read_text(encoding="utf-8"))["checkpoint"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"unreadable latest.json ({exc})", path=f) from exc
    ck = root / str(rel)
    inside = root.resolve() / "checkpoints"
    if not isinstance(rel, str) or Path(rel).is_absolute() or not ck.resolve().is_relative_to(inside):
        raise CheckpointError(
            f"latest.json points outside the model folder's checkpoints/ ({rel!r}); refusing to follow it",
            path=f,
        )
    if not (ck / STATE_FILE).is_file():
        raise CheckpointError("latest.json points to a missing or incomplete checkpoint", path=ck)
    return ck


def read_state(checkpoint: str | Path) -> dict[str, Any]:
    """Read and check ``state.json`` of a checkpoint folder."""
    f = Path(checkpoint) / STATE_FILE
    try:
        st: dict[str, Any] = json.loads(f.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CheckpointError("training state not found", path=f) from exc
    except ValueError as exc:
        raise CheckpointError(f"truncated or corrupt training state ({exc})", path=f) from exc
    if st.get("format") != STATE_FORMAT:
        raise SchemaError(
            f"unknown training state format {st.get('format')!r}, expected {STATE_FORMAT}", path=f
        )
    return st


def verify_files(checkpoint: str | Path, state: dict[str, Any]) -> None:
    """Check every file's sha256 against ``state["files"]`` (catches truncation and bit rot)."""
    ck = Path(checkpoint)
    for name, digest in state.get("files", {}).items():
        f = ck / name
        if not f.is_file():
            raise CheckpointError("checkpoint file missing", path=f)
        if sha256_file(f) != digest:
            raise CheckpointError(
                "checkpoint file is truncated or corrupt (sha256 differs from state.json)", path=f
            )


def resolve_generator_file(path: str | Path) -> Path:
    """A model folder (uses ``latest.json``), a checkpoint folder or a ``.safetensors`` file -> the G file."""
    p = Path(path)
    if p.is_dir():
        if (p / LATEST_FILE).is_file():
            p = latest_checkpoint(p)
        p = p / GENERATOR_FILE
    if not p.is_file():
        raise CheckpointError("generator weights not found", path=p)
    return p


def compare_signature(
    sig: dict[str, Any], expect: dict[str, Any], path: Path, what: str = "architecture"
) -> None:
    """Raise :class:`ArchitectureMismatchError` naming every field of ``expect`` that a checkpoint's
    signature ``sig`` has otherwise (``what``: how the message names the thing compared)."""
    diffs = [
        f"{k} is {sig.get(k)!r} in the checkpoint, {v!r} expected"
        for k, v in expect.items()
        if sig.get(k) != v
    ]
    if diffs:
        raise ArchitectureMismatchError(f"{what} mismatch: " + "; ".join(diffs), path=path)


def load_generator(
    path: str | Path,
    *,
    expect: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
) -> AnyGenerator:
    """Build the generator a checkpoint holds (either architecture, see :mod:`.arch`) and load its weights
    (eval mode).

    Args:
        path: model folder, checkpoint folder or ``generator.safetensors``.
        expect: architecture fields the caller needs, e.g. ``{"size": 256, "nw": 11}`` or ``{"arch": "fast"}``;
            any difference raises.
        device: where to put the model.
    Raises:
        CheckpointError: missing/truncated/corrupt file (naming it).
        ArchitectureMismatchError: the checkpoint's signature differs from ``expect``, from this code's
            architecture version, or its tensors do not fit (naming the fields).
    """
    f = resolve_generator_file(path)
    tensors, meta = read_safetensors(f)
    if "dvp.arch" not in meta:
        raise CheckpointError("not a dvp generator (no dvp.arch metadata)", path=f)
    try:
        sig = json.loads(meta["dvp.arch"])
        arch = arch_of_signature(sig)
    except ValueError as exc:
        raise ArchitectureMismatchError(str(exc), path=f) from exc
    try:
        cfg = config_from_signature(sig)
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"unreadable architecture signature ({exc})", path=f) from exc
    version = ARCH_VERSION if arch == "paper" else FAST_ARCH_VERSION
    compare_signature(sig, {"arch_version": version}, f)
    compare_signature(sig, cfg.signature(), f)  # derived fields (channels, levels) must agree with this code
    if expect:
        expect = dict(expect)
        want_arch = expect.pop("arch", None)
        if want_arch is not None and want_arch != arch:
            raise ArchitectureMismatchError(
                f"the checkpoint holds the {arch!r} architecture, {want_arch!r} was asked for", path=f
            )
        compare_signature(sig, expect, f)
    g = build_generator(cfg)
    load_module_state(g, f, tensors)
    return g.to(device).eval()
