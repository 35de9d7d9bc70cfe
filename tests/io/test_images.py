from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dvp_engine.core.errors import DvpError, InputError
from dvp_engine.core.frames import FrameSet
from dvp_engine.core.sequence import ImageSequence
from dvp_engine.io.images import image_info, read_image, read_sequence, write_image, write_sequence


def _ramp(h: int = 6, w: int = 8, c: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 1.0, (h, w, c)).astype(np.float32)


@pytest.mark.parametrize("compression", ["zip", "piz", "none", "dwaa:45"])
def test_exr_half_round_trip(tmp_path: Path, compression: str) -> None:
    img = _ramp() * 4.0 - 1.0  # scene-linear values outside [0, 1] survive
    p = write_image(tmp_path / "a.exr", img, compression=compression)
    back, meta = read_image(p)
    assert back.shape == (6, 8, 3) and back.dtype == np.float32
    assert meta["oiio:format"] == "half" and meta["compression"] == compression.split(":")[0]
    tol = 0.05 if compression.startswith("dwaa") else 2e-3  # half precision (lossy DWA looser)
    np.testing.assert_allclose(back, img, atol=tol)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.exr"]  # no temporary left behind


def test_exr_float_exact_and_metadata_round_trip(tmp_path: Path) -> None:
    img = _ramp(5, 7, 4)
    m4 = np.arange(16, dtype=np.float64).reshape(4, 4) / 7.0
    meta_in = {
        "dvp:source": "plate/wda.1001.exr",
        "dvp:frame": 1001,
        "dvp:synthetic": True,
        "dvp:gain": 0.25,
        "dvp:weights": np.array([0.5, 1.5, 2.5, 3.5, 4.5], dtype=np.float32),  # numpy float32 list
        "dvp:vec3": [1.0, 2.0, 3.0],
        "dvp:ints": [3, 1, 4, 1],  # EXR has no int vector: stored as floats
        "dvp:size": (512, 256),
        "dvp:K": np.array([[500.0, 0, 255.5], [0, 500.0, 255.5], [0, 0, 1]], dtype=np.float32),
        "dvp:world": m4,
        "dvp:params": {"mode": "gaze", "strength": 0.5},
    }
    write_image(tmp_path / "m.exr", img, meta_in, dtype="float")
    back, meta = read_image(tmp_path / "m.exr")
    np.testing.assert_array_equal(back, img)
    assert meta["oiio:channelnames"] == ("R", "G", "B", "A")
    assert meta["dvp:source"] == "plate/wda.1001.exr"
    assert meta["dvp:frame"] == 1001 and isinstance(meta["dvp:frame"], int)
    assert meta["dvp:synthetic"] == 1
    assert meta["dvp:gain"] == pytest.approx(0.25)
    np.testing.assert_allclose(meta["dvp:weights"], [0.5, 1.5, 2.5, 3.5, 4.5])
    np.testing.assert_allclose(meta["dvp:vec3"], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(meta["dvp:ints"], [3, 1, 4, 1])
    assert meta["dvp:size"].dtype == np.int32 and meta["dvp:size"].tolist() == [512, 256]
    assert meta["dvp:K"].shape == (3, 3)
    np.testing.assert_allclose(meta["dvp:K"], meta_in["dvp:K"])
    assert meta["dvp:world"].shape == (4, 4)
    np.testing.assert_allclose(meta["dvp:world"], m4, rtol=1e-6)
    assert meta["dvp:params"] == '{"mode": "gaze", "strength": 0.5}'
    info = image_info(tmp_path / "m.exr")
    assert "7x5" in info and "R,G,B,A" in info and "dvp:source" in info


@pytest.mark.parametrize(
    ("ext", "dtype", "tol"),
    [
        ("png", "uint8", 0.5 / 255 + 1e-6),
        ("png", "uint16", 1e-4),
        ("tif", "uint16", 1e-4),
        ("dpx", "uint16", 1e-4),
    ],
)
def test_integer_formats_quantise_to_unit_range(tmp_path: Path, ext: str, dtype: str, tol: float) -> None:
    img = _ramp()
    write_image(tmp_path / f"a.{ext}", img, dtype=dtype)  # type: ignore[arg-type]
    back, meta = read_image(tmp_path / f"a.{ext}")
    assert meta["oiio:format"] == dtype
    np.testing.assert_allclose(back, img, atol=tol)
    # out-of-range values are clamped, not wrapped
    write_image(tmp_path / f"b.{ext}", np.full((2, 2, 3), [-0.5, 0.5, 1.5], np.float32), dtype=dtype)  # type: ignore[arg-type]
    np.testing.assert_allclose(read_image(tmp_path / f"b.{ext}")[0][0, 0], [0.0, 0.5, 1.0], atol=tol)


def test_jpeg_and_grey(tmp_path: Path) -> None:
    smooth = np.broadcast_to(np.linspace(0, 1, 16, dtype=np.float32)[None, :, None], (16, 16, 3))
    write_image(tmp_path / "a.jpg", smooth, compression="jpeg:98")
    back, _ = read_image(tmp_path / "a.jpg")
    assert np.abs(back - smooth).mean() < 0.02
    grey = _ramp(4, 4, 1)[:, :, 0]
    write_image(tmp_path / "g.exr", grey, dtype="float")
    back, meta = read_image(tmp_path / "g.exr")
    assert back.shape == (4, 4, 1) and meta["oiio:channelnames"] == ("Y",)
    np.testing.assert_array_equal(back[:, :, 0], grey)
    # uint8 arrays are taken as already scaled
    u8 = np.array([[[0, 128, 255]]], np.uint8)
    write_image(tmp_path / "u.png", u8)
    np.testing.assert_allclose(read_image(tmp_path / "u.png")[0][0, 0], [0.0, 128 / 255, 1.0], atol=1e-6)


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.exr: no such file"):
        read_image(tmp_path / "nope.exr")
    (tmp_path / "garbage.exr").write_bytes(b"this is not an exr" * 10)
    with pytest.raises(InputError, match=r"garbage\.exr: not a readable image"):
        read_image(tmp_path / "garbage.exr")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match=r"notes\.txt"):
        read_image(tmp_path / "notes.txt")
    with pytest.raises(InputError, match="folder"):
        read_image(tmp_path)
    # unwritable folder: a path under a regular file (chmod does not stop root)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DvpError, match="folder"):
        write_image(blocker / "out.exr", _ramp())
    with pytest.raises(ValueError, match="pixel type"):
        write_image(tmp_path / "a.jpg", _ramp(), dtype="half")
    with pytest.raises(ValueError, match="compression"):
        write_image(tmp_path / "a.exr", _ramp(), compression="zap")
    with pytest.raises(ValueError, match="shape"):
        write_image(tmp_path / "a.exr", np.zeros((2, 2, 2, 2), np.float32))
    with pytest.raises(TypeError, match="dvp:bad"):
        write_image(tmp_path / "a.exr", _ramp(), {"dvp:bad": object()})
    assert sorted(x.name for x in tmp_path.iterdir()) == ["file", "garbage.exr", "notes.txt"]


