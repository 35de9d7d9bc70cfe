"""`dvp serve`: preview frames on request with the model kept loaded (a tiny model trained in seconds)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from dvp_engine.cli.main import main
from dvp_engine.io.images import read_image

SAMPLE = Path(__file__).resolve().parents[2] / "dvp_engine" / "data" / "sample" / "wda_kh.mp4"
TINY = ["--size", "64", "--iters", "2", "--batch", "2", "--ngf", "8"]


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serve_job")
    code = main(
        ["reenact", "--source", str(SAMPLE), "--target", str(SAMPLE), "--track-frames", "1-12", "--frames", "12",
         "--no-preview", "-o", str(out), "-q", "--device", "cpu", *TINY]
    )  # fmt: skip
    assert code == 0
    return out


def test_serve_renders_requested_frames_and_keeps_the_model_loaded(
    job: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dvp_engine.network as network
    from dvp_engine.cli import cmd_serve
    from dvp_engine.pipeline import portrait

    loads: list[str] = []
    real = network.Renderer

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, *a: object, **k: object) -> None:
            loads.append("load")
            super().__init__(*a, **k)

    monkeypatch.setattr(network, "Renderer", Counting)  # render_portrait imports it at call time
    portrait._LOADED.clear()
    track = job / "work" / "target.npz"
    out = str(tmp_path / "prev.####.exr")
    lines = [
        {
            "id": 1,
            "model": str(job / "model"),
            "track": str(track),
            "frame": 12,
            "output": out,
            "device": "cpu",
        },
        {"id": 2, "model": str(job / "model"), "track": str(track), "frame": 999, "output": out},
        "not json",
        {
            "id": 3,
            "model": str(job / "model"),
            "track": str(track),
            "frame": 11,
            "output": out,
            "device": "cpu",
        },
        {"quit": True},
        {"id": 4, "model": str(job / "model"), "track": str(track), "frame": 10, "output": out},
    ]
    stdin = io.StringIO("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    stdout = io.StringIO()
    assert cmd_serve.serve(stdin, stdout) == 0
    replies = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert [r["id"] for r in replies] == [1, 2, None, 3]  # nothing after quit
    assert replies[0]["ok"] and replies[3]["ok"]
    assert (
        not replies[1]["ok"]
        and "frame 999" in replies[1]["error"]
        and replies[1]["error"].startswith("dvp: error:")
    )
    assert not replies[2]["ok"] and "bad request" in replies[2]["error"]
    for r, f in ((replies[0], 12), (replies[3], 11)):
        assert r["path"] == str(tmp_path / f"prev.{f:04d}.exr")
        pixels, meta = read_image(r["path"])
        assert meta["dvp:source_frame"] == f and pixels.shape[2] == 4
    assert loads == ["load"]  # the second frame reused the loaded generator
