from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dvp_engine.core import FaceTrack, InputError, SchemaError, layout
from dvp_engine.core import track as track_mod


def make_track(n: int = 6, first: int = 1001, seed: int = 0) -> FaceTrack:
    rng = np.random.default_rng(seed)
    params = rng.normal(scale=0.1, size=(n, layout.FRAME_SIZE))
    params[:, layout.FRAME_LAYOUT["translation"].start + 2] = 0.6
    return FaceTrack.from_params(
        np.arange(first, first + 2 * n, 2),
        params,
        rate=Fraction(24000, 1001),
        width=512,
        height=512,
        intrinsics=(1000.0, 1000.0, 255.5, 255.5),
        identity=rng.normal(size=80),
        reflectance=rng.normal(size=80),
        confidence=np.linspace(0.5, 1.0, n),
        metadata={"source": "clip.mp4"},
    )


def assert_same(a: FaceTrack, b: FaceTrack) -> None:
    np.testing.assert_array_equal(a.frames, b.frames)
    assert a.rate == b.rate and (a.width, a.height) == (b.width, b.height)
    assert a.intrinsics == b.intrinsics
    assert list(a.channels) == list(b.channels)
    for k in a.channels:
        np.testing.assert_array_equal(a.channels[k], b.channels[k])
    np.testing.assert_array_equal(a.identity, b.identity)
    np.testing.assert_array_equal(a.reflectance, b.reflectance)
    assert a.metadata == b.metadata


def test_save_load_round_trip(tmp_path: Path) -> None:
    t = make_track()
    path = t.save(tmp_path / "t.npz")
    back = FaceTrack.load(path)
    assert_same(t, back)
    np.testing.assert_allclose(back.params(), t.params(), atol=1e-6)
    # readable with numpy alone, without pickle
    with np.load(path, allow_pickle=False) as data:
        header = json.loads(data["header"].tobytes())
    assert header["schema"] == "FaceTrack.2"
    assert header["rate"] == [24000, 1001]


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(
    n=st.integers(0, 8),
    first=st.integers(-50, 5000),
    values=hnp.arrays(np.float32, 3, elements=st.floats(-1e6, 1e6, width=32)),
    num=st.integers(1, 120000),
    den=st.integers(1, 1001),
)
def test_round_trip_property(
    tmp_path: Path, n: int, first: int, values: np.ndarray, num: int, den: int
) -> None:
    chans = {"head.tz": np.full(n, values[0], np.float32), "gaze.left.x": np.full(n, values[1], np.float32)}
    t = FaceTrack(
        frames=np.arange(first, first + 3 * n, 3),
        rate=Fraction(num, den),
        width=64,
        height=48,
        intrinsics=(50.0, 51.0, 31.5, 23.5),
        channels=chans,
        metadata={"v": float(values[2])},
    )
    assert_same(t, FaceTrack.load(t.save(tmp_path / "p.npz")))


def test_select_and_index(tmp_path: Path) -> None:
    t = make_track()
    assert t.index_of(1005) == 2
    with pytest.raises(InputError, match="frame 1004.*not in track"):
        t.index_of(1004)
    s = t.select([1003, 1009])
    np.testing.assert_array_equal(s.frames, [1003, 1009])
    np.testing.assert_array_equal(s.channel("head.ry"), t.channel("head.ry")[[1, 4]])


def test_invalid_tracks() -> None:
    t = make_track()
    with pytest.raises(SchemaError, match="strictly increasing"):
        t.replace(frames=t.frames[::-1].copy())
    bad = dict(t.channels)
    bad["head.ry"] = bad["head.ry"].copy()
    bad["head.ry"][3] = np.nan
    with pytest.raises(SchemaError, match=r"frame 1007.*head\.ry.*NaN"):
        t.replace(channels=bad)


def test_truncated_and_foreign_files(tmp_path: Path) -> None:
    path = make_track().save(tmp_path / "t.npz")
    data = path.read_bytes()
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="trunc.npz.*truncated or corrupt"):
        FaceTrack.load(trunc)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(SchemaError, match="other.npz.*not a FaceTrack"):
        FaceTrack.load(other)
    with pytest.raises(InputError, match="not found"):
        FaceTrack.load(tmp_path / "missing.npz")


