"""Region, detail and identity metrics against known cases (issue 12)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import kornia.filters
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dvp_engine.core import FaceTrack, layout
from dvp_engine.core.errors import DvpError
from dvp_engine.network.evaluate import l1, psnr
from dvp_engine.network.metrics_detail import detail_metrics, hf_fidelity, sharpness
from dvp_engine.network.metrics_regions import box_crops, project_landmarks, region_boxes, region_metrics

SAMPLE = Path(__file__).resolve().parents[2] / "dvp_engine" / "data" / "sample" / "wda_kh.mp4"


@pytest.fixture(scope="module")
def frames() -> torch.Tensor:
    """Two frames of the bundled sample clip at 128 px, ``(2, 3, 128, 128)`` sRGB [0, 1]."""
    from dvp_engine.io.video import read_frames

    imgs = np.stack([rgb for _, rgb in read_frames(SAMPLE, [1, 40])])
    t = torch.from_numpy(imgs).permute(0, 3, 1, 2).float()
    return F.interpolate(t, size=(128, 128), mode="bilinear", antialias=True).clamp(0, 1)


FACE = np.array([[20, 30, 106, 124], [20, 14, 106, 108]])  # the speaker's face in frames 1 and 40 at 128 px


def test_identical_images_score_perfectly(frames: torch.Tensor) -> None:
    assert torch.isinf(psnr(frames, frames)).all()
    m = region_metrics(frames, frames, FACE)
    assert m["psnr"] == float("inf") and m["ssim"] == pytest.approx(1.0, abs=1e-5) and m["l1"] == 0.0
    np.testing.assert_allclose(sharpness(frames, frames, FACE).numpy(), 1.0, atol=1e-12)
    np.testing.assert_allclose(hf_fidelity(frames, frames, FACE).numpy(), 1.0, atol=1e-12)


def test_blur_lowers_sharpness_well_below_one_and_barely_moves_l1(frames: torch.Tensor) -> None:
    blurred = kornia.filters.gaussian_blur2d(frames, (5, 5), (0.7, 0.7), border_type="replicate")
    d = detail_metrics(blurred, frames, FACE)
    assert d["sharpness"] < 0.4, d  # a slight blur removes most of the finest detail ...
    assert d["hf_fidelity"] < 0.95, d
    assert float(l1(blurred, frames).mean()) < 0.02  # ... which L1 and PSNR barely see
    assert region_metrics(blurred, frames, FACE)["psnr"] > 29.0


def test_checkerboard_raises_energy_but_lowers_fidelity(frames: torch.Tensor) -> None:
    yy, xx = torch.meshgrid(torch.arange(128), torch.arange(128), indexing="ij")
    board = ((xx + yy) % 2).float() * 2 - 1  # +-1, the two-pixel pattern of a transposed convolution
    noisy = (frames + 0.02 * board).clamp(0, 1)
    s = sharpness(noisy, frames, FACE)
    f = hf_fidelity(noisy, frames, FACE)
    assert (s > 1.5).all(), s  # a plain energy ratio calls this sharper than the footage ...
    assert (f < 0.75).all(), f  # ... the fidelity figure does not
    # and blurring the artefacts away does not buy fidelity either: detail that is not there cannot be matched
    blurred = kornia.filters.gaussian_blur2d(frames, (9, 9), (1.5, 1.5), border_type="replicate")
    assert (hf_fidelity(blurred, frames, FACE) < 0.8).all()


def test_region_metrics_only_see_the_box(frames: torch.Tensor) -> None:
    damaged = frames.clone()
    damaged[:, :, :, :10] = 0.0  # outside the face box
    assert region_metrics(damaged, frames, FACE)["l1"] == 0.0
    assert float(l1(damaged, frames).mean()) > 0.01
    with pytest.raises(ValueError, match="smaller than 3"):
        sharpness(frames, frames, np.tile([[5, 5, 6, 6]], (2, 1)))


def _track(tz: np.ndarray, tx: np.ndarray) -> FaceTrack:
    n = len(tz)
    params = np.zeros((n, layout.FRAME_SIZE))
    params[:, layout.FRAME_LAYOUT["translation"]] = np.stack([tx, np.zeros(n), tz], axis=1)
    return FaceTrack.from_params(
        np.arange(1, n + 1),
        params,
        rate=Fraction(25),
        width=256,
        height=256,
        intrinsics=(512, 512, 127.5, 127.5),
    )


def test_face_box_follows_the_track() -> None:
    from dvp_engine.facemodel import load_default_model

    model = load_default_model()
    track = _track(np.array([0.7, 0.7, 1.4]), np.array([0.0, 0.05, 0.0]))
    boxes = region_boxes(model, track, [0, 1, 2], track.intrinsics, (256, 256))
    face, mouth, eyes = boxes["face"], boxes["mouth"], boxes["eyes"]
    pix = project_landmarks(model, track.params(), track.identity, track.intrinsics)
    for i in range(3):  # the box holds every landmark with room to spare (15 % padding)
        x0, y0, x1, y1 = face[i]
        assert x0 < pix[i, :, 0].min() - 3 and pix[i, :, 0].max() + 3 < x1
        assert y0 < pix[i, :, 1].min() - 3 and pix[i, :, 1].max() + 3 < y1
        # mouth below the eyes, both inside the face box
        assert eyes[i, 3] <= mouth[i, 3] and eyes[i, 1] < mouth[i, 1]
        assert face[i, 0] <= mouth[i, 0] and mouth[i, 2] <= face[i, 2]
    # 5 cm to the right at 0.7 m: fx * 0.05 / 0.7 = 36.6 px
    shift = (face[1, 0] + face[1, 2] - face[0, 0] - face[0, 2]) / 2
    assert shift == pytest.approx(512 * 0.05 / 0.7, abs=1.5)
    # twice as far: half the size
    w0, w2 = face[0, 2] - face[0, 0], face[2, 2] - face[2, 0]
    assert w2 / w0 == pytest.approx(0.5, abs=0.05)
    crops = box_crops(torch.rand(3, 3, 256, 256), face, 64)
    assert crops.shape == (3, 3, 64, 64)


# ------------------------------------------------------------------------------------------------- identity
def _clip_frames(clip: Path, numbers: list[int], size: int = 128) -> torch.Tensor:
    from dvp_engine.io.video import read_frames

    t = torch.from_numpy(np.stack([rgb for _, rgb in read_frames(clip, numbers)])).permute(0, 3, 1, 2)
    return F.interpolate(t.float(), size=(size, size), mode="bilinear", antialias=True).clamp(0, 1)


def test_identity_distance_separates_people(shared_data: Path) -> None:
    from dvp_engine.network.metrics_identity import SAME_PERSON, FaceDescriber, identity_distances

    d = FaceDescriber()
    wda = _clip_frames(shared_data / "wda_kh.mp4", [1, 120])
    other = _clip_frames(shared_data / "lp_d3.mp4", [1, 120])
    same, counts = identity_distances(wda[:1], wda[1:], describer=d)
    assert counts["undetected_output"] == 0 and counts["no_descriptor"] == 0
    assert same[0] < SAME_PERSON
    diff, _ = identity_distances(wda, other, describer=d)
    assert (diff > SAME_PERSON).all(), diff
    ident, _ = identity_distances(wda, wda, describer=d)
    np.testing.assert_allclose(ident, 0.0, atol=1e-9)


def test_identity_without_a_face_is_nan_not_a_crash() -> None:
    from dvp_engine.network.metrics_identity import FaceDescriber, identity_distances

    flat = torch.full((1, 3, 64, 64), 0.5)
    dist, counts = identity_distances(flat, flat, describer=FaceDescriber())
    assert np.isnan(dist[0]) and counts["no_descriptor"] == 1 and counts["undetected_output"] == 1


def test_identity_names_the_package_when_dlibs_model_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from dvp_engine.network import metrics_identity
    from dvp_engine.tracking import detect

    def missing(name: str = "") -> Path:
        raise FileNotFoundError(f"{name}: dlib model file missing from face-recognition-models")

    monkeypatch.setattr(detect, "model_path", missing)
    with pytest.raises(DvpError, match="face-recognition-models") as exc:
        metrics_identity.FaceDescriber()
    assert "dlib_face_recognition_resnet_model_v1.dat" in str(exc.value)
