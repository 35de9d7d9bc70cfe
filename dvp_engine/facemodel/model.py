"""The parametric face model (paper section 4, eq. 1-2): geometry, reflectance, blinks and named controls.

A :class:`FaceModel` holds numpy float32 arrays (schema ``FaceModel.1``, see ``docs/face_model.md``)::

    v(alpha, delta, blink) = mean_shape + sum_k alpha_k id_basis[k] + sum_k delta_k expr_basis[k]
                             + sum_e blink_e blink_basis[e]                                   (eq. 1)
    r(beta)                = mean_albedo + sum_k beta_k albedo_basis[k]                      (eq. 2)

Geometry is in metres in the model frame (x = the actor's left = image right at identity pose, y down,
the nose toward -z, origin near the centre of the head); albedo is display-referred sRGB in [0, 1].
:meth:`FaceModel.vertices` and :meth:`FaceModel.albedo` take numpy arrays or torch tensors and return the
same kind (torch keeps autograd, device and floating dtype).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, overload

import numpy as np

from dvp_engine.core import controls
from dvp_engine.core.atomic import atomic_path
from dvp_engine.core.errors import InputError, SchemaError

SCHEMA = "FaceModel.1"
DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[1] / "data" / "face_model.npz"

#: float arrays every model file must have (name -> shape with symbolic sizes; N vertices, T triangles, ...).
FLOAT_FIELDS: dict[str, tuple[str | int, ...]] = {
    "mean_shape": ("N", 3),
    "id_basis": ("K_id", "N", 3),
    "id_std": ("K_id",),
    "expr_basis": ("K_expr", "N", 3),
    "expr_std": ("K_expr",),
    "blink_basis": (2, "N", 3),
    "mean_albedo": ("N", 3),
    "albedo_basis": ("K_alb", "N", 3),
    "albedo_std": ("K_alb",),
    "eyeball_left_center": (3,),
    "eyeball_right_center": (3,),
    "eyeball_radius": (),
    "iris_radius": (),
    "control_matrix": ("C", "K_expr"),
}
#: integer (vertex index) arrays every model file must have.
INT_FIELDS: dict[str, tuple[str | int, ...]] = {
    "faces": ("T", 3),
    "landmarks68": (68,),
    "eye_left_loop": ("L_l",),
    "eye_right_loop": ("L_r",),
}
#: optional arrays (validated when present).
OPTIONAL_FIELDS: dict[str, tuple[str | int, ...]] = {
    "uv": ("N", 2),
    "mouth_loop": ("L_m",),
    "mirror_map": ("N",),
}
_OPTIONAL_INT = {"mouth_loop", "mirror_map"}


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


@dataclass(eq=False)
class FaceModel:
    """A linear parametric face model (numpy float32 arrays; see the module docstring for eq. 1-2).

    Attributes:
        mean_shape: (N, 3) metres, model frame (x actor's left, y down, nose toward -z).
        faces: (T, 3) int32 triangles; (v1 - v0) x (v2 - v0) points out of the head.
        id_basis, expr_basis: (80, N, 3), (64, N, 3) metres per unit coefficient.
        blink_basis: (2, N, 3) eyelid closure displacement (left, right eye of the actor); blink = 1 closes.
        id_std, expr_std: (80,), (64,) standard deviation of each coefficient (for the regulariser).
        mean_albedo: (N, 3) sRGB [0, 1]; albedo_basis (80, N, 3) per unit coefficient; albedo_std (80,).
        landmarks68: (68,) int32 vertex of each dlib/iBUG-68 landmark.
        eye_left_loop, eye_right_loop: ordered vertex loops of the eye openings (outer corner, upper lid,
            inner corner, lower lid).
        eyeball_left_center, eyeball_right_center: (3,) model-frame eyeball centres (metres).
        eyeball_radius, iris_radius: metres.
        control_names: named expression controls (``face.jaw_open`` ...); control_matrix (C, 64) their
            directions d in expression space (see :meth:`control_to_expression`).
        uv: (N, 2) texture coordinates in [0, 1] or None; mouth_loop: lip-opening loop or None;
        mirror_map: (N,) index of each vertex's left/right mirror partner, or None.
        header: the file's JSON header (schema, units, provenance).
    """

    mean_shape: np.ndarray
    faces: np.ndarray
    id_basis: np.ndarray
    id_std: np.ndarray
    expr_basis: np.ndarray
    expr_std: np.ndarray
    blink_basis: np.ndarray
    mean_albedo: np.ndarray
    albedo_basis: np.ndarray
    albedo_std: np.ndarray
    landmarks68: np.ndarray
    eye_left_loop: np.ndarray
    eye_right_loop: np.ndarray
    eyeball_left_center: np.ndarray
    eyeball_right_center: np.ndarray
    eyeball_radius: float
    iris_radius: float
    control_names: list[str]
    control_matrix: np.ndarray
    uv: np.ndarray | None = None
    mouth_loop: np.ndarray | None = None
    mirror_map: np.ndarray | None = None
    header: dict[str, Any] = field(default_factory=dict)
    _torch_cache: dict[tuple[str, Any, Any], Any] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ sizes
    @property
    def n_vertices(self) -> int:
        """N, the number of vertices."""
        return int(self.mean_shape.shape[0])

    @property
    def n_id(self) -> int:
        return int(self.id_basis.shape[0])

    @property
    def n_expr(self) -> int:
        return int(self.expr_basis.shape[0])

    @property
    def n_albedo(self) -> int:
        return int(self.albedo_basis.shape[0])

    @property
    def n_controls(self) -> int:
        return len(self.control_names)

    # ------------------------------------------------------------------ evaluation
    @overload
    def vertices(
        self,
        identity: np.ndarray | None = ...,
        expression: np.ndarray | None = ...,
        blink: np.ndarray | None = ...,
    ) -> np.ndarray: ...
    @overload
    def vertices(self, identity: Any = ..., expression: Any = ..., blink: Any = ...) -> Any: ...

    def vertices(self, identity: Any = None, expression: Any = None, blink: Any = None) -> Any:
        """Model-frame vertex positions (paper eq. 1), batched.

        Args:
            identity: alpha, (B, 80) or (80,), or None (zeros).
            expression: delta, (B, 64) or (64,), or None.
            blink: (B, 2) or (2,) (left, right; 0 open .. 1 closed), or None.
        Returns:
            (B, N, 3) metres in the model frame; B = 1 for unbatched (or all-None) inputs. A numpy array
            (float32, or float64 if any input is float64) or, if any input is a torch tensor, a torch tensor
            on that tensor's device and dtype that keeps autograd.
        """
        terms = [(identity, "id_basis"), (expression, "expr_basis"), (blink, "blink_basis")]
        return self._evaluate("mean_shape", terms)

    def albedo(self, reflectance: Any = None) -> Any:
        """Per-vertex albedo (paper eq. 2), display-referred sRGB, batched.

        Args:
            reflectance: beta, (B, 80) or (80,), or None (the mean albedo).
        Returns:
            (B, N, 3), numpy or torch like the input (not clamped, so gradients flow; clamp to [0, 1] to display).
        """
        return self._evaluate("mean_albedo", [(reflectance, "albedo_basis")])

    def _evaluate(self, mean_name: str, terms: Sequence[tuple[Any, str]]) -> Any:
        present = [(c, name) for c, name in terms if c is not None]
        ref = next((c for c, _ in present if _is_torch(c)), None)
        if ref is not None:
            return self._evaluate_torch(mean_name, present, ref)
        arrays = []
        dtype: Any = np.float32
        for c, name in present:
            a = np.asarray(c)
            if not np.issubdtype(a.dtype, np.floating) and not np.issubdtype(a.dtype, np.integer):
                raise InputError(f"{name} coefficients must be numeric, got dtype {a.dtype}")
            if a.dtype == np.float64:
                dtype = np.float64
            arrays.append((a, name))
        batch = self._batch_size([(a.shape, name) for a, name in arrays])
        mean = getattr(self, mean_name).astype(dtype, copy=False)
        out = np.broadcast_to(mean, (batch, *mean.shape)).copy()
        flat = out.reshape(batch, -1)
        for a, name in arrays:
            basis = getattr(self, name)
            coeffs = a.astype(dtype, copy=False).reshape(-1, basis.shape[0])
            if not np.all(np.isfinite(coeffs)):
                raise InputError(f"{name} coefficients contain NaN or infinity")
            flat += coeffs @ basis.reshape(basis.shape[0], -1).astype(dtype, copy=False)
        return out

    def _batch_size(self, shapes: Sequence[tuple[tuple[int, ...], str]]) -> int:
        batch = 1
        for shape, name in shapes:
            k = getattr(self, name).shape[0]
            if len(shape) == 1 and shape[0] == k:
                b = 1
            elif len(shape) == 2 and shape[1] == k:
                b = shape[0]
            else:
                raise InputError(
                    f"{name} coefficients must have shape ({k},) or (B, {k}), got {tuple(shape)}"
                )
            if b != batch and batch != 1 and b != 1:
                raise InputError(f"batch sizes differ: {batch} and {b} ({name})")
            batch = max(batch, b)
        return batch

    def _evaluate_torch(self, mean_name: str, present: Sequence[tuple[Any, str]], ref: Any) -> Any:
        import torch

        dtype = ref.dtype if ref.dtype.is_floating_point else torch.float32
        device = ref.device
        tensors = [(torch.as_tensor(c, dtype=dtype, device=device), name) for c, name in present]
        batch = self._batch_size([(tuple(t.shape), name) for t, name in tensors])
        mean = self.torch_array(mean_name, device=device, dtype=dtype)
        out = mean.reshape(1, -1).expand(batch, -1)
        for t, name in tensors:
            basis = self.torch_array(name, device=device, dtype=dtype)
            out = out + t.reshape(-1, basis.shape[0]) @ basis.reshape(basis.shape[0], -1)
        return out.reshape(batch, *mean.shape)

    def torch_array(self, name: str, *, device: Any = None, dtype: Any = None) -> Any:
        """A model array as a torch tensor on ``device``/``dtype`` (cached; float arrays only)."""
        import torch

        dtype = torch.float32 if dtype is None else dtype
        key = (name, str(device), dtype)
        t = self._torch_cache.get(key)
        if t is None:
            t = torch.as_tensor(np.asarray(getattr(self, name)), dtype=dtype, device=device)
            self._torch_cache[key] = t
        return t

    # ------------------------------------------------------------------ named controls
    def control_index(self, name: str) -> int:
        """Index of a named control (``face.smile`` or ``smile``)."""
        full = name if name.startswith("face.") else f"face.{name}"
        try:
            return self.control_names.index(full)
        except ValueError:
            raise InputError(
                f"unknown named control {name!r}; known: {', '.join(self.control_names)}"
            ) from None

    def control_to_expression(self, values: Mapping[str, float] | Any) -> Any:
        """Expression coefficients for named control values: ``delta = sum_c value_c * d_c``.

        Args:
            values: ``{"face.smile": 0.5, ...}`` (returns (64,) numpy), or an array/tensor (C,) or (B, C) in
                :attr:`control_names` order (returns (64,) or (B, 64), same kind as the input).
        """
        if isinstance(values, Mapping):
            v = np.zeros(self.n_controls, dtype=np.float64)
            for name, val in values.items():
                v[self.control_index(name)] = float(val)
            return (v @ self.control_matrix.astype(np.float64)).astype(np.float32)
        if _is_torch(values):
            m = self.torch_array("control_matrix", device=values.device, dtype=values.dtype)
            return values @ m
        a = np.asarray(values)
        if a.shape[-1] != self.n_controls:
            raise InputError(f"control values must have {self.n_controls} entries, got shape {a.shape}")
        return a @ self.control_matrix.astype(a.dtype if a.dtype == np.float64 else np.float32)

    def expression_to_controls(self, expression: Any) -> Any:
        """Named control values of expression coefficients: least-squares coordinates in all directions.

        ``c = argmin |delta - c @ D|`` (:mod:`dvp_engine.core.controls`, the definition every host and curve
        file uses), so values set with :meth:`control_to_expression` read back exactly, each control on its
        own. Args: (64,) or (B, 64) numpy/torch; returns (C,) or (B, C), same kind.
        """
        if _is_torch(expression):
            import torch

            m = self.torch_array("control_matrix", device=expression.device, dtype=expression.dtype)
            e = expression.reshape(-1, expression.shape[-1])
            sol = torch.linalg.pinv(m.T) @ e.T
            return sol.T.reshape(*expression.shape[:-1], m.shape[0])
        a = np.asarray(expression)
        if a.shape[-1] != self.n_expr:
            raise InputError(f"expression must have {self.n_expr} entries, got shape {a.shape}")
        out = controls.coordinates(a, self.control_matrix)
        return out.astype(a.dtype if a.dtype == np.float64 else np.float32)

    def control_directions(self) -> dict[str, list[float]]:
        """``{name: d (64 floats)}``: what a track copies into its metadata."""
        return {n: [float(x) for x in self.control_matrix[i]] for i, n in enumerate(self.control_names)}

    # ------------------------------------------------------------------ file I/O
    def arrays(self) -> dict[str, np.ndarray]:
        """The model's arrays as they are stored (without the header)."""
        out: dict[str, np.ndarray] = {}
        for name in FLOAT_FIELDS:
            out[name] = np.asarray(getattr(self, name), dtype=np.float32)
        for name in INT_FIELDS:
            out[name] = np.asarray(getattr(self, name), dtype=np.int32)
        for name in OPTIONAL_FIELDS:
            val = getattr(self, name)
            if val is not None:
                out[name] = np.asarray(val, dtype=np.int32 if name in _OPTIONAL_INT else np.float32)
        return out

    def save(self, path: str | Path) -> None:
        """Write the model as ``.npz`` (schema ``FaceModel.1``), atomically."""
        header = dict(self.header)
        header["schema"] = SCHEMA
        header["control_names"] = list(self.control_names)
        arrays = self.arrays()
        arrays["header"] = np.frombuffer(json.dumps(header, sort_keys=True).encode("utf-8"), dtype=np.uint8)
        write_npz(path, arrays)

    @classmethod
    def load(cls, path: str | Path) -> FaceModel:
        """Read and validate a ``FaceModel.1`` ``.npz`` (numpy only, ``allow_pickle=False``).

        Raises:
            InputError: the file is missing or not a readable npz.
            SchemaError: wrong or missing schema, missing arrays, inconsistent shapes, out-of-range vertex
                indices, NaN or infinite values.
        """
        p = Path(path)
        if not p.is_file():
            raise InputError("face model file not found", path=p)
        try:
            with np.load(p, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except Exception as exc:  # zipfile.BadZipFile, ValueError (pickled object arrays), OSError, EOFError
            raise InputError(f"not a readable .npz face model ({exc})", path=p) from exc
        return cls.from_arrays(data, path=p)

    @classmethod
    def from_arrays(cls, data: Mapping[str, np.ndarray], *, path: str | Path | None = None) -> FaceModel:
        """Build and validate a model from a mapping of arrays laid out as in the file (``header`` included)."""
        if "header" not in data:
            raise SchemaError("not a FaceModel file: no 'header' array (JSON with \"schema\")", path=path)
        try:
            header = json.loads(np.asarray(data["header"], dtype=np.uint8).tobytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
            raise SchemaError(f"unreadable FaceModel header ({exc})", path=path) from exc
        if not isinstance(header, dict):
            raise SchemaError("FaceModel header must be a JSON object", path=path)
        schema = header.get("schema")
        if schema != SCHEMA:
            raise SchemaError(f"unsupported face model schema {schema!r}: this dvp reads {SCHEMA}", path=path)
        sizes: dict[str, int] = {}
        arrays: dict[str, np.ndarray] = {}
        spec = {**FLOAT_FIELDS, **INT_FIELDS}
        for name, shape in {**spec, **OPTIONAL_FIELDS}.items():
            if name not in data:
                if name in spec:
                    raise SchemaError(f"face model lacks the array {name!r}", path=path)
                continue
            a = np.asarray(data[name])
            if a.ndim != len(shape):
                raise SchemaError(
                    f"{name} must have {len(shape)} dimensions {shape}, got {a.shape}", path=path
                )
            for dim, want in zip(a.shape, shape, strict=True):
                if isinstance(want, int):
                    if dim != want:
                        raise SchemaError(f"{name} must have shape {shape}, got {a.shape}", path=path)
                elif sizes.setdefault(want, dim) != dim:
                    raise SchemaError(
                        f"inconsistent shapes: {name} has {want} = {dim}, another array has {sizes[want]}",
                        path=path,
                    )
            if name in INT_FIELDS or name in _OPTIONAL_INT:
                if not np.issubdtype(a.dtype, np.integer):
                    raise SchemaError(f"{name} must be an integer array, got {a.dtype}", path=path)
                a = a.astype(np.int32)
            else:
                if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
                    raise SchemaError(f"{name} must be a float array, got {a.dtype}", path=path)
                a = a.astype(np.float32)
                if not np.all(np.isfinite(a)):
                    raise SchemaError(f"{name} contains NaN or infinite values", path=path)
            arrays[name] = a
        n = sizes["N"]
        for name in ("faces", "landmarks68", "eye_left_loop", "eye_right_loop", "mouth_loop", "mirror_map"):
            if name in arrays and arrays[name].size and (arrays[name].min() < 0 or arrays[name].max() >= n):
                raise SchemaError(f"{name} has vertex indices outside 0..{n - 1}", path=path)
        if np.any(arrays["id_std"] < 0) or np.any(arrays["expr_std"] < 0) or np.any(arrays["albedo_std"] < 0):
            raise SchemaError("standard deviations must be >= 0", path=path)
        names = header.get("control_names", [])
        if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
            raise SchemaError("header 'control_names' must be a list of strings", path=path)
        if len(names) != arrays["control_matrix"].shape[0]:
            raise SchemaError(
                f"{len(names)} control_names but control_matrix has {arrays['control_matrix'].shape[0]} rows",
                path=path,
            )
        if len(set(names)) != len(names):
            raise SchemaError("control_names has duplicates", path=path)
        return cls(
            mean_shape=arrays["mean_shape"],
            faces=arrays["faces"],
            id_basis=arrays["id_basis"],
            id_std=arrays["id_std"],
            expr_basis=arrays["expr_basis"],
            expr_std=arrays["expr_std"],
            blink_basis=arrays["blink_basis"],
            mean_albedo=arrays["mean_albedo"],
            albedo_basis=arrays["albedo_basis"],
            albedo_std=arrays["albedo_std"],
            landmarks68=arrays["landmarks68"],
            eye_left_loop=arrays["eye_left_loop"],
            eye_right_loop=arrays["eye_right_loop"],
            eyeball_left_center=arrays["eyeball_left_center"],
            eyeball_right_center=arrays["eyeball_right_center"],
            eyeball_radius=float(arrays["eyeball_radius"]),
            iris_radius=float(arrays["iris_radius"]),
            control_names=list(names),
            control_matrix=arrays["control_matrix"],
            uv=arrays.get("uv"),
            mouth_loop=arrays.get("mouth_loop"),
            mirror_map=arrays.get("mirror_map"),
            header=header,
        )

    # ------------------------------------------------------------------ misc
    @property
    def provenance(self) -> dict[str, Any]:
        """Build provenance from the header (clips, frame counts, versions, input hash); {} if none."""
        prov = self.header.get("provenance", {})
        return prov if isinstance(prov, dict) else {}

    def fill_loop(self, loop: Sequence[int] | np.ndarray) -> np.ndarray:
        """(len(loop) - 2, 3) int32 triangles closing the hole bounded by ``loop`` (see :func:`fill_loop`)."""
        return fill_loop(self.mean_shape, loop)

    def closed_faces(self, *, eyes: bool = True, mouth: bool = True) -> np.ndarray:
        """:attr:`faces` plus triangles filling the eye openings and/or the lip opening: (T', 3) int32."""
        parts = [self.faces]
        if eyes:
            parts += [self.fill_loop(self.eye_left_loop), self.fill_loop(self.eye_right_loop)]
        if mouth:
            if self.mouth_loop is None:
                raise InputError("this face model has no mouth_loop")
            parts.append(self.fill_loop(self.mouth_loop))
        return np.concatenate(parts).astype(np.int32)

    def summary(self) -> str:
        """A few lines for ``dvp info``: sizes, controls and build provenance."""
        prov = self.provenance
        clips = prov.get("clips", [])
        lines = [
            f"face model {self.header.get('name', '?')} (schema {SCHEMA})",
            f"  {self.n_vertices} vertices, {len(self.faces)} triangles; identity {self.n_id}, "
            f"expression {self.n_expr}, albedo {self.n_albedo} coefficients; blink 2",
            f"  named controls ({self.n_controls}): {', '.join(self.control_names)}",
        ]
        if clips:
            used = sum(int(c.get("frames_used", 0)) for c in clips if isinstance(c, dict))
            lines.append(f"  built from {len(clips)} clips, {used} frames ({prov.get('builder', '?')})")
        return "\n".join(lines)

    def mouth_region(self) -> np.ndarray:
        """(N,) bool: vertices of the lower face (below the nose: lips, chin, jaw), from the dlib-68 table."""
        nose_bottom = float(self.mean_shape[self.landmarks68[33], 1])  # iBUG 33: subnasale
        return np.asarray(self.mean_shape[:, 1] > nose_bottom, dtype=bool)

    def mouth_weights(self) -> np.ndarray:
        """(64,) in [0, 1]: the share of each expression component's displacement energy in the mouth region.

        Used by the ``dubbing`` transfer mode (take the mouth from the source, the rest from the target).
        """
        region = self.mouth_region()
        energy = np.sum(self.expr_basis.astype(np.float64) ** 2, axis=2)  # (64, N)
        total = np.maximum(energy.sum(axis=1), 1e-30)
        return np.asarray(energy[:, region].sum(axis=1) / total, dtype=np.float32)

    def eyelid_gap(self, vertices: np.ndarray, eye: str) -> np.ndarray:
        """Mean distance (metres) between the upper and lower lid of ``eye`` ('left'/'right'): (B,) for (B, N, 3).

        Upper and lower lid vertices are paired by the loop's order (outer corner, upper lid, inner corner,
        lower lid back to the outer corner).
        """
        if eye not in ("left", "right"):
            raise InputError(f"eye must be 'left' or 'right', got {eye!r}")
        loop = self.eye_left_loop if eye == "left" else self.eye_right_loop
        n = len(loop)
        inner = int(np.argmin(np.abs(self.mean_shape[loop, 0])))  # the corner nearest the nose
        upper = loop[1:inner]
        lower = loop[n - 1 : inner : -1]
        k = min(len(upper), len(lower))
        v = np.asarray(vertices)
        gap = np.linalg.norm(v[..., upper[:k], :] - v[..., lower[:k], :], axis=-1).mean(axis=-1)
        return np.asarray(gap)


def fill_loop(mean_shape: np.ndarray, loop: Sequence[int] | np.ndarray) -> np.ndarray:
    """(len(loop) - 2, 3) int32 triangles closing a hole bounded by ``loop`` (no new vertices).

    Ear clipping in the front view (x, y) of ``mean_shape`` (N, 3); triangles wind outward (toward -z) like
    :attr:`FaceModel.faces`. Used to close the eye and mouth openings (for example a closed-mouth render).
    """
    idx = [int(i) for i in loop]
    pts = mean_shape[idx, :2].astype(np.float64)
    area2 = float(np.sum(pts[:, 0] * np.roll(pts[:, 1], -1) - np.roll(pts[:, 0], -1) * pts[:, 1]))
    sign = 1.0 if area2 > 0 else -1.0
    remaining = list(range(len(idx)))
    tris: list[tuple[int, int, int]] = []

    def cross(o: int, a: int, b: int) -> float:
        return float(
            (pts[a, 0] - pts[o, 0]) * (pts[b, 1] - pts[o, 1])
            - (pts[a, 1] - pts[o, 1]) * (pts[b, 0] - pts[o, 0])
        )

    def inside(p: int, a: int, b: int, c: int) -> bool:
        return cross(a, b, p) * sign > 0 and cross(b, c, p) * sign > 0 and cross(c, a, p) * sign > 0

    while len(remaining) > 3:
        m = len(remaining)
        for k in range(m):
            a, b, c = remaining[k - 1], remaining[k], remaining[(k + 1) % m]
            if cross(a, b, c) * sign <= 0:
                continue  # reflex corner
            if any(inside(p, a, b, c) for p in remaining if p not in (a, b, c)):
                continue
            tris.append((a, b, c))
            remaining.pop(k)
            break
        else:  # degenerate polygon: fall back to a fan
            tris.extend((remaining[0], remaining[j], remaining[j + 1]) for j in range(1, len(remaining) - 1))
            remaining = []
            break
    if len(remaining) == 3:
        tris.append((remaining[0], remaining[1], remaining[2]))
    out = np.asarray([[idx[a], idx[b], idx[c]] for a, b, c in tris], dtype=np.int32).reshape(-1, 3)
    v = mean_shape.astype(np.float64)
    nz = np.cross(v[out[:, 1]] - v[out[:, 0]], v[out[:, 2]] - v[out[:, 0]])[:, 2]
    flip = nz > 0
    out[flip] = out[flip][:, [0, 2, 1]]
    return out


def write_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write a compressed ``.npz`` reproducibly (sorted members, fixed timestamps) and atomically.

    ``np.savez_compressed`` stamps each member with the current time, so two writes of the same arrays differ;
    this writer gives byte-identical files for identical arrays. Readable by ``np.load(allow_pickle=False)``.
    """
    with atomic_path(path) as tmp:
        _write_zip(tmp, arrays, path)


def _write_zip(tmp: Path, arrays: Mapping[str, np.ndarray], path: str | Path) -> None:
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            a = np.asarray(arrays[name])
            if a.dtype.hasobject:
                raise InputError(f"array {name!r} has dtype object; not storable without pickle", path=path)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(a, order="C"), allow_pickle=False)
            zf.writestr(info, buf.getvalue(), compresslevel=6)


def _default_path() -> Path:
    return DEFAULT_MODEL_PATH


@lru_cache(maxsize=1)
def load_default_model() -> FaceModel:
    """The face model shipped in the package (``dvp_engine/data/face_model.npz``), loaded once and cached.

    Callers must not modify its arrays in place.
    """
    return FaceModel.load(_default_path())
