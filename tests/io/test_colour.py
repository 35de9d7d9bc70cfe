from __future__ import annotations

import numpy as np
import pytest

from dvp_engine.io import colour
from dvp_engine.io.colour import (
    ColourError,
    acescg_to_srgb_display,
    convert,
    resolve_space,
    scene_linear_space,
    srgb_display_to_acescg,
    srgb_space,
)


@pytest.fixture(autouse=True)
def _default_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCIO", raising=False)


def test_default_config_and_names() -> None:
    assert colour.config_source() == "ocio://studio-config-latest"
    assert srgb_space() == "sRGB Encoded Rec.709 (sRGB)"
    assert scene_linear_space() == "ACEScg"
    assert resolve_space("sRGB - Texture") == "sRGB Encoded Rec.709 (sRGB)"
    assert resolve_space("lin_ap1") == "ACEScg"
    assert resolve_space("scene_linear") == "ACEScg"


def test_known_values() -> None:
    # sRGB 0.5 -> 0.2140 linear before the gamut change (sRGB inverse EOTF)
    lin709 = convert(np.full((1, 3), 0.5), "sRGB - Texture", "Linear Rec.709 (sRGB)")
    np.testing.assert_allclose(lin709, 0.21404, atol=2e-4)
    # grey stays grey through the Rec.709 -> AP1 matrix (same white point)
    np.testing.assert_allclose(srgb_display_to_acescg(np.full((2, 3), 0.5)), 0.21404, atol=2e-4)
    # pure sRGB red in AP1: known coefficients of the Rec.709 -> AP1 (Bradford D65->D60) matrix
    red = srgb_display_to_acescg(np.array([1.0, 0.0, 0.0]))
    np.testing.assert_allclose(red, [0.6131, 0.0702, 0.0206], atol=2e-3)


def test_round_trip_and_alpha() -> None:
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 1, (8, 9, 3)).astype(np.float32)
    lin = srgb_display_to_acescg(img)
    assert lin.shape == img.shape and lin.dtype == np.float32 and not np.allclose(lin, img, atol=0.01)
    np.testing.assert_allclose(acescg_to_srgb_display(lin), img, atol=1e-4)
    rgba = np.concatenate([img, rng.uniform(0, 1, (8, 9, 1)).astype(np.float32)], axis=2)
    out = srgb_display_to_acescg(rgba)
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    np.testing.assert_allclose(out[..., :3], lin, atol=1e-6)
    assert np.array_equal(img, rgba[..., :3])  # input untouched


def test_errors_list_close_matches() -> None:
    with pytest.raises(ColourError, match=r"unknown colour space 'ACEScgg'.*'ACEScg'"):
        convert(np.zeros((1, 3)), "ACEScgg", "sRGB - Texture")
    with pytest.raises(ValueError, match="shape"):
        convert(np.zeros((2, 2)), "ACEScg", "sRGB - Texture")


def test_ocio_env_is_honoured(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OCIO", str(tmp_path / "missing.ocio"))
    with pytest.raises(ColourError, match="missing.ocio"):
        srgb_display_to_acescg(np.zeros((1, 3)))
    monkeypatch.setenv("OCIO", "ocio://cg-config-latest")
    assert colour.config_source() == "ocio://cg-config-latest"
    assert scene_linear_space() == "ACEScg"
    np.testing.assert_allclose(srgb_display_to_acescg(np.full((1, 3), 0.5)), 0.21404, atol=2e-4)
