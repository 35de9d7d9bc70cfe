"""A tiny end-to-end run through `dvp reenact`, `dvp train`, `dvp render` and `dvp export` on the sample clip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dvp_engine.cli.main import main
from dvp_engine.core import FaceTrack
from dvp_engine.io.images import read_image

SAMPLE = Path(__file__).resolve().parents[2] / "dvp_engine" / "data" / "sample" / "wda_kh.mp4"
TINY = ["--size", "64", "--iters", "3", "--batch", "2", "--ngf", "8"]


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("job")
    code = main(
        ["reenact", "--source", str(SAMPLE), "--target", str(SAMPLE), "--track-frames", "1-22", "--frames", "19-22",
         "--set", "head.ry=+10@19-22", "-o", str(out), "-q", *TINY]
    )  # fmt: skip
    assert code == 0
    return out


def test_reenact_writes_exrs_with_metadata_and_matte(job: Path) -> None:
    frames = sorted((job / "frames").glob("frame.*.exr"))
    assert [p.name for p in frames] == [f"frame.00{f}.exr" for f in range(19, 23)]
    px, meta = read_image(frames[0])
    assert px.shape == (512, 512, 4)  # RGB + matte at the plate's resolution
    assert meta["oiio:channelnames"] == ("R", "G", "B", "matte.A")
    assert meta["dvp:synthetic"] == 1 and meta["dvp:source_frame"] == 19
    assert len(meta["dvp:checkpoint_sha256"]) == 64
    alpha = px[..., 3]
    assert 0.02 < alpha.mean() < 0.8 and alpha.max() == pytest.approx(1.0, abs=1e-3)
    assert np.any((alpha > 0.05) & (alpha < 0.95))  # feathered, not a hard edge
    # the edit reached the rendered parameters
    edited = FaceTrack.load(job / "work" / "reenacted.npz")
    target = FaceTrack.load(job / "work" / "target.npz")
    np.testing.assert_allclose(edited.channel("head.ry")[18:], target.channel("head.ry")[18:] + 10, atol=1e-4)
    assert np.deg2rad(edited.channel("head.ry")[18]) == pytest.approx(meta["dvp:parameters"][1], abs=1e-3)
    assert (job / "preview.mp4").stat().st_size > 1000
    assert (job / "contact_sheet.png").is_file()


def test_reenact_resumes_and_redoes_what_changed(job: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["reenact", "--source", str(SAMPLE), "--target", str(SAMPLE), "--track-frames", "1-22",
            "--frames", "19-22", "-o", str(job), *TINY]  # fmt: skip
    before = {p.name: p.stat().st_mtime_ns for p in (job / "frames").glob("*.exr")}
    assert main([*args, "--set", "head.ry=+10@19-22"]) == 0
    assert "steps run: none" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in (job / "frames").glob("*.exr")} == before
    # an interrupted render (one frame lost) is completed without redoing the others
    state = json.loads((job / ".dvp-job.json").read_text())
    del state["done"]["render"]
    (job / ".dvp-job.json").write_text(json.dumps(state))
    (job / "frames" / "frame.0021.exr").unlink()
    assert main([*args, "--set", "head.ry=+10@19-22"]) == 0
    err = capsys.readouterr().err
    assert "steps run: render" in err and "rendered 1 frames (3 were already there)" in err
    # a different edit redoes transfer and render, not tracking or training
    assert main([*args, "--set", "head.ry=+5@19-22"]) == 0
    err = capsys.readouterr().err
    assert "steps run: transfer, render, preview" in err


def test_reenact_refuses_a_foreign_output_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "frame.0001.exr").write_bytes(b"x")
    code = main(["reenact", "--source", str(SAMPLE), "--target", str(SAMPLE), "-o", str(tmp_path), *TINY])
    assert code == 1 and "--overwrite" in capsys.readouterr().err


def test_render_cli_resume_failure_and_export(
    job: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, track = job / "model", job / "work" / "reenacted.npz"
    out = tmp_path / "r" / "f.####.exr"
    import dvp_engine.io.output as output

    real = output.write_frame
    calls = []

    def failing(path: Path, *a: object, **k: object) -> Path:
        calls.append(path)
        if len(calls) == 3:
            raise output.DvpError("disk full", path=path)
        return real(path, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(output, "write_frame", failing)
    assert main(["render", "--model", str(model), "--track", str(track), "-o", str(out), "--frames", "18-22",
                 "--output-size", "network", "--writers", "1"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "frame 20" in err and "f.0020.exr" in err
    assert sorted(p.name for p in out.parent.glob("*.exr")) == ["f.0018.exr", "f.0019.exr"]
    monkeypatch.setattr(output, "write_frame", real)
    assert main(["render", "--model", str(model), "--track", str(track), "-o", str(out), "--frames", "18-22",
                 "--output-size", "network", "--resume"]) == 0  # fmt: skip
    assert "3 frames" in capsys.readouterr().err
    px, _ = read_image(out.parent / "f.0022.exr")
    assert px.shape == (64, 64, 4)
    # TorchScript export: one input in [0, 1], one output in [0, 1]
    pt = tmp_path / "g.pt"
    assert main(["export", "--model", str(model), "-o", str(pt)]) == 0
    m = torch.jit.load(str(pt))
    y = m(torch.full((1, 99, 64, 64), 0.5))
    assert y.shape == (1, 3, 64, 64) and float(y.min()) >= 0 and float(y.max()) <= 1


def test_render_rejects_foreign_checkpoint(
    job: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "model"
    bad.mkdir()
    (bad / "dvp_model.json").write_text(
        (job / "model" / "dvp_model.json").read_text().replace('"size": 64', '"size": 128')
    )
    (bad / "latest.json").write_text((job / "model" / "latest.json").read_text())
    import shutil

    shutil.copytree(job / "model" / "checkpoints", bad / "checkpoints")
    code = main(["render", "--model", str(bad), "--track", str(job / "work" / "reenacted.npz"), "-o",
                 str(tmp_path / "o" / "f.####.exr"), "--frames", "20"])  # fmt: skip
    assert code == 1
    assert "size" in capsys.readouterr().err


def test_eval_reports_model_and_baselines(job: Path, tmp_path: Path) -> None:
    assert (
        main(["eval", "--model", str(job / "model"), "-o", str(tmp_path), "--train-single-frame", "-q"]) == 0
    )
    report = json.loads((tmp_path / "report.json").read_text())
    held = report["held_out_frames"]
    assert held == [20, 21, 22]  # the last 10 % (rounded up) of the 22 tracked frames
    for key in ("model", "nearest_neighbour", "single_frame"):
        m = report[key]
        assert m["frames"] == 3 and 0 < m["psnr"] < 100 and -1 <= m["ssim"] <= 1 and m["l1"] >= 0
    # retrieval returns training frames only, never the held-out ones
    assert all(f not in held for f in report["nearest_neighbour"]["retrieved_frames"])
    assert report["contact_sheet_rows"][-1] == "ground truth"
    assert (tmp_path / "contact_sheet.png").is_file()
    # issue 12: every method has region, detail, identity and controllability blocks
    for key in ("model", "nearest_neighbour", "single_frame", "mean_frame"):
        m = report[key]
        for region in ("face", "mouth", "eyes"):
            assert 0 < m[region]["psnr"] < 100 and m[region]["l1"] >= 0, (key, region)
        assert m["sharpness"] > 0 and -1 <= m["hf_fidelity"] <= 1
        assert m["identity"]["frames"] == 3
        assert key in report["summary"]
    assert report["mean_frame"]["controllability"] is None
    nn_ctl = report["nearest_neighbour"]["controllability"]
    assert nn_ctl["no_face"] == 0 and nn_ctl["rotation_deg"] >= 0
    # a 3-iteration model draws no face: its frames are counted, not a crash
    ctl = report["model"]["controllability"]
    assert ctl["frames"] == 3 and 0 <= ctl["no_face"] <= 3
    floor = report["retrack_floor"]  # the ground truth re-tracked: the re-tracker's own error
    assert floor["no_face"] == 0 and floor["rotation_deg"] < 5.0, floor
    # the face boxes lie inside the 64 px frames and around the face (not the whole frame)
    for x0, y0, x1, y1 in report["face_boxes"]:
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64 and 10 < x1 - x0 < 60
    sheet, _ = read_image(tmp_path / "contact_sheet.png")
    assert sheet.shape[0] == 6 * 66 - 2  # input, model, single frame, retrieval, mean frame, ground truth
    assert sheet.shape[1] == 3 * 130 - 2  # three held-out frames, each 64 px + its 64 px face crop


def test_eval_cross_reenactment_reports_identity_and_controllability(job: Path, tmp_path: Path) -> None:
    edited = job / "work" / "reenacted.npz"
    code = main(["eval", "--model", str(job / "model"), "--track", str(edited), "--frames", "19-22",
                 "-o", str(tmp_path), "-q"])  # fmt: skip
    assert code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["mode"] == "cross_reenactment" and report["frames"] == [19, 20, 21, 22]
    assert "psnr" not in report["model"]  # no ground truth
    assert report["identity_matches_target"] is True
    nn = report["nearest_neighbour"]
    assert nn["identity"]["distance"] < 0.6  # retrieval shows the actor's own frames
    assert nn["controllability"]["rotation_axes_deg"]["head.ry"] > 5.0  # the +10 degree turn was never filmed
    assert report["model"]["controllability"]["frames"] == 4
    assert 0 <= report["reference_spread"] < 0.6
    assert (tmp_path / "contact_sheet.png").is_file()


def test_eval_bad_inputs_name_the_problem(
    job: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    model = tmp_path / "model"
    shutil.copytree(job / "model", model, ignore=shutil.ignore_patterns("cache"))
    info_path = model / "dvp_model.json"
    info = json.loads(info_path.read_text())
    # the track is gone
    info["track"] = str(tmp_path / "gone.npz")
    info_path.write_text(json.dumps(info))
    assert main(["eval", "--model", str(model), "-o", str(tmp_path / "e1"), "-q"]) == 1
    assert "gone.npz" in capsys.readouterr().err
    # the track was replaced by one of another identity
    target = FaceTrack.load(job / "work" / "target.npz")
    other = target.replace(identity=target.identity + 0.5)
    other.save(tmp_path / "other.npz")
    info["track"] = str(tmp_path / "other.npz")
    info_path.write_text(json.dumps(info))
    assert main(["eval", "--model", str(model), "-o", str(tmp_path / "e2"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "other.npz" in err and "does not match" in err and "identity" in err
    # a clip shorter than 20 frames
    short = target.select([int(f) for f in target.frames[:15]])
    short.save(tmp_path / "short.npz")
    info["track"] = str(tmp_path / "short.npz")
    info_path.write_text(json.dumps(info))
    assert main(["eval", "--model", str(model), "-o", str(tmp_path / "e3"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "short.npz" in err and "15 frames" in err and "at least 20" in err
    assert not (tmp_path / "e3" / "report.json").exists()
    # cross-reenactment with a track of another plate size, and with a track that is not there
    small = target.replace(width=256, height=256)
    small.save(tmp_path / "small.npz")
    args = ["eval", "--model", str(job / "model"), "-o", str(tmp_path / "e4"), "-q", "--track"]
    assert main([*args, str(tmp_path / "small.npz")]) == 1
    err = capsys.readouterr().err
    assert "small.npz" in err and "does not hold the model's crop" in err
    assert main([*args, str(tmp_path / "nothing.npz")]) == 1
    assert "nothing.npz" in capsys.readouterr().err


def test_train_with_a_shorter_video_names_the_missing_frames(
    job: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    short = tmp_path / "short.####.png"
    assert main(["convert", str(SAMPLE), "-o", str(short), "--frames", "1-5", "-q"]) == 0
    code = main(["train", "--track", str(job / "work" / "target.npz"), "--frames-from", str(short), "-o",
                 str(tmp_path / "m"), *TINY])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "short.####.png" in err and "6-22" in err


def test_render_places_the_crop_in_a_wider_plate(job: Path, tmp_path: Path) -> None:
    """A model whose crop sits at x0 = 64 of a 640 x 512 plate: the EXR's data window is that crop inside a
    display window of the plate's size; --output-size crop writes the same pixels unplaced; PNG is padded."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(job / "model", model)
    info = json.loads((model / "dvp_model.json").read_text())
    assert info["framing"] == {"x0": 0, "y0": 0, "side": 512, "size": 64}
    info["framing"]["x0"] = 64
    (model / "dvp_model.json").write_text(json.dumps(info))
    track = FaceTrack.load(job / "work" / "reenacted.npz")
    fx, fy, cx, cy = track.intrinsics
    wide = track.replace(width=640, intrinsics=(fx, fy, cx + 64, cy))  # the same view, 64 px more each side
    wide_path = wide.save(tmp_path / "wide.npz")
    placed, crop, png = (
        tmp_path / "p" / "f.####.exr",
        tmp_path / "c" / "f.####.exr",
        tmp_path / "g" / "f.####.png",
    )
    for pattern, size in ((placed, "plate"), (crop, "crop"), (png, "plate")):
        assert main(["render", "--model", str(model), "--track", str(wide_path), "-o", str(pattern),
                     "--frames", "21", "--output-size", size, "-q"]) == 0  # fmt: skip
    full, meta = read_image(tmp_path / "p" / "f.0021.exr")
    assert full.shape == (512, 640, 4) and meta["dvp:data_window"] == (64, 0, 512, 512)
    assert np.all(full[:, :64] == 0) and np.all(full[:, 576:] == 0)
    alone, meta_c = read_image(tmp_path / "c" / "f.0021.exr")
    assert alone.shape == (512, 512, 4) and "dvp:data_window" not in meta_c
    np.testing.assert_array_equal(full[:, 64:576], alone)
    assert list(meta["dvp:crop"]) == [64, 0, 512]
    padded, _ = read_image(tmp_path / "g" / "f.0021.png")
    assert padded.shape[:2] == (512, 640) and np.all(padded[:, :64] == 0)  # RGB + matte, zero outside
    assert padded[:, 64:576].mean() > 0.05