def test_failed_write_keeps_old_file(tmp_path: Path) -> None:
    dest = tmp_path / "keep.exr"
    write_image(dest, np.zeros((2, 2, 3), np.float32), dtype="float")

    def frames_then_boom() -> None:
        write_image(dest, _ramp(), {"dvp:bad": object()})

    with pytest.raises(TypeError):
        frames_then_boom()
    np.testing.assert_array_equal(read_image(dest)[0], 0.0)
    assert [x.name for x in tmp_path.iterdir()] == ["keep.exr"]


def test_sequence_write_read_missing(tmp_path: Path) -> None:
    frames = {f: _ramp(3, 4, 3, seed=f) for f in (1001, 1002, 1003, 1005, 1006)}
    seq = write_sequence(
        tmp_path / "out" / "render.####.exr",
        frames.items(),
        lambda f: {"dvp:source_frame": f - 1000},
        dtype="float",
        compression="piz",
    )
    assert seq.frames == FrameSet.parse("1001-1003,1005-1006")
    assert (tmp_path / "out" / "render.1005.exr").is_file()
    got = {f: (img, meta) for f, img, meta in read_sequence(str(tmp_path / "out" / "render.%04d.exr"))}
    assert sorted(got) == sorted(frames)
    for f, (img, meta) in got.items():
        np.testing.assert_array_equal(img, frames[f])
        assert meta["dvp:frame"] == f and meta["dvp:source_frame"] == f - 1000
    pattern = ImageSequence.parse(tmp_path / "out" / "render.#.exr")
    with pytest.raises(InputError) as exc:
        read_sequence(pattern, "1001-1008")
    msg = str(exc.value)
    assert "3 of 8 frames missing: 1004,1007-1008" in msg and "render.####.exr" in msg
    skipped = [f for f, _, _ in read_sequence(pattern, "1001-1008", on_missing="skip")]
    assert skipped == [1001, 1002, 1003, 1005, 1006]
    with pytest.raises(InputError, match="matches no files"):
        read_sequence(tmp_path / "out" / "nothing.####.exr")
    # a corrupt frame is reported with its file and frame number
    (tmp_path / "out" / "render.1003.exr").write_bytes(b"broken")
    with pytest.raises(InputError, match=r"render\.1003\.exr: frame 1003: not a readable image"):
        list(read_sequence(pattern, "1001-1003"))


