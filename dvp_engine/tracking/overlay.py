"""Overlay previews of a track: the fitted mesh, landmarks, pupils and gaze rays drawn over the frames.

``draw_overlay(track, source, out_dir)`` writes one PNG per frame (``overlay.####.png``) so a person can judge
the fit at a glance:

* **green wireframe**: the fitted face mesh (front-facing triangles only);
* **red dots**: the detected dlib-68 landmarks (re-detected on the frame); **cyan dots**: the model's landmarks
  projected with the tracked parameters; the two should coincide;
* **yellow dots / lines**: the model's pupils and gaze rays (3 cm long, from the tracked gaze);
* **text**: frame number, ``track.confidence``, and ``LOST`` for frames flagged ``track.valid = 0``
  (their parameters are interpolated between the neighbouring good frames).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dvp_engine.core import FaceTrack, layout
from dvp_engine.core.atomic import atomic_path
from dvp_engine.core.errors import InputError
from dvp_engine.core.rotation import euler_to_matrix

from .tracker import FrameObservation, from_packed


def project_track_frame(
    model: Any, track: FaceTrack, index: int, row: npt.NDArray[np.float64] | None = None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Camera-frame vertices ``(N, 3)``, their pixels ``(N, 2)`` and the camera-frame rotation ``(3, 3)`` of
    one track row (model evaluated with the track's identity, expression and blinks). ``row``: that row of
    ``track.params()`` when the caller has it (packing the track is per call otherwise)."""
    params = (track.params()[index] if row is None else row)[None]
    local, _ = from_packed(params)
    verts = np.asarray(
        model.vertices(track.identity.astype(np.float64), local[:, 6:70], local[:, 70:72]), np.float64
    )[0]
    rot = euler_to_matrix(params[0, layout.FRAME_LAYOUT["rotation"]], degrees=False)
    xc = verts @ rot.T + params[0, layout.FRAME_LAYOUT["translation"]]
    fx, fy, cx, cy = track.intrinsics
    z = np.maximum(xc[:, 2], 1e-6)
    pix = np.stack([fx * xc[:, 0] / z + cx, fy * xc[:, 1] / z + cy], axis=1)
    return xc, pix, rot


def gaze_rays(
    model: Any,
    track: FaceTrack,
    index: int,
    length: float = 0.03,
    row: npt.NDArray[np.float64] | None = None,
) -> list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
    """``[(pupil_px (2,), ray_end_px (2,))]`` for the left then right eye of one track row (``row``: as in
    :func:`project_track_frame`)."""
    params = track.params()[index] if row is None else row
    rot = euler_to_matrix(params[layout.FRAME_LAYOUT["rotation"]], degrees=False)
    t = params[layout.FRAME_LAYOUT["translation"]]
    gaze = np.rad2deg(params[layout.FRAME_LAYOUT["gaze"]])
    fx, fy, cx, cy = track.intrinsics
    follows = bool(track.tracker_setting("eyeball_follows_face", False))
    if follows:  # the whole mesh, only when the eyeballs follow their eye openings
        expr = params[layout.FRAME_LAYOUT["expression"]]
        verts = np.asarray(model.vertices(track.identity.astype(np.float64), expr[None]), np.float64)[0]
        mean = np.asarray(model.mean_shape, np.float64)
    out = []
    centres = (
        (model.eyeball_left_center, model.eyeball_right_center) if track.eyes is None else track.eyes.centres
    )
    for e, (centre, loop) in enumerate(
        zip(centres, (model.eye_left_loop, model.eye_right_loop), strict=True)
    ):
        # the eyeball follows its eye opening (identity + expression) only if the tracker did
        follow = verts[loop].mean(axis=0) - mean[loop].mean(axis=0) if follows else 0.0
        d = layout.gaze_direction(gaze[2 * e], gaze[2 * e + 1])
        pupil = np.asarray(centre, np.float64) + follow + float(model.eyeball_radius) * d
        ends = []
        for p in (pupil, pupil + length * d):
            xc = rot @ p + t
            ends.append(np.array([fx * xc[0] / xc[2] + cx, fy * xc[1] / xc[2] + cy]))
        out.append((ends[0], ends[1]))
    return out


