"""Frame checks, cheap image pyramids and dlib's frontal face detector (HOG + linear SVM).

Everything here works on plain numpy arrays; ``dlib`` is imported lazily by :class:`FaceDetector`.

Pixel convention (as everywhere in dvp): pixel ``(0, 0)``'s centre is at coordinate ``(0, 0)``, x right, y down.
Block-averaging by an integer factor ``f`` puts the centre of reduced pixel ``j`` at full-resolution coordinate
``j * f + (f - 1) / 2`` (:func:`to_full_res`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]

# ITU-R BT.601 luma weights in 1/256 (what dlib and OpenCV use for RGB -> grey), as integers for speed.
_LUMA = (77, 150, 29)

PREDICTOR_68 = "shape_predictor_68_face_landmarks.dat"


class FrameError(ValueError):
    """A frame that cannot be used as an image (None, wrong shape, wrong dtype, NaN). The landmark source
    reports it as status ``invalid_frame`` instead of raising."""


def model_path(name: str = PREDICTOR_68) -> Path:
    """Path of a dlib model file shipped by the ``face-recognition-models`` package.

    The package itself is not imported (its ``__init__`` needs ``pkg_resources``); its folder is found with
    :func:`importlib.util.find_spec`.

    Raises:
        FileNotFoundError: the package is not installed or the file is missing (message names the path).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{name}: the face-recognition-models package is not installed (pip install face-recognition-models)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: dlib model file missing from face-recognition-models")
    return path


def as_rgb_uint8(image: Any) -> U8:
    """Validate a frame and return it as a C-contiguous ``(H, W, 3)`` uint8 array (sRGB-encoded).

    Accepts ``(H, W)`` grey, ``(H, W, 1)``, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA; uint8 as is, float arrays
    as [0, 1] (clipped), uint16 as [0, 65535].

    Raises:
        FrameError: None, not an array, wrong rank or channel count, empty, unsupported dtype or non-finite values.
    """
    if image is None:
        raise FrameError("frame is None")
    try:
        arr = np.asarray(image)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise FrameError(f"frame is not an array ({type(image).__name__}): {exc}") from exc
    if arr.dtype == object:
        raise FrameError(f"frame is not a numeric array ({type(image).__name__})")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise FrameError(f"frame has shape {arr.shape}; expected (H, W), (H, W, 3) or (H, W, 4)")
    if arr.shape[0] < 8 or arr.shape[1] < 8:
        raise FrameError(f"frame is too small ({arr.shape[1]}x{arr.shape[0]} pixels)")
    arr = arr[..., :3]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == np.uint16:
        return np.ascontiguousarray((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise FrameError("frame contains NaN or infinite values")
        out: U8 = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        return out
    raise FrameError(f"frame has unsupported dtype {arr.dtype}")


def to_grey(rgb: U8) -> U8:
    """``(H, W, 3)`` uint8 RGB -> ``(H, W)`` uint8 luma (BT.601 weights, integer arithmetic)."""
    r, g, b = (rgb[..., c].astype(np.uint16) for c in range(3))
    return ((r * _LUMA[0] + g * _LUMA[1] + b * _LUMA[2] + 128) >> 8).astype(np.uint8)


def downscale_grey(rgb: U8, factor: int) -> U8:
    """Grey image block-averaged by an integer ``factor`` (trailing rows/columns that do not fill a block are
    dropped). Reduced pixel ``j`` covers full pixels ``j*f .. j*f + f - 1`` (centre: :func:`to_full_res`)."""
    if factor <= 1:
        return to_grey(rgb)
    f = int(factor)
    h, w = rgb.shape[0] // f, rgb.shape[1] // f
    acc = np.zeros((h, w, 3), np.uint32 if f > 15 else np.uint16)
    for dy in range(f):
        for dx in range(f):
            acc += rgb[dy : dy + h * f : f, dx : dx + w * f : f]
    r, g, b = (acc[..., c].astype(np.uint32) for c in range(3))
    n = f * f
    return ((r * _LUMA[0] + g * _LUMA[1] + b * _LUMA[2] + 128 * n) // (256 * n)).astype(np.uint8)


def to_full_res(coord: F64 | float, factor: int, offset: float = 0.0) -> Any:
    """Map a coordinate in an image block-averaged by ``factor`` (and cropped at ``offset``) back to full
    resolution: ``offset + coord * factor + (factor - 1) / 2``."""
    return offset + np.asarray(coord, np.float64) * factor + (factor - 1) / 2.0


def is_blank(rgb: U8, min_range: int = 12) -> bool:
    """True when the frame carries no usable picture (black, or flat: the 1st-99th percentile range of a
    subsampled grey version is below ``min_range`` code values)."""
    g = to_grey(rgb[::4, ::4])
    lo, hi = np.percentile(g, (1, 99))
    return bool(hi - lo < min_range)


@dataclass(frozen=True)
class Detection:
    """One face found by the detector, in full-resolution pixel coordinates.

    Attributes:
        box: ``(left, top, right, bottom)`` pixels (right/bottom inclusive, as dlib rectangles).
        score: the detector's SVM score (0 is dlib's default threshold; frontal faces score about 0.5-3).
    """

    box: tuple[float, float, float, float]
    score: float

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0] + 1.0

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1] + 1.0

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0)


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two ``(left, top, right, bottom)`` boxes (inclusive pixel bounds)."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1.0
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1.0
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    area_a = (a[2] - a[0] + 1.0) * (a[3] - a[1] + 1.0)
    area_b = (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0)
    return float(inter / (area_a + area_b - inter))


