"""Scoring one method's frames for ``dvp eval``: fidelity, detail, identity and controllability blocks.

:class:`Scorer` holds what every method of one evaluation shares (the face model, the target track and its
network framing, dlib's face describer) and turns frames into the JSON blocks of the report:

* :meth:`Scorer.fidelity`: whole-frame PSNR / SSIM / L1 / temporal (:func:`~dvp_engine.network.evaluate.
  evaluate_frames`, the report's historical keys), the same three inside the ``face``, ``mouth`` and ``eyes``
  boxes (:mod:`~dvp_engine.network.metrics_regions`), and ``sharpness`` / ``hf_fidelity`` in the face box
  (:mod:`~dvp_engine.network.metrics_detail`);
* :meth:`Scorer.identity`: dlib descriptor distances (:mod:`~dvp_engine.network.metrics_identity`);
* :meth:`Scorer.controllability`: re-track and compare with the asked parameters
  (:mod:`~dvp_engine.pipeline.controllability`).

Frames are torch ``(N, 3, S, S)`` sRGB [0, 1] at the network size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from dvp_engine.core import FaceTrack

from .controllability import control_errors, retrack_images, upscale_frames
from .portrait import Framing

RETRACK_SIDE = 512
"""Network frames are upscaled to ``min(crop side, 512)`` pixels (at least the network size) for re-tracking:
dlib's detector and the pupil finder need a face of more than ~80 pixels."""


def json_safe(value: Any) -> Any:
    """The value with NaN and infinities replaced by None (strict JSON), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value


@dataclass
class Scorer:
    """Scores frames of one evaluation (see the module docstring).

    Attributes:
        model: the face model the track was made with.
        track: the target actor's track (identity, reflectance, camera).
        framing: the model's crop of the plate (network size and intrinsics).
        device: for the re-tracker (``cpu`` or ``cuda``).
        controllability: re-track frames (off: the controllability blocks are None).
    """

    model: Any
    track: FaceTrack
    framing: Framing
    device: str = "cpu"
    controllability: bool = True
    _describer: Any = field(default=None, repr=False)

    @property
    def describer(self) -> Any:
        """dlib's face describer, loaded on first use (DvpError naming the package if its model is missing)."""
        if self._describer is None:
            from dvp_engine.network.metrics_identity import FaceDescriber

            self._describer = FaceDescriber()
        return self._describer

    @property
    def net_intrinsics(self) -> tuple[float, float, float, float]:
        """``(fx, fy, cx, cy)`` of the network image."""
        return self.framing.intrinsics(self.track.intrinsics)

    def boxes(self, params: npt.NDArray[np.float64]) -> dict[str, npt.NDArray[np.int64]]:
        """Region boxes in the network image for packed parameter rows ``(N, FRAME_SIZE)``."""
        from dvp_engine.network.metrics_regions import region_boxes

        s = self.framing.size
        return region_boxes(self.model, self.track, [], self.net_intrinsics, (s, s), params=params)

    def fidelity(self, out: Any, gt: Any, boxes: dict[str, npt.NDArray[np.int64]]) -> dict[str, Any]:
        """Whole-frame and per-region PSNR / SSIM / L1, temporal error, face-box sharpness and HF fidelity."""
        from dvp_engine.network.evaluate import evaluate_frames
        from dvp_engine.network.metrics_detail import detail_metrics
        from dvp_engine.network.metrics_regions import region_metrics

        block: dict[str, Any] = evaluate_frames(out, gt)
        for name, b in boxes.items():
            block[name] = region_metrics(out, gt, b)
        block.update(detail_metrics(out, gt, boxes["face"]))
        return block

    def identity(self, out: Any, reference: Any, hints: npt.NDArray[np.int64] | None) -> dict[str, Any]:
        """Descriptor distance of ``out`` to ``reference`` (frames, or one ``(128,)`` descriptor): mean, the
        share of frames under dlib's same-person threshold, and the detection counts."""
        from dvp_engine.network.metrics_identity import SAME_PERSON, identity_distances

        dist, counts = identity_distances(out, reference, hints=hints, describer=self.describer)
        ok = dist[np.isfinite(dist)]
        return {
            "distance": float(ok.mean()) if ok.size else None,
            "same_person": float((ok < SAME_PERSON).mean()) if ok.size else None,
            **counts,
        }

    def _tracker_device(self) -> str:
        """``cuda`` when evaluating on a GPU and CuPy sees it, else ``cpu``."""
        if not self.device.startswith("cuda"):
            return "cpu"
        from dvp_engine.tracking.xp import cuda_available

        return "cuda" if cuda_available() else "cpu"

    def retrack_side(self) -> int:
        """Side in pixels of the images the re-tracker sees."""
        return max(self.framing.size, min(self.framing.side, RETRACK_SIDE))

    def controllability_of(
        self, out: Any, asked: npt.NDArray[np.float64], frames: list[int]
    ) -> dict[str, Any] | None:
        """Re-track ``out`` (identity fixed to the target's) and compare with ``asked`` ``(N, FRAME_SIZE)``."""
        if not self.controllability:
            return None
        side = self.retrack_side()
        f = self.framing
        intr = Framing(f.x0, f.y0, f.side, side).intrinsics(self.track.intrinsics)
        res = retrack_images(
            upscale_frames(out, side),
            intr,
            self.track.identity,
            self.track.reflectance,
            model=self.model,
            device=self._tracker_device(),
        )
        block = control_errors(asked, res.params, res.valid, self.model, self.track.identity, frames)
        block["source"] = f"re-tracked at {side} px"
        return block

    def controllability_of_params(
        self, got: npt.NDArray[np.float64], asked: npt.NDArray[np.float64], frames: list[int], source: str
    ) -> dict[str, Any]:
        """Compare known parameters ``got`` (e.g. retrieved frames' tracked ones) with ``asked``."""
        block = control_errors(asked, got, np.ones(len(got), bool), self.model, self.track.identity, frames)
        block["source"] = source
        return block


def with_face_crops(frames: Any, face_boxes: npt.NDArray[np.int64]) -> Any:
    """``(N, 3, S, S)`` -> ``(N, 3, S, 2 S)``: each frame with its face box enlarged to ``S`` beside it."""
    import torch

    from dvp_engine.network.metrics_regions import box_crops

    s = int(frames.shape[-1])
    return torch.cat([frames.float(), box_crops(frames, face_boxes, s)], dim=3)
