"""The job state (``.dvp-job.json``) keeps every process's finished steps, and the hash cache every process's
hashes, when several update them at once (two farm tasks of one job finishing together, two trainings
preparing other sizes in one cache folder)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from dvp_engine.pipeline.steps import STATE_NAME, JobState

REPO = Path(__file__).resolve().parents[2]

#: Waits for ``go``, then runs ``steps`` steps of its own (``w<i>.s<k>``) into the shared job folder.
WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from dvp_engine.pipeline import Step, run_steps
    folder, go, worker, steps = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    while not go.exists():
        time.sleep(0.001)

    def make(out):
        def run():
            time.sleep(0.002)
            out.write_text("done")
        return run

    src = folder / f"in.{worker}.txt"  # an input file of its own: each worker adds its hash to the cache
    src.write_text(worker)
    todo = []
    for k in range(steps):
        out = folder / f"out.{worker}.{k}"
        todo.append(Step(f"{worker}.s{k}", make(out), [out], {"src": src, "k": k}))
    assert run_steps(todo, folder) == [s.name for s in todo]
    """
)


def test_concurrent_processes_keep_every_finished_step(tmp_path: Path) -> None:
    """Eight processes, 25 steps each, all into one job folder at once: all 200 steps are recorded."""
    n, steps = 8, 25
    go = tmp_path / "go"
    job = tmp_path / "job"
    job.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(job), str(go), f"w{i}", str(steps)], env=env)
        for i in range(n)
    ]
    time.sleep(1.0)  # let them all import before they start together
    go.write_text("go")
    assert [p.wait(120) for p in procs] == [0] * n
    done = json.loads((job / STATE_NAME).read_text())["done"]
    want = {f"w{i}.s{k}" for i in range(n) for k in range(steps)}
    assert set(done) == want, f"lost {len(want - set(done))} of {len(want)} updates"
    assert all(len(v["fingerprint"]) == 16 for v in done.values())
    assert JobState.load(job).done == done
    hashes = json.loads((job / ".dvp-hashes.json").read_text())
    assert sorted(Path(k).name for k in hashes) == sorted(f"in.w{i}.txt" for i in range(n))  # all kept
    # nothing left behind but the outputs, the state, the hash cache
    assert sorted(p.name for p in job.iterdir() if p.name.startswith(".")) == [".dvp-hashes.json", STATE_NAME]
