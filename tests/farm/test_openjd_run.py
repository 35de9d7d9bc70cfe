"""The OpenJD bundle run for real with ``openjd run`` (the reference runner) on the sample clip at the tiny sizes
of tests/pipeline/test_reenact_e2e.py: every step a real ``dvp`` process, the frames equal to ``dvp reenact``'s,
and a render task killed and retried leaves no partial frame and rewrites only its own chunk."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dvp_engine.cli.main import main
from dvp_engine.io.images import read_image

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "dvp_engine" / "data" / "sample" / "wda_kh.mp4"
TINY = ["--size", "64", "--iters", "3", "--batch", "2", "--ngf", "8"]
JOB = ["--source", str(SAMPLE), "--target", str(SAMPLE), "--track-frames", "1-22", "--frames", "19-22",
       "--set", "head.ry=+10@19-22", *TINY]  # fmt: skip
FRAMES = range(19, 23)

pytestmark = pytest.mark.slow


def _openjd() -> str:
    exe = shutil.which("openjd") or str(Path(sys.executable).with_name("openjd"))
    if not Path(exe).exists():
        pytest.skip("openjd-cli is not installed (the farm extra)")
    return exe


def _env(tmp: Path) -> dict[str, str]:
    """A `dvp` on PATH that runs this checkout's engine (on a farm host: the installed console script)."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "dvp"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m dvp_engine.cli.main "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    # the steps train on as many threads as the in-process `dvp reenact` they are compared with: CPU kernels
    # split their sums by thread, so another count gives other (equally valid) float roundings
    import torch

    env["OMP_NUM_THREADS"] = str(torch.get_num_threads())
    return env


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    openjd = _openjd()
    tmp = tmp_path_factory.mktemp("openjd")
    reenact, farm, bundle = tmp / "reenact", tmp / "farm", tmp / "bundle"
    assert main(["reenact", *JOB, "-o", str(reenact), "-q"]) == 0
    assert (
        main(["farm", "openjd", *JOB, "-o", str(bundle), "--job-dir", str(farm), "--chunk", "2", "-q"]) == 0
    )
    res = subprocess.run([openjd, "run", str(bundle / "template.yaml"), "--job-param",
                          f"file://{bundle / 'job_params.json'}"], env=_env(tmp), capture_output=True, text=True,
                         timeout=1200)  # fmt: skip
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "Session ended successfully" in res.stdout
    return {"reenact": reenact, "farm": farm, "bundle": bundle, "tmp": tmp}


def test_openjd_run_renders_the_frames_reenact_renders(runs: dict[str, Path]) -> None:
    farm, reenact = runs["farm"], runs["reenact"]
    assert sorted(p.name for p in (farm / "frames").glob("frame.*.exr")) == [
        f"frame.{f:04d}.exr" for f in FRAMES
    ]
    for f in FRAMES:
        a, meta_a = read_image(reenact / "frames" / f"frame.{f:04d}.exr")
        b, meta_b = read_image(farm / "frames" / f"frame.{f:04d}.exr")
        np.testing.assert_array_equal(
            a, b
        )  # CPU training with the same seed: the same weights, the same pixels
        np.testing.assert_array_equal(meta_a["dvp:parameters"], meta_b["dvp:parameters"])
    from safetensors.numpy import load_file

    ga = load_file(reenact / "model" / "checkpoints" / "iter_00000003" / "generator.safetensors")
    gb = load_file(farm / "model" / "checkpoints" / "iter_00000003" / "generator.safetensors")
    assert ga.keys() == gb.keys() and all(np.array_equal(ga[k], gb[k]) for k in ga)
    assert (farm / "preview.mp4").stat().st_size > 1000 and (farm / "contact_sheet.png").is_file()
    for name in ("target.npz", "reenacted.npz"):
        from dvp_engine.core import FaceTrack

        ta, tb = FaceTrack.load(reenact / "work" / name), FaceTrack.load(farm / "work" / name)
        for ch in ta.channels:
            np.testing.assert_array_equal(ta.channels[ch], tb.channels[ch], err_msg=f"{name} {ch}")


