"""Inputs the ``fast`` architecture takes besides the conditioning volume: appearance from the footage.

* :func:`estimate_background`: the static background and body of the plate, the per-pixel median of the
  training frames (in the training crop), with a reliability check (a moving camera or background makes the
  median meaningless: then a flat grey is used and the log says so).
* :class:`NeuralTexture`: a learned per-actor texture in the face model's correspondence space, sampled through
  the correspondence image (deferred neural rendering with the correspondence code as texture coordinate).
* :func:`face_mask` / :func:`eye_mask`: where the current frame's face and eye openings are, from the volume.

All images are display-referred sRGB; the network space is [-1, 1]. Volume layout: :mod:`.data`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MIN_BACKGROUND_FRAMES",
    "BackgroundEstimate",
    "NeuralTexture",
    "estimate_background",
    "eye_mask",
    "face_mask",
]

log = logging.getLogger("dvp.network")

MIN_BACKGROUND_FRAMES = 8
"""Fewest training frames a background estimate is made from (a median of fewer is mostly the actor)."""

BACKGROUND_SPREAD_LIMIT = 0.04
"""Largest median absolute deviation (in [0, 1] sRGB units, the median over the pixels away from the head)
with which the plate is taken as static; sensor noise and compression on a locked-off plate are ~0.005-0.015."""

CORRESPONDENCE_THRESHOLD = -0.9
"""Correspondence codes are >= 0.1 ([0, 1]) where the mesh covers a pixel, 0 elsewhere: in the network's
[-1, 1] range a pixel is on the face where any code channel exceeds -0.9 (0.05 in [0, 1])."""


@dataclass(frozen=True)
class BackgroundEstimate:
    """A background estimate of a plate.

    Attributes:
        image: ``(3, S, S)`` float32 in [-1, 1] (display-referred sRGB in the network range); flat grey (0)
            when not ``reliable``.
        reliable: whether the plate's background is static enough for its median to be used.
        spread: the median, over the pixels away from the head, of the per-pixel median absolute deviation of
            the frames from the median, in [0, 1] sRGB units.
        frames: the number of frames the estimate is made from.
    """

    image: torch.Tensor
    reliable: bool
    spread: float
    frames: int


def estimate_background(
    frames: npt.NDArray[np.uint8] | npt.NDArray[np.floating],
    head_masks: npt.NDArray[np.floating] | None = None,
    *,
    spread_limit: float = BACKGROUND_SPREAD_LIMIT,
    max_frames: int = 64,
    label: str = "the plate",
) -> BackgroundEstimate:
    """The per-pixel median of ``frames`` and whether it is a usable background.

    Args:
        frames: ``(T, 3, S, S)`` training frames, uint8 (0..255) or float in [0, 1]; numpy memory maps work.
        head_masks: ``(T, S, S)`` in [0, 1], where the face was rendered; the spread is measured away from it
            (dilated), where the plate should be still. None: everywhere.
        spread_limit: see :data:`BACKGROUND_SPREAD_LIMIT`.
        max_frames: at most this many frames, evenly spaced, are used (the median's cost).
        label: how the log names the plate.
    Returns:
        :class:`BackgroundEstimate`; when the spread exceeds ``spread_limit`` a warning is logged and the image
        is flat grey (the network then synthesises the background, as the paper's does).
    Raises:
        ValueError: fewer than :data:`MIN_BACKGROUND_FRAMES` frames, or frames not ``(T, 3, S, S)``.
    """
    n = len(frames)
    if n < MIN_BACKGROUND_FRAMES:
        raise ValueError(
            f"{n} training frames are too few for a background estimate (at least {MIN_BACKGROUND_FRAMES})"
        )
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"frames must be (T, 3, S, S), got {tuple(frames.shape)}")
    pick = np.unique(np.linspace(0, n - 1, min(n, max_frames)).round().astype(np.int64))
    stack = np.asarray(frames[pick], dtype=np.float32)
    if np.asarray(frames[:1]).dtype == np.uint8:
        stack /= 255.0
    median = np.median(stack, axis=0)  # (3, S, S)
    mad = np.median(np.abs(stack - median[None]), axis=0).max(axis=0)  # (S, S), worst channel
    away = np.ones(mad.shape, bool)
    if head_masks is not None:
        m = torch.from_numpy(np.asarray(head_masks[pick], dtype=np.float32).max(axis=0))[None, None]
        r = max(1, mad.shape[-1] // 16)
        grown = F.max_pool2d(m, 2 * r + 1, stride=1, padding=r)[0, 0].numpy()
        away = grown < 0.5
        if away.mean() < 0.05:  # the head fills the crop: judge by every pixel
            away[:] = True
    spread = float(np.median(mad[away]))
    reliable = spread <= spread_limit
    image = torch.from_numpy(median * 2.0 - 1.0)
    if not reliable:
        log.warning(
            "%s: the background estimate is unreliable (the frames differ by %.3f away from the head, more "
            "than %.3f: a moving camera or background); the network synthesises the background instead",
            label,
            spread,
            spread_limit,
        )
        image = torch.zeros_like(image)
    return BackgroundEstimate(image.contiguous(), reliable, spread, len(pick))


def face_mask(correspondence: torch.Tensor) -> torch.Tensor:
    """``(B, 1, H, W)`` 1.0 where a correspondence image ``(B, 3, H, W)`` (network range) covers the face."""
    return (correspondence.amax(dim=1, keepdim=True) > CORRESPONDENCE_THRESHOLD).to(correspondence.dtype)


def eye_mask(gaze: torch.Tensor, grow: int = 2) -> torch.Tensor:
    """``(B, 1, H, W)`` 1.0 on the eye openings of an eye-gaze image ``(B, 3, H, W)`` (network range; black,
    i.e. -1, outside the eyes), grown by ``grow`` pixels to take in the lids."""
    m = (gaze.amax(dim=1, keepdim=True) > -0.9).to(gaze.dtype)
    return F.max_pool2d(m, 2 * grow + 1, stride=1, padding=grow) if grow > 0 else m


class NeuralTexture(nn.Module):
    """A learned feature texture of the actor's face, indexed by the correspondence code.

    The correspondence image gives every covered pixel the (normalised, mean-shape) position of the surface
    point it shows, the same in every frame: a 3-D texture coordinate. The texture is a sum of ``levels``
    feature grids of ``channels`` x ``r^3`` (coarse grids learn quickly, fine ones hold detail) sampled
    trilinearly at that coordinate; pixels off the face get 0. So appearance that belongs to a surface point
    (skin detail, eyebrows, stubble) is stored once and moves with the geometry, instead of being memorised by
    the convolutions for every pose.

    ``forward(correspondence)``: ``(B, 3, H, W)`` in [-1, 1] -> ``(B, channels, H, W)``.
    """

    def __init__(self, channels: int = 8, resolutions: tuple[int, ...] = (16, 64)) -> None:
        super().__init__()
        self.channels = channels
        self.grids = nn.ParameterList([nn.Parameter(torch.zeros(1, channels, r, r, r)) for r in resolutions])

    def reset_parameters(self, generator: torch.Generator | None = None, std: float = 0.1) -> None:
        """Small random texels (N(0, std)), reproducible from ``generator``."""
        with torch.no_grad():
            for g in self.grids:
                g.normal_(0.0, std, generator=generator)

    def forward(self, correspondence: torch.Tensor) -> torch.Tensor:
        b, _, h, w = correspondence.shape
        # grid_sample's coordinates: x indexes the last grid axis (W), y the next (H), z the depth (D)
        coords = correspondence.float().permute(0, 2, 3, 1).reshape(b, 1, h, w, 3)
        out = torch.zeros(b, self.channels, h, w, device=correspondence.device, dtype=torch.float32)
        for g in self.grids:
            s = F.grid_sample(g.expand(b, -1, -1, -1, -1), coords, mode="bilinear", align_corners=True)
            out = out + s[:, :, 0]
        return out * face_mask(correspondence).float()