def test_exr_data_window_round_trip_and_overscan(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    crop = rng.random((20, 24, 3), dtype=np.float32)
    path = write_image(tmp_path / "dw.exr", crop, data_window=(30, 10, 64, 48), dtype="float")
    full, meta = read_image(path)  # the display window: plate coordinates
    assert full.shape == (48, 64, 3) and meta["dvp:data_window"] == (30, 10, 24, 20)
    np.testing.assert_array_equal(full[10:30, 30:54], crop)
    mask = np.ones((48, 64), bool)
    mask[10:30, 30:54] = False
    assert np.all(full[mask] == 0)
    data, _ = read_image(path, window="data")
    np.testing.assert_array_equal(data, crop)
    assert "data window: 24x20 at (30, 10) in a display window of 64x48" in image_info(path)
    # overscan: a data window reaching past the display window is cut to it
    over = write_image(tmp_path / "over.exr", crop, data_window=(-4, 40, 16, 48), dtype="float")
    cut, meta = read_image(over)
    assert cut.shape == (48, 16, 3) and meta["dvp:data_window"] == (-4, 40, 24, 20)
    np.testing.assert_array_equal(cut[40:48, 0:16], crop[0:8, 4:20])
    # an ordinary file has no data-window key and reads as before
    plain = write_image(tmp_path / "plain.exr", crop, dtype="float")
    px, meta = read_image(plain)
    assert "dvp:data_window" not in meta and px.shape == crop.shape
    with pytest.raises(ValueError, match="EXR"):
        write_image(tmp_path / "dw.png", crop, data_window=(0, 0, 64, 48))
    with pytest.raises(ValueError, match="window"):
        read_image(path, window="bbox")  # type: ignore[arg-type]


def test_write_frame_matte_as_layer_or_premultiplied_alpha(tmp_path: Path) -> None:
    """``layer``: opaque RGB + matte.A (Nuke); ``alpha``: RGBA premultiplied by the matte (Blender)."""
    from dvp_engine.io.output import write_frame

    rgb = np.full((4, 6, 3), 0.5, np.float32)
    matte = np.zeros((4, 6), np.float32)
    matte[:, 3:] = 1.0
    matte[:, 2] = 0.5
    layer = write_frame(tmp_path / "l.exr", rgb, matte=matte, dtype="float")
    alpha = write_frame(tmp_path / "a.exr", rgb, matte=matte, dtype="float", matte_as="alpha")
    pl, ml = read_image(layer)
    pa, ma = read_image(alpha)
    assert ml["oiio:channelnames"] == ("R", "G", "B", "matte.A")
    assert ma["oiio:channelnames"] == ("R", "G", "B", "A")
    np.testing.assert_allclose(pa[..., 3], matte)
    np.testing.assert_allclose(pa[..., :3], pl[..., :3] * matte[..., None], rtol=1e-6, atol=1e-7)
    assert ml["oiio:ColorSpace"] == ma["oiio:ColorSpace"]
    with pytest.raises(ValueError, match="matte_as"):
        write_frame(tmp_path / "x.exr", rgb, matte=matte, matte_as="straight")
