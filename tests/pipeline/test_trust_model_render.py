"""Model folders are never replaced or broken by accident, and rendered frames are never garbage with exit 0
(issue 17, items 2 and 4), on a tiny model trained by `dvp reenact` on the sample clip."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dvp_engine.cli.main import main
from dvp_engine.io.images import read_image

SAMPLE = Path(__file__).resolve().parents[2] / "dvp_engine" / "data" / "sample" / "wda_kh.mp4"
TINY = ["--size", "64", "--iters", "3", "--batch", "2", "--ngf", "8"]


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("job")
    code = main(
        ["reenact", "--source", str(SAMPLE), "--target", str(SAMPLE), "--track-frames", "1-22", "--frames", "21-22",
         "-o", str(out), "-q", "--no-preview", *TINY]
    )  # fmt: skip
    assert code == 0
    return out


@pytest.fixture
def model(job: Path, tmp_path: Path) -> Path:
    m = tmp_path / "model"
    shutil.copytree(job / "model", m)
    return m


def train_args(job: Path, model: Path, *extra: str) -> list[str]:
    return ["train", "--track", str(job / "work" / "target.npz"), "--frames-from", str(SAMPLE), "-o", str(model),
            "-q", *extra]  # fmt: skip


def snapshot(model: Path) -> dict[str, bytes]:
    return {n: (model / n).read_bytes() for n in ("dvp_model.json", "latest.json", "log.jsonl")}


def test_train_refuses_a_folder_holding_a_model(
    job: Path, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(model)
    assert main(train_args(job, model, *TINY)) == 1
    err = capsys.readouterr().err
    assert "--resume" in err and "--overwrite" in err and str(model) in err
    assert snapshot(model) == before


@pytest.mark.parametrize(
    ("extra", "needle"), [(["--nw", "3"], "nw"), (["--ngf", "16"], "ngf"), (["--batch", "4"], "batch")]
)
def test_resume_with_other_settings_is_an_error_and_writes_nothing(
    job: Path, model: Path, capsys: pytest.CaptureFixture[str], extra: list[str], needle: str
) -> None:
    before = snapshot(model)
    ck_before = sorted(p.name for p in (model / "checkpoints").iterdir())
    assert main(train_args(job, model, "--resume", "--iters", "4", *extra)) == 1
    err = capsys.readouterr().err
    assert f"--{needle}" in err and "checkpoint" in err
    assert snapshot(model) == before  # dvp_model.json, latest.json and the log untouched
    assert sorted(p.name for p in (model / "checkpoints").iterdir()) == ck_before
    assert main(["render", "--model", str(model), "--track", str(job / "work" / "reenacted.npz"), "-o",
                 str(model.parent / "r" / "f.####.exr"), "--frames", "22", "-q"]) == 0  # fmt: skip


def test_resume_takes_the_checkpoints_settings_and_overwrite_starts_again(job: Path, model: Path) -> None:
    assert main(train_args(job, model, "--resume", "--iters", "4")) == 0  # no --ngf 8 --batch 2 needed
    state = json.loads((model / "latest.json").read_text())
    assert state["iteration"] == 4
    cfg = json.loads((model / state["checkpoint"] / "state.json").read_text())["config"]
    assert (cfg["ngf"], cfg["batch"], cfg["size"]) == (8, 2, 64)
    assert main(train_args(job, model, "--overwrite", "--size", "64", "--iters", "2", "--batch", "2", "--ngf", "4")) == 0  # fmt: skip
    state = json.loads((model / "latest.json").read_text())
    assert state["iteration"] == 2
    assert sorted(p.name for p in (model / "checkpoints").iterdir()) == ["iter_00000002"]
    iters = [json.loads(line)["iter"] for line in (model / "log.jsonl").read_text().splitlines()]
    assert max(iters) <= 2  # the log holds the new run only


def test_a_live_lock_keeps_a_second_training_out(
    job: Path, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (model / ".dvp-lock").write_text(
            json.dumps({"host": socket.gethostname(), "pid": sleeper.pid, "started": 0, "what": "dvp train"})
        )
        assert main(train_args(job, model, "--resume", "--iters", "4")) == 1
        err = capsys.readouterr().err
        assert f"pid {sleeper.pid}" in err and ".dvp-lock" in err
    finally:
        sleeper.kill()
        sleeper.wait()
    # the holder is gone: its lock is stale and taken over; released at the end
    assert main(train_args(job, model, "--resume", "--iters", "4")) == 0
    assert not (model / ".dvp-lock").exists()


def render_args(job: Path, out: Path, *extra: str) -> list[str]:
    return ["render", "--model", str(job / "model"), "--track", str(job / "work" / "reenacted.npz"), "-o",
            str(out), "--output-size", "network", *extra]  # fmt: skip


def test_nan_pixels_are_an_error_naming_the_frame(
    job: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dvp_engine.network.infer import Renderer

    real = Renderer.render

    def broken(self: Renderer, *a: object, **k: object) -> torch.Tensor:
        out = real(self, *a, **k)  # type: ignore[arg-type]
        out[:, :, 5, 5] = float("nan")  # one NaN kernel
        return out

    monkeypatch.setattr(Renderer, "render", broken)
    out = tmp_path / "n" / "f.####.exr"
    assert main(render_args(job, out, "--frames", "21-22", "--writers", "1")) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("dvp: error: ") and "frame 21" in err and "NaN" in err and "--allow-nan" in err
    assert not list(out.parent.glob("*.exr"))
    assert main(render_args(job, out, "--frames", "21-22", "--allow-nan", "-q")) == 0
    px, _ = read_image(out.parent / "f.0021.exr")
    assert np.isnan(px[5, 5, :3]).all() and np.isfinite(px[0, 0]).all()


def test_resume_redoes_truncated_empty_and_foreign_frames(
    job: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r" / "f.####.exr"
    assert main(render_args(job, out, "--frames", "19-22", "-q")) == 0
    good = (out.parent / "f.0019.exr").read_bytes()
    f20, f21, f22 = (out.parent / f"f.00{f}.exr" for f in (20, 21, 22))
    f20.write_bytes(f20.read_bytes()[: len(good) // 2])  # cut in half by a dying node
    f21.write_bytes(b"")  # zero bytes
    assert main(["render-conditioning", str(job / "work" / "reenacted.npz"), "-o", str(tmp_path / "c.####.exr"),
                 "--size", "16", "--frames", "22", "-q"]) == 0  # fmt: skip
    shutil.copy(tmp_path / "c.0022.exr", f22)  # readable, but 16 x 16 x 9: not a frame of this render
    mtime19 = (out.parent / "f.0019.exr").stat().st_mtime_ns
    assert main(render_args(job, out, "--frames", "19-22", "--resume")) == 0
    err = capsys.readouterr().err
    assert "wrote 3 frames" in err and "1 already there" in err
    assert "frame 20" in err and "frame 21" in err and "frame 22" in err
    assert (out.parent / "f.0019.exr").stat().st_mtime_ns == mtime19
    for f in (f20, f21, f22):
        px, _ = read_image(f)
        assert px.shape == (64, 64, 4)


def test_jpeg_render_is_refused_before_rendering(
    job: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "j" / "f.####.jpg"
    assert main(render_args(job, out, "--frames", "22")) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "JPEG" in err and "f.####.jpg" in err
    assert not list(out.parent.glob("*.jpg"))


def test_a_second_render_of_the_same_frames_is_refused(
    job: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another live job writing frames 20-22 of the sequence: rendering 22 is refused, 19 (a farm's other chunk)
    is not; a lock whose job is gone is taken over."""
    import socket

    out = tmp_path / "l" / "f.####.exr"
    out.parent.mkdir()
    lock = out.parent / ".dvp-render.f.exr.farmnode7.4242.0.lock"
    holder = {"host": socket.gethostname(), "pid": os.getppid(), "started": 0, "frames": "20-22"}
    lock.write_text(json.dumps(holder))
    assert main(render_args(job, out, "--frames", "22")) == 1
    err = capsys.readouterr().err
    assert f"pid {os.getppid()}" in err and "frames 22" in err and lock.name in err
    assert not list(out.parent.glob("*.exr"))
    assert main(render_args(job, out, "--frames", "19", "-q")) == 0  # other frames of the sequence: fine
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({**holder, "pid": dead.pid}))  # its job is gone: stale
    assert main(render_args(job, out, "--frames", "22", "-q")) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["f.0019.exr", "f.0022.exr"]  # locks removed


