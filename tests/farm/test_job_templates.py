"""`dvp farm openjd|opencue`: the bundle validates with openjd-model, the outline is built with real pyoutline
objects, and bad input (relative paths, an existing bundle) is refused."""

from __future__ import annotations

import json
import xml.etree.ElementTree as Et
from pathlib import Path

import pytest
import yaml

from dvp_engine.cli.main import main

SAMPLE = Path(__file__).resolve().parents[2] / "dvp_engine" / "data" / "sample" / "wda_kh.mp4"
TINY = ["--size", "64", "--iters", "3", "--batch", "2", "--ngf", "8"]


def _farm(fmt: str, out: Path, job: Path, *extra: str, source: Path = SAMPLE, frames: str = "15-22") -> int:
    return main(["farm", fmt, "-o", str(out), "--source", str(source), "--target", str(SAMPLE), "--job-dir", str(job),
                 "--track-frames", "1-22", "--frames", frames, "-q", *TINY, *extra])  # fmt: skip


@pytest.fixture()
def other_source(tmp_path: Path) -> Path:
    """A second actor: the first 12 frames of the sample clip at 25 fps, as another movie file."""
    from dvp_engine.io.video import read_frames, write_video

    return write_video(tmp_path / "actor.mp4", (rgb for _, rgb in read_frames(SAMPLE, "1-12")), 25)


def test_bundle_validates_and_has_the_step_graph(tmp_path: Path, other_source: Path) -> None:
    from openjd.model import create_job, decode_job_template, preprocess_job_parameters

    bundle = tmp_path / "bundle"
    assert _farm("openjd", bundle, tmp_path / "job", "--chunk", "3", "--track-chunk", "10", "--train-gpus", "4",
                 source=other_source, frames="3-11") == 0  # fmt: skip
    tpl = yaml.safe_load((bundle / "template.yaml").read_text())
    job_tpl = decode_job_template(template=tpl)  # raises if the schema does not validate
    values = json.loads((bundle / "job_params.json").read_text())
    deadline = yaml.safe_load((bundle / "parameter_values.yaml").read_text())
    assert {v["name"]: v["value"] for v in deadline["parameterValues"]} == values
    assert values == {"Source": str(other_source), "Target": str(SAMPLE), "JobDir": str(tmp_path / "job")}
    params = preprocess_job_parameters(job_template=job_tpl, job_parameter_values=values,
                                       job_template_dir=bundle, current_working_dir=bundle)  # fmt: skip
    job = create_job(job_template=job_tpl, job_parameter_values=params)
    steps = {s.name: s for s in job.steps}
    assert list(steps) == [
        "TrackTargetIdentity", "TrackTargetChunks", "TrackTarget", "TrackSourceIdentity", "TrackSourceChunks",
        "TrackSource", "Train", "Transfer", "Render", "Preview",
    ]  # fmt: skip
    deps = {s.name: sorted(d.dependsOn for d in (s.dependencies or [])) for s in job.steps}
    assert deps["TrackTargetChunks"] == ["TrackTargetIdentity"] and deps["TrackTarget"] == [
        "TrackTargetChunks"
    ]
    assert deps["Train"] == ["TrackTarget"] and deps["Transfer"] == ["TrackSource", "TrackTarget"]
    assert deps["Render"] == ["Train", "Transfer"] and deps["Preview"] == ["Render"]
    raw = {s["name"]: s for s in tpl["steps"]}
    # paths are PATH parameters; chunks are the Frames task parameter
    assert all(p["type"] == "PATH" for p in tpl["parameterDefinitions"])
    assert {p["name"]: p.get("dataFlow") for p in tpl["parameterDefinitions"]}["JobDir"] == "OUT"
    chunks = raw["TrackTargetChunks"]["parameterSpace"]["taskParameterDefinitions"][0]
    assert chunks["range"] == ["1-10", "11-20", "21-22"]
    assert raw["TrackSourceChunks"]["parameterSpace"]["taskParameterDefinitions"][0]["range"] == [
        "1-10",
        "11-12",
    ]
    render = raw["Render"]["parameterSpace"]["taskParameterDefinitions"][0]
    assert render["range"] == ["3-5", "6-8", "9-11"]
    # the merge lists exactly the chunk files the chunk tasks write
    merge = raw["TrackTarget"]["script"]["actions"]["onRun"]["args"]
    assert merge[:2] == ["track", "--merge"]
    assert [a for a in merge if a.endswith(".npz")][:-1] == [
        "{{Param.JobDir}}/work/target.chunks/" + c + ".npz" for c in chunks["range"]
    ]
    # training: a GPU host, DDP over its 4 GPUs with torchrun
    train = raw["Train"]
    amounts = {a["name"]: a["min"] for a in train["hostRequirements"]["amounts"]}
    assert amounts["amount.worker.gpu"] == 4 and amounts["amount.worker.memory"] >= 8192
    run = train["script"]["actions"]["onRun"]
    assert run["command"] == "torchrun" and "--nproc-per-node=4" in run["args"]
    assert run["args"][run["args"].index("-m") + 1] == "dvp_engine.cli.main" and "--resume" in run["args"]
    assert "amount.worker.gpu" not in {a["name"] for a in raw["Transfer"]["hostRequirements"]["amounts"]}