def rasterise_vertex_colours(
    pix: npt.NDArray[np.float64],
    depth: npt.NDArray[np.float64],
    colours: npt.NDArray[np.float64],
    faces: npt.NDArray[np.integer],
    background: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """A small numpy z-buffer rasteriser with Gouraud (screen-space barycentric) colour interpolation.

    Used for the overlay's shaded blend and for synthetic test renders (the torch renderer in
    :mod:`dvp_engine.render` is the production path).

    Args:
        pix: ``(N, 2)`` projected vertices (pixel centres at integer coordinates).
        depth: ``(N,)`` camera-frame z (metres); smaller is nearer.
        colours: ``(N, 3)`` per-vertex colours.
        faces: ``(T, 3)`` triangles.
        background: ``(H, W, 3)`` image drawn over (copied).

    Returns:
        ``(image (H, W, 3), mask (H, W))``.
    """
    img = np.array(background, dtype=np.float64, copy=True)
    h, w = img.shape[:2]
    zbuf = np.full((h, w), np.inf)
    for f in np.asarray(faces):
        p = pix[f]
        x0, y0 = np.floor(p.min(axis=0)).astype(int)
        x1, y1 = np.ceil(p.max(axis=0)).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w - 1), min(y1, h - 1)
        if x0 > x1 or y0 > y1:
            continue
        ys, xs = np.mgrid[y0 : y1 + 1, x0 : x1 + 1]
        a, b, c = p
        den = (b[1] - c[1]) * (a[0] - c[0]) + (c[0] - b[0]) * (a[1] - c[1])
        if abs(den) < 1e-12:
            continue
        l0 = ((b[1] - c[1]) * (xs - c[0]) + (c[0] - b[0]) * (ys - c[1])) / den
        l1 = ((c[1] - a[1]) * (xs - c[0]) + (a[0] - c[0]) * (ys - c[1])) / den
        l2 = 1.0 - l0 - l1
        inside = (l0 >= -1e-9) & (l1 >= -1e-9) & (l2 >= -1e-9)
        if not inside.any():
            continue
        z = l0 * depth[f[0]] + l1 * depth[f[1]] + l2 * depth[f[2]]
        sub = zbuf[y0 : y1 + 1, x0 : x1 + 1]
        upd = inside & (z < sub)
        sub[upd] = z[upd]
        col = l0[..., None] * colours[f[0]] + l1[..., None] * colours[f[1]] + l2[..., None] * colours[f[2]]
        img[y0 : y1 + 1, x0 : x1 + 1][upd] = col[upd]
    return img, np.isfinite(zbuf)


def model_colours(
    model: Any,
    track: FaceTrack,
    index: int,
    xc: npt.NDArray[np.float64],
    row: npt.NDArray[np.float64] | None = None,
    albedo: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64]:
    """Per-vertex model colour ``(N, 3)`` of one track row: albedo times SH shading (camera-frame normals).
    ``row`` and ``albedo`` (``(N, 3)``, the track's reflectance): when the caller has them already."""
    from .solver import sh_basis, vertex_normals

    params = track.params()[index] if row is None else row
    normals = vertex_normals(np, xc[None], np.asarray(model.faces, np.int64))[0]
    gamma = params[layout.FRAME_LAYOUT["sh"]].reshape(9, 3)
    if albedo is None:
        albedo = np.asarray(model.albedo(track.reflectance.astype(np.float64)), np.float64)[0]
    out: npt.NDArray[np.float64] = np.clip(albedo * (sh_basis(np, normals) @ gamma), 0.0, 1.0)
    return out