def test_a_killed_render_task_retried_rewrites_only_its_chunk(runs: dict[str, Path]) -> None:
    openjd, farm, bundle = _openjd(), runs["farm"], runs["bundle"]
    frames = farm / "frames"
    expect = {f: read_image(frames / f"frame.{f:04d}.exr")[0] for f in FRAMES}
    before = {p.name: p.stat().st_mtime_ns for p in frames.glob("frame.*.exr")}
    cmd = [openjd, "run", str(bundle / "template.yaml"), "--job-param", f"file://{bundle / 'job_params.json'}",
           "--step", "Render", "--task-param", "Frames=21-22", "--no-run-dependencies"]  # fmt: skip
    env = _env(runs["tmp"])
    # 1. kill the task (its whole process group, as a farm's timeout does) as soon as it starts writing its chunk
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    t0 = time.monotonic()
    mine = ("frame.0021", "frame.0022")
    while proc.poll() is None and time.monotonic() - t0 < 300:
        names = [p.name for p in frames.iterdir()]
        written = any(frames.joinpath(f"{m}.exr").stat().st_mtime_ns != before[f"{m}.exr"] for m in mine)
        if written or any(n.startswith((".frame.0021.", ".frame.0022.")) for n in names):
            break
        time.sleep(0.005)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    # no partial frames: every frame file there is a whole EXR; what a kill leaves is a hidden temporary at most
    for p in frames.glob("frame.*.exr"):
        px, meta = read_image(p)
        assert px.shape == (512, 512, 4) and meta["dvp:source_frame"] == int(p.name[6:10])
    # what a kill mid-write leaves (a temporary never renamed), planted in case the kill came before or after it
    stale = frames / ".frame.0022.killed.tmp.exr"
    stale.write_bytes(b"partial")
    # 2. the retry rewrites its own chunk, cleans its leftovers and touches no other frame
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:]
    after = {p.name: p.stat().st_mtime_ns for p in frames.glob("frame.*.exr")}
    assert (
        after["frame.0019.exr"] == before["frame.0019.exr"]
        and after["frame.0020.exr"] == before["frame.0020.exr"]
    )
    assert (
        after["frame.0021.exr"] != before["frame.0021.exr"]
        and after["frame.0022.exr"] != before["frame.0022.exr"]
    )
    assert not stale.exists() and not [p for p in frames.iterdir() if p.name.startswith(".frame.")]
    for f in FRAMES:
        np.testing.assert_array_equal(read_image(frames / f"frame.{f:04d}.exr")[0], expect[f])
    assert json.loads((bundle / "job_params.json").read_text())["JobDir"] == str(farm)


def test_chunked_tracking_steps_run_under_openjd(runs: dict[str, Path]) -> None:
    """--track-chunk 10: the identity task, three chunk tasks and the merge, run by openjd in dependency order;
    the merged track shares the one-process track's identity and its first chunk bit for bit, but for the gaze (the
    eyes are calibrated over the merged poses: within 0.001 deg); the other chunks' tolerance is
    tests/tracking/test_chunks.py's."""
    from dvp_engine.core import FaceTrack

    tmp = runs["tmp"]
    bundle, job = tmp / "chunked", tmp / "chunked_job"
    assert (
        main(["farm", "openjd", *JOB, "-o", str(bundle), "--job-dir", str(job), "--track-chunk", "10", "-q"])
        == 0
    )
    res = subprocess.run([_openjd(), "run", str(bundle / "template.yaml"), "--job-param",
                          f"file://{bundle / 'job_params.json'}", "--step", "TrackTarget", "--run-dependencies"],
                         env=_env(tmp), capture_output=True, text=True, timeout=900)  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:]
    for step in ("TrackTargetIdentity", "TrackTargetChunks", "TrackTarget"):
        assert f"Running step '{step}'" in res.stdout
    assert sorted(p.name for p in (job / "work" / "target.chunks").iterdir()) == [
        "1-10.npz",
        "11-20.npz",
        "21-22.npz",
    ]
    merged = FaceTrack.load(job / "work" / "target.npz")
    one = FaceTrack.load(runs["reenact"] / "work" / "target.npz")
    np.testing.assert_array_equal(merged.frames, one.frames)
    np.testing.assert_array_equal(merged.identity, one.identity)
    for ch in one.channels:
        if ch.startswith("gaze."):
            # the eyes are calibrated once over the merged poses (the later chunks' differ within
            # tests/tracking/test_chunks.py's tolerance), so the first chunk's gaze moves by float rounding only
            np.testing.assert_allclose(merged.channels[ch][:10], one.channels[ch][:10], atol=1e-3, err_msg=ch)
        else:
            np.testing.assert_array_equal(merged.channels[ch][:10], one.channels[ch][:10], err_msg=ch)
    assert float(np.abs(merged.channel("head.ry") - one.channel("head.ry")).max()) < 0.5