def test_parallel_writers_name_the_failing_frame_and_keep_the_others(
    job: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dvp_engine.io.output as output

    real = output.write_frame

    def failing(path: Path, *a: object, **k: object) -> Path:
        if Path(path).name == "f.0020.exr":
            raise output.DvpError("disk full", path=path)
        return real(path, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(output, "write_frame", failing)
    out = tmp_path / "r" / "f.####.exr"
    assert main(["render", "--model", str(job / "model"), "--track", str(job / "work" / "reenacted.npz"), "-o",
                 str(out), "--frames", "14-22", "--output-size", "network", "--writers", "3"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "frame 20" in err and "f.0020.exr" in err and "disk full" in err
    names = sorted(p.name for p in out.parent.iterdir())
    assert {f"f.00{f}.exr" for f in range(14, 20)} <= set(names)  # every frame before the failure
    assert "f.0020.exr" not in names and all(n.startswith("f.00") and n.endswith(".exr") for n in names)
    for n in names:  # whatever else was written is a complete frame, not a partial file
        px, meta = read_image(out.parent / n)
        assert px.shape == (64, 64, 4) and meta["dvp:source_frame"] == int(n[2:6])
    # the parallel writers produce the same pixels as the in-order writer
    monkeypatch.setattr(output, "write_frame", real)
    serial = tmp_path / "s" / "f.####.exr"
    for pattern, writers in ((serial, "1"), (out, "3")):
        assert main(["render", "--model", str(job / "model"), "--track", str(job / "work" / "reenacted.npz"),
                     "-o", str(pattern), "--frames", "14-22", "--output-size", "network", "--writers", writers,
                     "--overwrite", "-q"]) == 0  # fmt: skip
    for f in range(14, 23):
        a, _ = read_image(serial.parent / f"f.00{f}.exr")
        b, _ = read_image(out.parent / f"f.00{f}.exr")
        np.testing.assert_array_equal(a, b)


def test_reenact_on_a_wide_plate_frames_the_head_and_places_the_result(tmp_path: Path) -> None:
    """A 912 x 512 plate with the actor off-centre: the model's crop follows the head (not the centred
    square), the EXRs are placed in the plate, and the preview shows the same crop of the source."""
    from dvp_engine.io.video import read_frames, write_video

    frames = [rgb for _, rgb in read_frames(SAMPLE, "1-12")]

    def wide():  # noqa: ANN202
        for f in frames:
            out = np.full((512, 912, 3), 0.2, np.float32)
            out[:, 100:612] = f  # the sample clip's 512 square, 100 px from the left edge
            yield out

    plate = write_video(tmp_path / "wide.mp4", wide(), 25)
    job = tmp_path / "job"
    assert main(["reenact", "--source", str(plate), "--target", str(plate), "--frames", "11-12", "-o", str(job),
                 "-q", *TINY]) == 0  # fmt: skip
    framing = json.loads((job / "model" / "dvp_model.json").read_text())["framing"]
    centred = (912 - 512) // 2
    assert framing["side"] == 512 and abs(framing["x0"] - 100) < abs(framing["x0"] - centred)
    px, meta = read_image(job / "frames" / "frame.0011.exr")
    assert px.shape == (512, 912, 4) and meta["dvp:data_window"] == (framing["x0"], 0, 512, 512)
    assert (job / "preview.mp4").stat().st_size > 1000


def test_render_feeds_the_network_the_11_frames_ending_at_each_frame(
    job: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The volumes render_portrait builds (batched, each conditioning frame converted once) equal
    stack_window over the whole track's conditioning, the first frames padded by repeating frame 0."""
    from dvp_engine.network import Renderer
    from dvp_engine.network.data import stack_window
    from dvp_engine.pipeline.portrait import ModelInfo, conditioning_frames, render_portrait

    track = FaceTrack.load(job / "work" / "reenacted.npz")
    info = ModelInfo.load(job / "model")
    seen: list[torch.Tensor] = []
    real = Renderer.render

    def spy(self: Renderer, volumes: torch.Tensor, on_device: bool = False) -> torch.Tensor:
        seen.append(volumes.detach().cpu().clone())
        return real(self, volumes, on_device)

    monkeypatch.setattr(Renderer, "render", spy)
    wanted = [1, 2, 3, 15, 22]
    cond, _ = conditioning_frames(track, info.framing)
    expect = torch.stack([stack_window(cond, track.index_of(f), info.nw) for f in wanted])
    # in one chunk, and a chunk (one batch of 2) at a time: the conditioning of each chunk is rendered apart
    for n, per_chunk in enumerate((256, 1)):
        seen.clear()
        render_portrait(job / "model", track, tmp_path / f"o{n}" / "f.####.exr", frames=wanted, batch=2, writers=1,
                        frames_per_chunk=per_chunk)  # fmt: skip
        got = torch.cat(seen)
        assert got.shape == expect.shape == (5, 9 * info.nw, 64, 64)
        torch.testing.assert_close(got, expect, rtol=0, atol=1e-6)
    for f in wanted:  # and the same frames
        a, _ = read_image(tmp_path / "o0" / f"f.{f:04d}.exr")
        b, _ = read_image(tmp_path / "o1" / f"f.{f:04d}.exr")
        np.testing.assert_array_equal(a, b)


def test_fast_arch_refuses_a_clip_too_short_for_its_background_and_paper_trains(
    job: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    track = FaceTrack.load(job / "work" / "target.npz")
    short = tmp_path / "short.npz"
    track.select([int(f) for f in track.frames[:8]]).save(short)  # 7 training frames, 1 held out
    args = ["train", "--track", str(short), "--frames-from", str(SAMPLE), *TINY]
    assert main([*args, "-o", str(tmp_path / "fast")]) == 1
    err = capsys.readouterr().err
    assert (
        "short.npz" in err
        and "too short" in err
        and "7 tracked training frames" in err
        and "--arch paper" in err
    )
    assert main([*args, "-o", str(tmp_path / "paper"), "--arch", "paper"]) == 0
    state = json.loads((tmp_path / "paper" / "latest.json").read_text())
    assert (
        json.loads((tmp_path / "paper" / state["checkpoint"] / "state.json").read_text())["config"]["arch"]
        == "paper"
    )
    # a model folder of one architecture cannot be resumed as the other (the job's model is the default, fast)
    model = tmp_path / "model"
    shutil.copytree(job / "model", model)
    code = main(["train", "--track", str(job / "work" / "target.npz"), "--frames-from", str(SAMPLE), *TINY,
                 "-o", str(model), "--resume", "--arch", "paper"])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "'fast' architecture" in err and "'paper' was asked for" in err


def test_dvp_train_time_limit_stops_early_and_resume_continues(
    job: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dvp train --time-limit MINUTES`: stops after that much training (checkpointed), --resume continues to
    --iters; a limit that is not a positive number is a usage error."""
    args = ["train", "--track", str(job / "work" / "target.npz"), "--frames-from", str(SAMPLE),
            "--size", "64", "--batch", "2", "--ngf", "8", "--preview-every", "0", "-o", str(tmp_path / "m")]  # fmt: skip
    assert main([*args, "--iters", "100000", "--time-limit", "0.01"]) == 0  # 0.6 s of training
    state = json.loads((tmp_path / "m" / "latest.json").read_text())
    reached = int(state["iteration"])
    assert 1 <= reached < 100000
    assert main([*args, "--iters", str(reached + 2), "--resume"]) == 0
    assert int(json.loads((tmp_path / "m" / "latest.json").read_text())["iteration"]) == reached + 2
    capsys.readouterr()
    for bad in ("0", "-1", "nan"):
        with pytest.raises(SystemExit) as exc:
            main([*args, "--iters", "5", "--time-limit", bad, "--overwrite"])
        assert exc.value.code == 2 and "--time-limit" in capsys.readouterr().err