def test_reenact_frames_the_retimed_track_lacks_are_an_error(
    job: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["reenact", "--source", str(SAMPLE), "--target", str(SAMPLE), "--track-frames", "1-22", "--frames", "21-30",
         "-o", str(job), "--no-preview", *TINY]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("dvp: error: ") and "reenacted.npz" in last and "23-30" in last


def test_export_eval_and_overlay_refuse_to_overwrite(
    job: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pt = tmp_path / "g.pt"
    pt.write_bytes(b"someone's model")
    assert main(["export", "--model", str(job / "model"), "-o", str(pt)]) == 2
    assert "--overwrite" in capsys.readouterr().err and pt.read_bytes() == b"someone's model"
    assert main(["export", "--model", str(job / "model"), "-o", str(pt), "--overwrite", "-q"]) == 0
    assert pt.stat().st_size > 1000
    report = tmp_path / "eval" / "report.json"
    report.parent.mkdir()
    report.write_text("{}")
    assert main(["eval", "--model", str(job / "model"), "-o", str(report.parent)]) == 2
    assert "--overwrite" in capsys.readouterr().err and report.read_text() == "{}"
    ov = tmp_path / "ov"
    ov.mkdir()
    (ov / "overlay.0005.png").write_bytes(b"x")
    argv = [
        "overlay",
        str(job / "work" / "target.npz"),
        str(SAMPLE),
        "-o",
        str(ov),
        "--frames",
        "5",
        "--no-detect",
    ]
    assert main(argv) == 2
    assert "overlay.0005.png" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "-q"]) == 0
    assert (ov / "overlay.0005.png").stat().st_size > 100