def render_params(
    model: Any,
    params: npt.ArrayLike,
    intrinsics: tuple[float, float, float, float],
    background: npt.NDArray[np.float64],
    *,
    identity: npt.ArrayLike | None = None,
    reflectance: npt.ArrayLike | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Render the model under one packed parameter row (the tracker's image formation, eq. 1-3).

    Args:
        params: ``(FRAME_SIZE,)`` packed parameters (radians).
        intrinsics: ``(fx, fy, cx, cy)``.
        background: ``(H, W, 3)`` float sRGB [0, 1].
        identity, reflectance: ``(80,)`` or None (mean).

    Returns:
        ``(image (H, W, 3) float, pixels (N, 2) of the vertices, camera-frame vertices (N, 3))``.
    """
    from .solver import sh_basis, vertex_normals

    p = np.asarray(params, np.float64)
    local, _ = from_packed(p[None])
    alpha = None if identity is None else np.asarray(identity, np.float64)
    verts = np.asarray(model.vertices(alpha, local[:, 6:70], local[:, 70:72]), np.float64)[0]
    rot = euler_to_matrix(p[layout.FRAME_LAYOUT["rotation"]], degrees=False)
    xc = verts @ rot.T + p[layout.FRAME_LAYOUT["translation"]]
    fx, fy, cx, cy = intrinsics
    pix = np.stack([fx * xc[:, 0] / xc[:, 2] + cx, fy * xc[:, 1] / xc[:, 2] + cy], axis=1)
    normals = vertex_normals(np, xc[None], np.asarray(model.faces, np.int64))[0]
    beta = None if reflectance is None else np.asarray(reflectance, np.float64)
    albedo = np.asarray(model.albedo(beta), np.float64)[0]
    colours = np.clip(albedo * (sh_basis(np, normals) @ p[layout.FRAME_LAYOUT["sh"]].reshape(9, 3)), 0.0, 1.0)
    img, _ = rasterise_vertex_colours(pix, xc[:, 2], colours, np.asarray(model.faces), background)
    return img, pix, xc


def draw_overlay(
    track: FaceTrack,
    frames_source: str | Path | Sequence[npt.NDArray[np.uint8]],
    out_dir: str | Path,
    frames: Iterable[int] | str | None = None,
    *,
    model: Any = None,
    landmark_source: Callable[[npt.NDArray[np.uint8]], FrameObservation] | None = None,
    detect: bool = True,
    shaded: float = 0.0,
) -> list[Path]:
    """Write overlay PNGs of a track over its footage.

    Args:
        track: the track.
        frames_source: the tracked movie / sequence, or the frames themselves (one per track row, in order).
        out_dir: folder for ``overlay.####.png`` (created).
        frames: frame numbers to draw (default all of the track's).
        model: FaceModel (default: the default model).
        landmark_source: re-detects landmarks to draw them (default: the tracker's default source);
        detect: False draws only the model (no detection pass).
        shaded: opacity in [0, 1] of the shaded model (albedo x SH light) blended under the wireframe; 0 = off.

    Returns:
        the written paths.
    """
    import OpenImageIO as oiio

    from .pipeline import as_landmark_source, read_source

    if model is None:
        from dvp_engine.facemodel import load_default_model

        model = load_default_model()
    wanted = track.frames_of(frames)  # a clear InputError names a frame the track lacks
    if isinstance(frames_source, str | Path):
        numbers, images, _ = read_source(frames_source, wanted)
        by_number = dict(zip(numbers, images, strict=True))
    else:
        imgs = list(frames_source)
        if len(imgs) != track.n_frames:
            raise InputError(f"{len(imgs)} frames given for a track of {track.n_frames}")
        by_number = {int(f): imgs[i] for i, f in enumerate(track.frames)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lsrc = as_landmark_source(landmark_source) if detect else None
    faces = np.asarray(model.faces)
    lm_idx = np.asarray(model.landmarks68)
    conf = track.channels.get(layout.CONFIDENCE, np.ones(track.n_frames, np.float32))
    valid = track.channels.get(layout.VALID, np.ones(track.n_frames, np.float32))
    params = track.params()  # once: packing the track per frame would be quadratic in its length
    albedo = (
        np.asarray(model.albedo(track.reflectance.astype(np.float64)), np.float64)[0] if shaded > 0 else None
    )
    written: list[Path] = []
    for f in wanted:
        i = track.index_of(f)
        img = np.asarray(by_number[f])
        if img.dtype != np.uint8:
            img = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
        h, w = img.shape[:2]
        base = img[..., :3].astype(np.float64) / 255.0
        xc, pix, _ = project_track_frame(model, track, i, params[i])
        if shaded > 0:
            shade, mask = rasterise_vertex_colours(
                pix, xc[:, 2], model_colours(model, track, i, xc, params[i], albedo), faces, base
            )
            base = np.where(mask[..., None], (1 - shaded) * base + shaded * shade, base)
        buf = oiio.ImageBuf(oiio.ImageSpec(w, h, 3, oiio.FLOAT))
        buf.set_pixels(oiio.ROI(0, w, 0, h, 0, 1, 0, 3), base.astype(np.float32))
        ok = bool(valid[i] >= 0.5)
        # front-facing triangles: the face normal points toward the camera
        tri = xc[faces]
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        front = np.sum(n * tri.mean(axis=1), axis=1) < 0
        edges = np.concatenate([faces[front][:, [0, 1]], faces[front][:, [1, 2]], faces[front][:, [2, 0]]])
        edges = np.unique(np.sort(edges, axis=1), axis=0)
        colour = (0.2, 1.0, 0.3) if ok else (1.0, 0.5, 0.0)
        for a, b in edges:
            (x0, y0), (x1, y1) = pix[a], pix[b]
            oiio.ImageBufAlgo.render_line(buf, int(x0), int(y0), int(x1), int(y1), (*colour, 0.45), True)
        if lsrc is not None:
            obs = lsrc(img)
            if obs.found and obs.landmarks is not None:
                for x, y in obs.landmarks:
                    _dot(oiio, buf, x, y, (1.0, 0.15, 0.1), 2)
            if obs.pupils is not None:
                for x, y in np.asarray(obs.pupils):
                    if np.isfinite(x) and np.isfinite(y):
                        _dot(oiio, buf, x, y, (1.0, 0.0, 1.0), 2)
        for x, y in pix[lm_idx]:
            _dot(oiio, buf, x, y, (0.1, 0.9, 1.0), 1)
        for p0, p1 in gaze_rays(model, track, i, row=params[i]):
            oiio.ImageBufAlgo.render_line(
                buf, int(p0[0]), int(p0[1]), int(p1[0]), int(p1[1]), (1.0, 0.9, 0.0)
            )
            _dot(oiio, buf, p0[0], p0[1], (1.0, 0.9, 0.0), 2)
        text = f"frame {f}  confidence {float(conf[i]):.2f}" + ("" if ok else "  LOST (interpolated)")
        size = max(12, h // 32)
        oiio.ImageBufAlgo.render_text(
            buf, 6, size + 4, text, size, "", (1.0, 1.0, 1.0) if ok else (1.0, 0.3, 0.2)
        )
        path = out / f"overlay.{f:04d}.png"
        with atomic_path(path) as tmp:
            outbuf = oiio.ImageBufAlgo.channels(buf, (0, 1, 2))
            if not outbuf.write(str(tmp), oiio.UINT8, fileformat="png"):
                raise InputError(f"cannot write overlay ({outbuf.geterror()})", path=path, frame=f)
        written.append(path)
    return written


def _dot(oiio: Any, buf: Any, x: float, y: float, colour: tuple[float, float, float], r: int) -> None:
    if not (np.isfinite(x) and np.isfinite(y)):
        return
    xi, yi = int(round(x)), int(round(y))
    oiio.ImageBufAlgo.render_box(buf, xi - r, yi - r, xi + r, yi + r, colour, True)