def test_render_chunks_follow_the_frames_reenact_renders(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    assert _farm("openjd", bundle, tmp_path / "job", "--chunk", "3") == 0
    tpl = yaml.safe_load((bundle / "template.yaml").read_text())
    raw = {s["name"]: s for s in tpl["steps"]}
    assert list(raw) == ["TrackTarget", "Train", "Transfer", "Render", "Preview"]  # one video: tracked once
    assert raw["Render"]["parameterSpace"]["taskParameterDefinitions"][0]["range"] == [
        "15-17",
        "18-20",
        "21-22",
    ]
    args = raw["Render"]["script"]["actions"]["onRun"]["args"]
    assert args[args.index("--frames") + 1] == "{{Task.Param.Frames}}" and "--overwrite" in args
    assert args[args.index("-o") + 1] == "{{Param.JobDir}}/frames/frame.####.exr"
    # no GPU requirements on a CPU farm
    assert _farm("openjd", tmp_path / "cpu", tmp_path / "job", "--no-gpu") == 0
    cpu = yaml.safe_load((tmp_path / "cpu" / "template.yaml").read_text())
    assert not any(
        a["name"] == "amount.worker.gpu" for s in cpu["steps"] for a in s["hostRequirements"]["amounts"]
    )


def test_time_limit_reaches_the_train_task_as_dvp_train_reads_it(tmp_path: Path) -> None:
    from dvp_engine.cli.main import build_parser

    assert _farm("openjd", tmp_path / "b", tmp_path / "job", "--time-limit", "12.5") == 0
    tpl = yaml.safe_load((tmp_path / "b" / "template.yaml").read_text())
    args = {s["name"]: s for s in tpl["steps"]}["Train"]["script"]["actions"]["onRun"]["args"]
    parsed = build_parser().parse_args(args)
    assert parsed.command == "train" and parsed.time_limit == 12.5 and parsed.iters == 3
    # without it the task trains to --iters
    assert _farm("openjd", tmp_path / "c", tmp_path / "job") == 0
    tpl = yaml.safe_load((tmp_path / "c" / "template.yaml").read_text())
    args = {s["name"]: s for s in tpl["steps"]}["Train"]["script"]["actions"]["onRun"]["args"]
    assert "--time-limit" not in args and build_parser().parse_args(args).time_limit is None
    # and a bad value is refused when the job is made, not on the farm
    with pytest.raises(SystemExit) as exc:
        _farm("openjd", tmp_path / "d", tmp_path / "job", "--time-limit", "0")
    assert exc.value.code == 2 and not (tmp_path / "d").exists()


def test_bad_input_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "bundle"
    assert _farm("openjd", bundle, tmp_path / "job") == 0
    before = (bundle / "template.yaml").read_text()
    # an existing bundle is kept without --overwrite
    assert _farm("openjd", bundle, tmp_path / "job", "--chunk", "2") == 1
    assert "--overwrite" in capsys.readouterr().err and (bundle / "template.yaml").read_text() == before
    assert _farm("openjd", bundle, tmp_path / "job", "--chunk", "2", "--overwrite") == 0
    assert (bundle / "template.yaml").read_text() != before
    # relative paths: farm hosts do not share the working directory
    monkeypatch.chdir(SAMPLE.parent)
    assert _farm("openjd", tmp_path / "b2", Path("job")) == 2
    err = capsys.readouterr().err
    assert "job: --job-dir is a relative path" in err and not (tmp_path / "b2").exists()
    assert (
        _farm("opencue", tmp_path / "j.xml", tmp_path / "job", source=Path("wda_kh.mp4"), frames="3-11") == 2
    )
    assert "wda_kh.mp4: --source is a relative path" in capsys.readouterr().err
    # frames the job does not have
    assert main(["farm", "openjd", "-o", str(tmp_path / "b3"), "--source", str(SAMPLE), "--target", str(SAMPLE),
                 "--job-dir", str(tmp_path / "job"), "--track-frames", "1-22", "--frames", "50-60"]) == 1  # fmt: skip
    assert "none of the frames 50-60" in capsys.readouterr().err


def test_opencue_outline_layers_dependencies_and_ranges(tmp_path: Path, other_source: Path) -> None:
    import outline
    from outline.modules.shell import Shell

    from dvp_engine.farm.job import FarmSettings, describe_job
    from dvp_engine.farm.opencue import build_outline

    job = describe_job(FarmSettings(source=str(other_source), target=str(SAMPLE), out=tmp_path / "job",
                                    track_frames="1-22", frames="3-11", chunk=4, track_chunk=10, train_gpus=2,
                                    size=64, iters=3, batch=2, ngf=8))  # fmt: skip
    ol = build_outline(job)
    assert isinstance(ol, outline.Outline)
    layers = {layer.get_name(): layer for layer in ol.get_layers()}
    assert all(isinstance(layer, Shell) for layer in layers.values())
    assert list(layers) == [
        "track_target_identity", "track_target_chunks", "track_target", "track_source_identity",
        "track_source_chunks", "track_source", "train", "transfer", "render", "preview",
    ]  # fmt: skip
    assert layers["render"].get_frame_range() == "3-11" and layers["render"].get_chunk_size() == 4
    assert layers["track_target_chunks"].get_frame_range() == "1-22"
    assert layers["track_target_chunks"].get_chunk_size() == 10
    assert layers["train"].get_frame_range() == "1" and layers["train"].get_arg("gpus") == 2
    on = {
        n: sorted(d.get_depend_on_layer().get_name() for d in layer.get_depends())
        for n, layer in layers.items()
    }
    assert on["render"] == ["train", "transfer"] and on["transfer"] == ["track_source", "track_target"]
    assert on["track_target"] == ["track_target_chunks"] and on["preview"] == ["render"]
    # the spec the outline submits (written without a Cuebot)
    spec = tmp_path / "job.xml"
    assert _farm("opencue", spec, tmp_path / "job", "--chunk", "4", "--track-chunk", "10", "--train-gpus", "2",
                 source=other_source, frames="3-11") == 0  # fmt: skip
    root = Et.parse(spec).getroot()
    xl = {e.get("name"): e for e in root.iter("layer")}
    assert xl["render"].findtext("range") == "3-11" and xl["render"].findtext("chunk") == "4"
    cmd = xl["render"].findtext("cmd") or ""
    assert cmd.startswith("dvp render --model ") and "--frames '#FRAME_START#-#FRAME_END#'" in cmd
    assert f"{tmp_path}/job/frames/frame.####.exr" in cmd and "--overwrite" in cmd
    assert xl["train"].findtext("gpus") == "2" and "torchrun" in (xl["train"].findtext("cmd") or "")
    chunk_cmd = xl["track_target_chunks"].findtext("cmd") or ""
    assert "target.chunks/#FRAME_START#-#FRAME_END#.npz" in chunk_cmd
    merge_cmd = xl["track_target"].findtext("cmd") or ""
    assert "target.chunks/1-10.npz" in merge_cmd and "target.chunks/21-22.npz" in merge_cmd
    deps = {(d.findtext("deplayer"), d.findtext("onlayer")) for d in root.iter("depend")}
    assert (
        ("render", "train") in deps and ("render", "transfer") in deps and ("train", "track_target") in deps
    )
    assert all(d.get("type") == "LAYER_ON_LAYER" for d in root.iter("depend"))
