"""The training losses of both architectures, in one place.

* :func:`gan_loss`: the conditional GAN term (BCE with logits, paper eq. 6), for D (real/fake) and for G.
* :func:`l1_loss`: the paper's reproduction term (eq. 7), optionally region-weighted (:func:`region_weights`):
  the face and the eyes count more than the background, where a compositor looks.
* :func:`feature_matching_loss`: pix2pixHD's discriminator feature matching, L1 between D's intermediate
  features of the real and the generated frame; needs no downloaded weights and sharpens more than L1 alone.

Images are in the network range [-1, 1]; losses are float32 scalars.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .inputs import eye_mask, face_mask

__all__ = ["feature_matching_loss", "gan_loss", "l1_loss", "region_weights"]


def gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """BCE with logits of D's patch outputs against all-real (1) or all-fake (0) targets."""
    x = logits.float()
    return F.binary_cross_entropy_with_logits(x, torch.full_like(x, 1.0 if real else 0.0))


def region_weights(
    current: torch.Tensor, face: float = 3.0, eyes: float = 6.0, grow: int | None = None
) -> torch.Tensor:
    """Per-pixel weights ``(B, 1, H, W)`` from the current frame's 9 conditioning channels ``(B, 9, H, W)``:
    1 everywhere, plus ``face`` on the rendered face and ``eyes`` more on the eye openings (grown by
    ``grow`` pixels, default ``H / 64``)."""
    corr, gaze = current[:, 3:6], current[:, 6:9]
    g = max(1, current.shape[-1] // 64) if grow is None else grow
    return 1.0 + face * face_mask(corr).float() + eyes * eye_mask(gaze, g).float()


def l1_loss(fake: torch.Tensor, real: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute difference; with ``weights`` ``(B, 1, H, W)`` the weighted mean
    ``sum(w |fake - real|) / (sum(w) * C)``, so a uniform weight gives the plain L1."""
    d = (fake.float() - real.float()).abs()
    if weights is None:
        return d.mean()
    w = weights.float()
    return (d * w).sum() / (w.sum() * d.shape[1])


def feature_matching_loss(
    real_feats: Sequence[torch.Tensor], fake_feats: Sequence[torch.Tensor]
) -> torch.Tensor:
    """pix2pixHD feature matching: the mean over D's layers of the L1 between the features of the real frame
    (treated as constants) and of the generated one. Zero when both are the same image."""
    if len(real_feats) != len(fake_feats) or not real_feats:
        raise ValueError(f"feature lists differ in length: {len(real_feats)} and {len(fake_feats)}")
    total = torch.zeros((), device=fake_feats[0].device)
    for r, f in zip(real_feats, fake_feats, strict=True):
        total = total + (f.float() - r.detach().float()).abs().mean()
    return total / len(real_feats)