class FaceDetector:
    """dlib's frontal HOG face detector with a coarse-to-fine search.

    The smallest face the detector sees is about 80 pixels wide in the image it scans. A full-frame search runs
    on the frame block-averaged by ``detect_factor`` (fast; at 1/2 resolution a 512x512 frame costs ~4 ms on one
    core); if nothing is found, the factor is halved down to full resolution, then dlib's 2x upsampling
    (``upsample_when_lost``) runs so faces down to about 40 pixels are still found (and can be flagged as tiny).
    The first pass that finds a face ends the search, so a second face smaller than ``80 * factor`` pixels next
    to a large one is not counted.

    Args:
        detect_factor: integer block-average factor of the first pass (0 = automatic: 2 for frames of 400-767
            pixels on the long side, ``long_side // 384`` above, 1 below).
        threshold: SVM score threshold (dlib's default 0).
        upsample_when_lost: 0 disables the 2x-upsampled last pass.
    """

    def __init__(self, detect_factor: int = 0, threshold: float = 0.0, upsample_when_lost: int = 1) -> None:
        import dlib

        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self.detect_factor = int(detect_factor)
        self.threshold = float(threshold)
        self.upsample_when_lost = int(upsample_when_lost)

    def _factor(self, shape: tuple[int, ...]) -> int:
        if self.detect_factor > 0:
            return self.detect_factor
        long_side = max(shape[0], shape[1])
        return max(2 if long_side >= 400 else 1, int(long_side // 384))

    def _run(
        self, grey: U8, upsample: int, threshold: float, factor: int, ox: float, oy: float
    ) -> list[Detection]:
        rects, scores, _ = self._detector.run(grey, upsample, threshold)
        out = []
        for r, s in zip(rects, scores, strict=True):
            x0, x1 = to_full_res(np.array([r.left(), r.right()], np.float64), factor, ox)
            y0, y1 = to_full_res(np.array([r.top(), r.bottom()], np.float64), factor, oy)
            # Widen by the half block so the box covers whole full-resolution blocks.
            h = (factor - 1) / 2.0
            out.append(Detection((float(x0 - h), float(y0 - h), float(x1 + h), float(y1 + h)), float(s)))
        return out

    def detect(self, rgb: U8) -> list[Detection]:
        """All faces in a frame, largest first (full-resolution coordinates); [] when none."""
        factor = self._factor(rgb.shape)
        passes: list[tuple[int, int]] = [(factor, 0)]
        while factor > 1:
            factor //= 2
            passes.append((max(1, factor), 0))
        if self.upsample_when_lost > 0:
            passes.append((1, self.upsample_when_lost))
        for f, up in passes:
            grey = downscale_grey(rgb, f)
            dets = self._run(grey, up, self.threshold, f, 0.0, 0.0)
            if dets:
                return sorted(dets, key=lambda d: -d.area)
        return []

    def verify(
        self, rgb: U8, box: tuple[float, float, float, float], margin: float = 0.3, target: float = 90.0
    ) -> Detection | None:
        """Re-run the detector on a crop around ``box`` (grown by ``margin`` of its size on each side),
        resampled so the face is about ``target`` pixels wide (dlib's smallest window is 80); accepts weak
        faces (score > -1).

        Returns the detection overlapping ``box`` best (full-resolution coordinates), or None.
        Cost on one core: about 1.5 ms for any face size.
        """
        h, w = rgb.shape[:2]
        bw, bh = box[2] - box[0] + 1.0, box[3] - box[1] + 1.0
        if not (np.isfinite(bw) and np.isfinite(bh)) or bw < 4 or bh < 4:
            return None
        x0 = int(max(0, np.floor(box[0] - margin * bw)))
        y0 = int(max(0, np.floor(box[1] - margin * bh)))
        x1 = int(min(w, np.ceil(box[2] + margin * bw) + 1))
        y1 = int(min(h, np.ceil(box[3] + margin * bh) + 1))
        if x1 - x0 < 16 or y1 - y0 < 16:
            return None
        factor = max(1, int(bw // target))
        grey = downscale_grey(rgb[y0:y1, x0:x1], factor)
        scale = target / (bw / factor)  # < 1: shrink further (bilinear), > 1: the face is small, enlarge
        up = 0
        if scale < 0.87 or scale > 1.0:
            rows = max(2, int(round(grey.shape[0] * scale)))
            cols = max(2, int(round(grey.shape[1] * scale)))
            sy, sx = (grey.shape[0] - 1) / (rows - 1), (grey.shape[1] - 1) / (cols - 1)
            grey = np.asarray(self._dlib.resize_image(np.ascontiguousarray(grey), rows, cols), np.uint8)
        else:
            sy = sx = 1.0
        if grey.shape[0] < 24 or grey.shape[1] < 24:
            return None
        rects, scores, _ = self._detector.run(grey, up, -1.0)
        best: Detection | None = None
        best_iou = 0.0
        for r, s in zip(rects, scores, strict=True):
            bx0, bx1 = to_full_res(np.array([r.left(), r.right()], np.float64) * sx, factor, float(x0))
            by0, by1 = to_full_res(np.array([r.top(), r.bottom()], np.float64) * sy, factor, float(y0))
            d = Detection((float(bx0), float(by0), float(bx1), float(by1)), float(s))
            iou = box_iou(d.box, box)
            if iou > best_iou:
                best, best_iou = d, iou
        return best