def _rewrite_schema(src: Path, dst: Path, schema: str) -> None:
    with np.load(src, allow_pickle=False) as d:
        arrays = {k: d[k] for k in d.files}
    header = json.loads(arrays["header"].tobytes())
    header["schema"] = schema
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(dst, **arrays)


def test_unknown_schema_and_upgrade_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_track().save(tmp_path / "t.npz")
    newer = tmp_path / "newer.npz"
    _rewrite_schema(src, newer, "FaceTrack.9")
    with pytest.raises(SchemaError, match="FaceTrack.9.*newer dvp"):
        FaceTrack.load(newer)

    older = tmp_path / "older.npz"
    _rewrite_schema(src, older, "FaceTrack.0")

    def up(header: dict, arrays: dict) -> tuple[dict, dict]:
        header = dict(header, schema="FaceTrack.1")
        header["metadata"] = dict(header["metadata"], upgraded=True)
        return header, arrays

    monkeypatch.setitem(track_mod.UPGRADES, "FaceTrack.0", up)
    assert FaceTrack.load(older).metadata["upgraded"] is True


def test_save_is_atomic_on_failure(tmp_path: Path) -> None:
    path = make_track().save(tmp_path / "t.npz")
    before = path.read_bytes()
    t = make_track(seed=1)
    t.channels["head.rx"][0] = np.inf  # invalid after construction: save must refuse and keep the old file
    with pytest.raises(SchemaError):
        t.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["t.npz"]


def test_core_imports_neither_torch_nor_oiio() -> None:
    code = (
        "import sys, dvp_engine.core, dvp_engine.core.curves, dvp_engine.core.track;"
        "import importlib, pkgutil;"
        "[importlib.import_module('dvp_engine.core.' + m.name) for m in pkgutil.iter_modules(dvp_engine.core.__path__)];"
        "bad = [m for m in ('torch', 'OpenImageIO', 'PyOpenColorIO', 'av', 'kornia', 'cupy') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_atomic_writes_get_an_ordinary_file_mode(tmp_path: Path) -> None:
    """A temporary file is private (0600); the file renamed into place has the mode a new file gets (0666 less
    the umask), like any other output a farm reads."""
    import os
    import stat

    from dvp_engine.core.atomic import write_text_atomic

    umask = os.umask(0)
    os.umask(umask)
    write_text_atomic(tmp_path / "a.json", "{}")
    plain = tmp_path / "b.json"
    plain.write_text("{}")
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o666 & ~umask


def test_entries_outside_the_schema_are_never_decompressed(tmp_path: Path) -> None:
    """A small .npz with a large zero-filled extra entry (the audit's 1.5 MB file that took 1.6 GB)."""
    import io
    import tracemalloc
    import zipfile

    p = np.zeros((2, layout.FRAME_SIZE))
    p[:, layout.FRAME_LAYOUT["translation"].start + 2] = 0.6
    t = FaceTrack.from_params([1, 2], p, rate=25, width=8, height=8, intrinsics=(10, 10, 3.5, 3.5))
    src = t.save(tmp_path / "t.npz")
    big = tmp_path / "big.npz"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(big, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            zout.writestr(item, zin.read(item.filename))
        buf = io.BytesIO()
        np.save(buf, np.zeros(200 << 20, np.uint8))  # 200 MB of zeros, ~200 kB compressed
        zout.writestr("extra.npy", buf.getvalue())
    assert big.stat().st_size < 2 << 20
    tracemalloc.start()
    loaded = FaceTrack.load(big)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 << 20 and loaded.n_frames == 2
    # a schema entry claiming more than the limit is refused before it is read
    old = track_mod.MAX_ENTRY_BYTES
    track_mod.MAX_ENTRY_BYTES = 100
    try:
        with pytest.raises(InputError, match="uncompressed"):
            FaceTrack.load(src)
    finally:
        track_mod.MAX_ENTRY_BYTES = old
