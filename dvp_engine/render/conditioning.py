"""The synthetic conditioning images of the paper (section 5, Fig. 3) and their space-time volumes.

Per frame, three RGB images of the target's face model under the frame's parameters, on a black background,
display-referred sRGB in [0, 1] (``(B, 9, H, W)``, channels in this order):

1. **colour** (channels 0-2): the model with the target's albedo ``r(beta)`` under the frame's SH light
   (paper eq. 3, per-vertex shading interpolated over the triangles), clamped to [0, 1]. The eye and mouth
   openings of the mesh stay black.
2. **correspondence** (channels 3-5): every vertex carries a constant unique colour, its position in the *mean*
   shape normalised per axis to [0.1, 1] (x -> R, y -> G, z -> B), interpolated over the triangles: the same
   surface point has the same colour in every frame, whatever the identity, expression or pose.
3. **eye gaze** (channels 6-8): the eye openings (the polygons bounded by ``eye_left_loop`` / ``eye_right_loop``,
   which close when the lids close) in white, and in each the iris as a blue ``(0, 0, 1)`` disc: the circle of
   radius ``iris_radius`` centred on the pupil ``eyeball_centre + eyeball_radius * d(gaze)`` and facing along
   ``d``, rotated and translated with the head and projected exactly (an ellipse when seen obliquely), clipped
   to the visible eye opening.

All three share one z-buffer pass over the face mesh plus the triangulated eye openings, so a turned head hides
its far eye correctly. :func:`build_volumes` stacks ``Nw`` frames into the network's input volume
``(B, 9 * Nw, H, W)`` in [-1, 1], oldest first and the current frame last (see ``dvp_engine.network.data``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from dvp_engine.core import layout
from dvp_engine.core.track import FaceTrack
from dvp_engine.facemodel import FaceModel

from .camera import Camera, RenderInputError, apply_pose, euler_to_matrix, gaze_direction
from .rasterize import Rasterization, rasterize_pixels
from .shading import sh_shade, vertex_normals
from .volume import gather_windows, window_indices

__all__ = [
    "CHANNELS_PER_FRAME",
    "ConditioningRenderer",
    "ConditioningResult",
    "build_volumes",
    "correspondence_codes",
    "eye_fill_triangles",
    "eyeball_follows_face",
    "render_conditioning",
]

CHANNELS_PER_FRAME = 9
WHITE = (1.0, 1.0, 1.0)
BLUE = (0.0, 0.0, 1.0)
_NEAR = 1e-2


def eye_fill_triangles(loop: Sequence[int] | np.ndarray, mean_shape: np.ndarray) -> np.ndarray:
    """Triangulate an eye-opening loop between its upper and lower lid ("zipper" triangulation).

    The loop (outer corner, upper lid, inner corner, lower lid) is split at its corners into two lid chains
    from the outer to the inner corner; triangles join the chains in order of their normalised arc position,
    so when blinks bring each upper-lid vertex onto its lower-lid partner every triangle collapses to zero area.

    Args:
        loop: ``(L,)`` vertex indices of the eye opening, starting at a corner.
        mean_shape: ``(N, 3)`` model-frame vertices (to find the inner corner: the one nearest ``x = 0``).
    Returns:
        ``(L - 2, 3)`` int64 triangles (degenerate ones dropped).
    """
    lp = [int(i) for i in loop]
    n = len(lp)
    if n < 3:
        raise RenderInputError(f"an eye loop needs at least 3 vertices, got {n}")
    xs = np.abs(np.asarray(mean_shape)[lp, 0])
    inner = int(np.argmin(xs))
    if inner == 0:  # the loop starts at the inner corner: the other corner is the farthest from the nose
        inner = int(np.argmax(xs))
    a = lp[: inner + 1]  # outer corner -> upper lid -> inner corner
    b = [lp[0]] + [lp[k] for k in range(n - 1, inner - 1, -1)]  # outer corner -> lower lid -> inner corner
    tris: list[tuple[int, int, int]] = []
    i = j = 0
    na, nb = len(a) - 1, len(b) - 1
    while i < na or j < nb:
        adv_a = j >= nb or (i < na and (i + 1) / na <= (j + 1) / nb)
        if adv_a:
            tri = (a[i], a[i + 1], b[j])
            i += 1
        else:
            tri = (a[i], b[j + 1], b[j])
            j += 1
        if len(set(tri)) == 3:
            tris.append(tri)
    return np.asarray(tris, dtype=np.int64).reshape(-1, 3)


def correspondence_codes(mean_shape: np.ndarray) -> np.ndarray:
    """``(N, 3)`` float32 colour code per vertex: the mean-shape position normalised per axis to [0.1, 1].

    Distinct vertices have distinct codes; no code is black, so the background stays distinguishable.
    """
    p = np.asarray(mean_shape, dtype=np.float64)
    lo, hi = p.min(axis=0), p.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.asarray(0.1 + 0.9 * (p - lo) / span, dtype=np.float32)


@dataclass
class ConditioningResult:
    """Conditioning images of a batch of frames.

    Attributes:
        images: ``(B, 9, H, W)`` float in [0, 1]: colour, correspondence, eye gaze (3 channels each), stored
            channels-last (``torch.channels_last``; call ``.contiguous()`` where NCHW memory is needed).
        visible: ``(B,)`` bool, False where the head covers no pixel (behind the camera or outside the frame):
            those images are black, not an error.
        coverage: ``(B,)`` float fraction of the image covered by the face mesh.
        status: per frame ``"ok"``, ``"behind camera"`` or ``"outside frame"``.
        raster: the underlying :class:`~dvp_engine.render.rasterize.Rasterization` (triangle ids >= the face
            mesh's triangle count are the eye-opening fill triangles); None when the batch was rendered in
            slices (see ``ConditioningRenderer(max_pixels=...)``).
    """

    images: torch.Tensor
    visible: torch.Tensor
    coverage: torch.Tensor
    status: list[str] = field(default_factory=list)
    raster: Rasterization | None = None

    @property
    def colour(self) -> torch.Tensor:
        """``(B, 3, H, W)`` shaded colour render."""
        return self.images[:, 0:3]

    @property
    def correspondence(self) -> torch.Tensor:
        """``(B, 3, H, W)`` correspondence image."""
        return self.images[:, 3:6]

    @property
    def gaze(self) -> torch.Tensor:
        """``(B, 3, H, W)`` eye-gaze image."""
        return self.images[:, 6:9]

    def side_by_side(self) -> torch.Tensor:
        """``(B, 3, H, 3 W)``: the three images next to each other (for previews)."""
        return torch.cat([self.colour, self.correspondence, self.gaze], dim=3)


def _as_tensor(x: Any, name: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if not (t.dtype.is_floating_point or t.dtype in (torch.int32, torch.int64)):
        raise RenderInputError(f"{name} must be numeric, got {t.dtype}")
    return t.to(device=device, dtype=dtype)


def _check_finite(t: torch.Tensor, name: str, columns: Sequence[str] | None = None) -> None:
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        where = torch.nonzero(bad)[0].tolist()
        if t.dim() == 2:
            col = columns[where[1]] if columns is not None else f"column {where[1]}"
            raise RenderInputError(f"{name} of batch item {where[0]} ({col}) is NaN or infinite")
        raise RenderInputError(f"{name} contains NaN or infinite values (index {where})")


class ConditioningRenderer:
    """Renders conditioning images of one face model; caches the model's tensors on a device.

    Args:
        model: a :class:`~dvp_engine.facemodel.FaceModel`.
        device: torch device (``"cpu"``, ``"cuda"``); default CPU.
        dtype: floating dtype of the computation (float32; float64 for gradient checks).
        max_pixels: on the CPU, batches are rendered in slices of at most this many output pixels (default
            2**18: 4 frames at 256, 1 at 512), which keeps the working set in cache; ``None`` renders every
            batch in one pass. Ignored on CUDA. A sliced render returns ``raster=None``.
    """

    def __init__(
        self,
        model: FaceModel,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        max_pixels: int | None = 1 << 18,
    ) -> None:
        self.model = model
        self.device = torch.device(device if device is not None else "cpu")
        self.dtype = dtype
        self.max_pixels = max_pixels if self.device.type == "cpu" else None
        self.faces = torch.as_tensor(np.asarray(model.faces), dtype=torch.int64, device=self.device)
        left = eye_fill_triangles(model.eye_left_loop, model.mean_shape)
        right = eye_fill_triangles(model.eye_right_loop, model.mean_shape)
        self.n_face = int(self.faces.shape[0])
        self.n_left = int(len(left))
        fill = torch.as_tensor(np.concatenate([left, right]), dtype=torch.int64, device=self.device)
        self.all_faces = torch.cat([self.faces, fill], dim=0)
        self.codes = torch.as_tensor(correspondence_codes(model.mean_shape), dtype=dtype, device=self.device)
        self.eye_centres = torch.as_tensor(
            np.stack([model.eyeball_left_center, model.eyeball_right_center]), dtype=dtype, device=self.device
        )
        self.eye_loops = [
            torch.as_tensor(np.asarray(loop), dtype=torch.int64, device=self.device)
            for loop in (model.eye_left_loop, model.eye_right_loop)
        ]
        self.mean_shape = torch.as_tensor(model.mean_shape, dtype=dtype, device=self.device)
        self.eyeball_radius = float(model.eyeball_radius)
        self.iris_radius = float(model.iris_radius)

    # ------------------------------------------------------------------ entry points
    def render(
        self,
        params: Any,
        identity: Any,
        reflectance: Any,
        camera: Camera,
        size: int | Sequence[int] | None = None,
        *,
        eyeball_follows_face: bool = False,
        eye_centres: Any = None,
    ) -> ConditioningResult:
        """Conditioning images from packed per-frame parameters.

        Args:
            params: ``(B, 103)`` or ``(103,)`` packed parameters (``dvp_engine.core.layout``: Euler rotation in
                radians, translation in metres, expression, SH, gaze in radians, blinks), numpy or torch.
            identity: ``(80,)`` or ``(B, 80)`` geometry coefficients alpha.
            reflectance: ``(80,)`` or ``(B, 80)`` reflectance coefficients beta.
            camera: the camera of the footage (intrinsics for ``camera.width x camera.height``).
            size: output size (int for square, or ``(width, height)``); the intrinsics are scaled to it
                (:meth:`Camera.scaled`). Default: the camera's own size.
            eyeball_follows_face: move each eyeball centre with the mean displacement (identity + expression,
                blinks excluded) of its eye opening's vertices, as the tracker does when its setting of that
                name is on (``track.metadata["tracker"]["settings"]``); off: the model's fixed centres.
            eye_centres: ``(2, 3)`` eyeball centres (actor's left, right) in the model frame, metres: a track's
                eye calibration (``FaceTrack.eyes.centres``); None: the face model's centres.
        Returns:
            :class:`ConditioningResult` with images ``(B, 9, H, W)`` in [0, 1].
        Raises:
            RenderInputError (a ValueError): NaN/inf or wrongly shaped parameters.
        """
        p = _as_tensor(params, "params", self.device, self.dtype)
        if p.dim() == 1:
            p = p[None]
        if p.dim() != 2 or p.shape[1] != layout.FRAME_SIZE:
            raise RenderInputError(f"params must have shape (B, {layout.FRAME_SIZE}), got {tuple(p.shape)}")
        _check_finite(p, "parameters", layout.FRAME_CHANNELS)
        lay = layout.FRAME_LAYOUT
        rot = euler_to_matrix(p[:, lay["rotation"]], degrees=False)
        return self.render_parts(
            rotation=rot,
            translation=p[:, lay["translation"]],
            expression=p[:, lay["expression"]],
            sh=p[:, lay["sh"]],
            gaze=p[:, lay["gaze"]],
            blink=p[:, lay["blink"]],
            identity=identity,
            reflectance=reflectance,
            camera=camera,
            size=size,
            eyeball_follows_face=eyeball_follows_face,
            eye_centres=eye_centres,
        )

    def render_parts(
        self,
        *,
        rotation: torch.Tensor,
        translation: torch.Tensor,
        expression: Any,
        sh: Any,
        gaze: Any,
        blink: Any,
        identity: Any,
        reflectance: Any,
        camera: Camera,
        size: int | Sequence[int] | None = None,
        eyeball_follows_face: bool = False,
        eye_centres: Any = None,
    ) -> ConditioningResult:
        """Conditioning images from separate parameters (torch or numpy; B frames).

        Args:
            rotation: ``(B, 3, 3)`` head rotation (model -> camera); translation ``(B, 3)`` metres.
            expression: ``(B, 64)``; sh: ``(B, 27)`` (index ``3 * band + channel``);
            gaze: ``(B, 4)`` radians (left yaw, left pitch, right yaw, right pitch); blink: ``(B, 2)``.
            identity, reflectance: ``(80,)`` or ``(B, 80)``.
            camera, size, eyeball_follows_face, eye_centres: as in :meth:`render`.
        """
        dev, dt = self.device, self.dtype
        rot = _as_tensor(rotation, "rotation", dev, dt)
        trans = _as_tensor(translation, "translation", dev, dt)
        expr = _as_tensor(expression, "expression", dev, dt)
        light = _as_tensor(sh, "sh", dev, dt)
        gz = _as_tensor(gaze, "gaze", dev, dt)
        bl = _as_tensor(blink, "blink", dev, dt)
        alpha = _as_tensor(identity, "identity", dev, dt)
        beta = _as_tensor(reflectance, "reflectance", dev, dt)
        b = rot.shape[0]
        shapes = {
            "rotation": (rot, (b, 3, 3)),
            "translation": (trans, (b, 3)),
            "expression": (expr, (b, self.model.n_expr)),
            "sh": (light, (b, 27)),
            "gaze": (gz, (b, 4)),
            "blink": (bl, (b, 2)),
        }
        for name, (t, shape) in shapes.items():
            if tuple(t.shape) != shape:
                raise RenderInputError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
        for name, t, k in (("identity", alpha, self.model.n_id), ("reflectance", beta, self.model.n_albedo)):
            if t.shape[-1:] != (k,) or t.dim() > 2 or (t.dim() == 2 and t.shape[0] not in (1, b)):
                raise RenderInputError(f"{name} must have shape ({k},) or ({b}, {k}), got {tuple(t.shape)}")
        named = {**{n: t for n, (t, _) in shapes.items()}, "identity": alpha, "reflectance": beta}
        # one device sync for all the checks; the per-group pass only runs to name the culprit
        if not bool(torch.isfinite(torch.cat([t.reshape(-1) for t in named.values()])).all()):
            for name, t in named.items():
                _check_finite(t, name)
        cam = camera if size is None else camera.scaled(size)
        per_call = b if self.max_pixels is None else max(1, self.max_pixels // (cam.width * cam.height))
        if b > per_call:
            parts = []
            for i in range(0, b, per_call):
                sl = slice(i, i + per_call)
                parts.append(
                    self.render_parts(
                        rotation=rot[sl],
                        translation=trans[sl],
                        expression=expr[sl],
                        sh=light[sl],
                        gaze=gz[sl],
                        blink=bl[sl],
                        identity=alpha[sl] if alpha.dim() == 2 and alpha.shape[0] == b else alpha,
                        reflectance=beta[sl] if beta.dim() == 2 and beta.shape[0] == b else beta,
                        camera=cam,
                        eyeball_follows_face=eyeball_follows_face,
                        eye_centres=eye_centres,
                    )
                )
            return ConditioningResult(
                images=torch.cat([q.images for q in parts]),
                visible=torch.cat([q.visible for q in parts]),
                coverage=torch.cat([q.coverage for q in parts]),
                status=[x for q in parts for x in q.status],
                raster=None,
            )
        verts = apply_pose(self.model.vertices(alpha, expr, bl), rot, trans)  # (B, N, 3) camera frame
        albedo = self.model.albedo(beta)
        if albedo.shape[0] != b:
            albedo = albedo.expand(b, -1, -1)
        normals = vertex_normals(verts, self.faces)
        colour = sh_shade(albedo, normals, light).clamp(0.0, 1.0)
        base = self.eye_centres
        if eye_centres is not None:
            base = _as_tensor(eye_centres, "eye_centres", dev, dt).reshape(2, 3)
            _check_finite(base, "eye_centres")
        centres = base[None].expand(b, 2, 3)
        if eyeball_follows_face:
            moved = self.model.vertices(alpha, expr) - self.mean_shape  # (B, N, 3), no blinks
            shift = torch.stack([moved[:, loop].mean(dim=1) for loop in self.eye_loops], dim=1)
            centres = centres + shift
        return self._compose(verts, colour, rot, trans, gz, centres, cam)

    # ------------------------------------------------------------------ internals
    def _compose(
        self,
        verts: torch.Tensor,
        colour: torch.Tensor,
        rot: torch.Tensor,
        trans: torch.Tensor,
        gaze: torch.Tensor,
        centres: torch.Tensor,
        cam: Camera,
    ) -> ConditioningResult:
        b, n, _ = verts.shape
        w, h = cam.width, cam.height
        pix = cam.project(verts)
        raster = rasterize_pixels(pix, verts[..., 2], self.all_faces, w, h, near=_NEAR)
        tri = raster.pixel_triangle
        is_face = tri < self.n_face
        attrs = torch.cat([colour, self.codes.expand(b, -1, -1)], dim=-1)
        vals = raster.interpolate_sparse(attrs) * is_face[:, None].to(colour.dtype)  # (P, 6)
        gaze_rgb = self._gaze_values(raster, rot, trans, gaze, centres, cam, is_face)  # (P, 3)
        images = raster.scatter(torch.cat([vals, gaze_rgb], dim=1), 0.0)
        face_px = torch.bincount(raster.pixel_batch[is_face], minlength=b)
        visible = face_px > 0
        behind = (verts[..., 2] <= _NEAR).all(dim=1).tolist()
        status = [
            "ok" if vis else ("behind camera" if beh else "outside frame")
            for vis, beh in zip(visible.tolist(), behind, strict=True)
        ]
        return ConditioningResult(
            images=images,
            visible=visible,
            coverage=face_px.to(torch.float32) / float(w * h),
            status=status,
            raster=raster,
        )

    def _gaze_values(
        self,
        raster: Rasterization,
        rot: torch.Tensor,
        trans: torch.Tensor,
        gaze: torch.Tensor,
        centres: torch.Tensor,
        cam: Camera,
        is_face: torch.Tensor,
    ) -> torch.Tensor:
        """``(P, 3)`` eye-gaze colours at the covered pixels: white eye openings, blue iris discs."""
        dt = self.dtype
        out = torch.zeros(raster.pixel_index.shape[0], 3, dtype=dt, device=self.device)
        eye_sel = torch.nonzero(~is_face).squeeze(1)
        if eye_sel.numel() == 0:
            return out
        tri = raster.pixel_triangle.index_select(0, eye_sel)
        eye = (tri >= self.n_face + self.n_left).long()  # 0 left, 1 right
        frame = raster.pixel_batch.index_select(0, eye_sel)
        # pupil centre and iris normal per (frame, eye), camera frame
        d = gaze_direction(gaze[:, 0::2], gaze[:, 1::2])  # (B, 2, 3) head frame
        centre = centres + self.eyeball_radius * d  # (B, 2, 3) model frame
        centre_cam = apply_pose(centre, rot, trans)
        normal_cam = d @ rot.transpose(-1, -2)
        pe = frame * 2 + eye
        c = centre_cam.reshape(-1, 3).index_select(0, pe)
        nrm = normal_cam.reshape(-1, 3).index_select(0, pe)
        flat = raster.pixel_index.index_select(0, eye_sel)
        rem = flat % (raster.width * raster.height)
        py = torch.div(rem, raster.width, rounding_mode="floor")
        px = rem - py * raster.width
        ray = cam.unproject_rays(torch.stack([px, py], dim=1).to(dt))
        denom = (nrm * ray).sum(-1)
        facing = denom < -1e-6  # the iris faces the camera
        s = (nrm * c).sum(-1) / torch.where(facing, denom, torch.ones_like(denom))
        dist2 = ((s[:, None] * ray - c) ** 2).sum(-1)
        iris = facing & (dist2 <= self.iris_radius**2)
        white = torch.tensor(WHITE, dtype=dt, device=self.device)
        blue = torch.tensor(BLUE, dtype=dt, device=self.device)
        vals = torch.where(iris[:, None], blue, white)
        return out.index_copy(0, eye_sel, vals)


_RENDERERS: dict[tuple[int, str, torch.dtype], ConditioningRenderer] = {}


def eyeball_follows_face(track: FaceTrack) -> bool:
    """The tracker's ``eyeball_follows_face`` setting recorded in a track (False when absent), so renders put
    the pupils where the tracker did."""
    return bool(track.tracker_setting("eyeball_follows_face", False))


def track_render_inputs(track: FaceTrack, model: FaceModel) -> tuple[np.ndarray, Any]:
    """What the renderer needs of a track: packed parameters ``(F, 103)`` with the look-at control applied
    to the gaze (:func:`dvp_engine.core.gaze.resolved_gaze`), and the eyeball centres ``(2, 3)`` of the
    track's eye calibration (None without one: the model's centres, as older tracks were rendered).

    Raises:
        InputError: a look-at target behind the face (naming the frame) or a weight outside [0, 1].
    """
    from dvp_engine.core import layout
    from dvp_engine.core.gaze import eye_centres, resolved_gaze

    model_centres = np.stack([model.eyeball_left_center, model.eyeball_right_center])
    centres = None if track.eyes is None else track.eyes.centres
    params = track.params()
    gaze = resolved_gaze(
        track.channels, eye_centres(track.eyes, model_centres), [int(f) for f in track.frames]
    )
    if gaze is not None:
        params[:, layout.FRAME_LAYOUT["gaze"]] = np.deg2rad(gaze)
    return params, centres


def render_conditioning(
    model: FaceModel,
    params: Any,
    identity: Any,
    reflectance: Any,
    camera: Camera,
    size: int | Sequence[int] | None = None,
    *,
    device: torch.device | str | None = None,
    eyeball_follows_face: bool = False,
    eye_centres: Any = None,
) -> ConditioningResult:
    """Render the three conditioning images for a batch of frames (see :meth:`ConditioningRenderer.render`).

    Args:
        model: the face model.
        params: ``(B, 103)`` packed per-frame parameters (``FaceTrack.params()`` rows; radians).
        identity, reflectance: ``(80,)`` per-actor coefficients (``FaceTrack.identity``/``.reflectance``).
        camera: the footage camera (``Camera.from_intrinsics(track.intrinsics, track.width, track.height)``).
        size: output size (e.g. 256 for the network), intrinsics scaled to it; default the camera's size.
        device: torch device.
        eyeball_follows_face: see :meth:`ConditioningRenderer.render` (match the tracker's setting).
        eye_centres: ``(2, 3)`` calibrated eyeball centres (``FaceTrack.eyes.centres``); None: the model's.
    Returns:
        :class:`ConditioningResult`: ``.images (B, 9, H, W)`` in [0, 1], ``.visible (B,)`` flags.
    """
    dev = torch.device(device if device is not None else "cpu")
    key = (id(model), str(dev), torch.float32)
    r = _RENDERERS.get(key)
    if r is None or r.model is not model:
        r = ConditioningRenderer(model, device=dev)
        _RENDERERS.clear()
        _RENDERERS[key] = r
    return r.render(
        params,
        identity,
        reflectance,
        camera,
        size,
        eyeball_follows_face=eyeball_follows_face,
        eye_centres=eye_centres,
    )


def build_volumes(frames_cond: Any, indices: Sequence[int] | torch.Tensor, nw: int = 11) -> torch.Tensor:
    """Space-time conditioning volumes for the network.

    Args:
        frames_cond: ``(F, 9, H, W)`` per-frame conditioning images in [0, 1] (torch or numpy), in sequence order.
        indices: ``(B,)`` positions in ``0..F-1`` of the current frames.
        nw: window length (paper: 11).
    Returns:
        ``(B, 9 * nw, H, W)`` in [-1, 1]: frames ``i - nw + 1 .. i`` oldest first, the current frame **last**
        (channels ``9 * (nw - 1):``); positions before 0 repeat frame 0.
    """
    if nw < 1:
        raise RenderInputError(f"window length must be >= 1, got {nw}")
    fc = frames_cond if isinstance(frames_cond, torch.Tensor) else torch.from_numpy(np.asarray(frames_cond))
    if fc.dim() != 4 or fc.shape[1] != CHANNELS_PER_FRAME:
        raise RenderInputError(f"conditioning frames must have shape (F, 9, H, W), got {tuple(fc.shape)}")
    n_frames = fc.shape[0]
    idx = torch.as_tensor(indices, dtype=torch.int64).reshape(-1).to(fc.device)
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n_frames):
        raise RenderInputError(f"window indices must be in 0..{n_frames - 1}, got {idx.tolist()}")
    if idx.numel() == 0:
        return torch.zeros(0, nw * CHANNELS_PER_FRAME, fc.shape[2], fc.shape[3], device=fc.device)
    return gather_windows(fc, [window_indices(i, nw) for i in idx.tolist()], fc.device)
