"""benchmarks/bench_fidelity.py end to end on one clip at the tiny budget (issue 12)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_fidelity", REPO / "benchmarks" / "bench_fidelity.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_fidelity"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_bench_tracks_trains_and_evaluates_one_clip(tmp_path: Path) -> None:
    bench = _bench()
    out = tmp_path / "fidelity.json"
    code = bench.main(["--budget", "tiny", "--clips", "sample", "--frames", "1-22", "--work", str(tmp_path / "w"),
                       "--out", str(out), "--no-controllability"])  # fmt: skip
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["machine"]["cpus"] >= 1 and doc["machine"]["torch"]
    (row,) = doc["rows"]
    assert row["clip"] == "sample" and row["budget"] == "tiny" and row["frames"] == 22
    assert row["train_args"][:8] == ["--size", "64", "--ngf", "8", "--batch", "2", "--iters", "3"]
    assert set(row["seconds"]) == {"track", "train", "eval"}
    assert all(isinstance(v, float) and v > 0 for v in row["seconds"].values())
    summ = row["summary"]
    for method in ("model", "nearest_neighbour", "mean_frame"):
        assert 0 < summ[method]["psnr"] < 100 and summ[method]["face_psnr"] > 0
    assert Path(row["report"]).is_file() and Path(row["contact_sheet"]).is_file()
    # a time-bounded budget stops at its time limit, short of its iterations; its iterations cap a long limit
    from dvp_engine.pipeline.budgets import TrainBudget

    track = tmp_path / "w" / "sample_1-22" / "track.npz"
    quick = TrainBudget("quick-timed", size=64, ngf=8, batch=2, iters=100000, seconds=1.0)
    assert quick.dvp_train_args()[-2:] == ["--time-limit", f"{1 / 60:g}"]
    trained = bench.train(track, bench.SAMPLE, tmp_path / "timed", quick, [], "cpu")
    assert trained["stopped_by_time"] and 1 <= trained["iters"] < 100000 and trained["ms_per_iter"] > 0
    capped = TrainBudget("capped", size=64, ngf=8, batch=2, iters=3, seconds=600.0)
    trained = bench.train(track, bench.SAMPLE, tmp_path / "capped", capped, [], "cpu")
    assert not trained["stopped_by_time"] and trained["iters"] == 3


def test_bench_refuses_a_clip_shorter_than_20_frames(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = _bench()
    code = bench.main(["--budget", "tiny", "--clips", "sample", "--frames", "1-12", "--work", str(tmp_path),
                       "--out", str(tmp_path / "x.json")])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "wda_kh.mp4" in err and "12 frames" in err and "at least 20" in err
    assert not (tmp_path / "x.json").exists()


def test_the_demo_and_the_bench_read_one_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make demo` trains exactly the bench's `demo` budget: tools/demo.py passes DEMO's arguments to dvp."""
    from dvp_engine.pipeline.budgets import BUDGETS, DEMO

    spec = importlib.util.spec_from_file_location("demo_tool", REPO / "tools" / "demo.py")
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    seen: list[list[str]] = []
    monkeypatch.setattr(demo, "dvp", lambda argv: seen.append(argv) or 1)
    monkeypatch.setattr(sys, "argv", ["demo.py", "--out", str(tmp_path)])
    assert demo.main() == 1
    (argv,) = seen
    want = DEMO.dvp_train_args()
    start = argv.index("--size")
    assert argv[start : start + len(want)] == want
    assert BUDGETS["demo"] is DEMO
