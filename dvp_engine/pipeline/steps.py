"""A tiny resumable step runner.

Each :class:`Step` names its outputs and a fingerprint of its inputs (settings, and files: their contents up
to 16 MB, size and modification time beyond). The job state (``<job folder>/.dvp-job.json``, written atomically after every step) records the
fingerprint each finished step ran with. A rerun skips a step whose outputs all exist and whose fingerprint is
unchanged, so an interrupted job continues where it stopped and a changed input redoes only what depends on it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvp_engine.core.atomic import sha256_file, write_text_atomic

log = logging.getLogger("dvp")

STATE_NAME = ".dvp-job.json"
SMALL_FILE = 16 << 20
"""Input files up to this size are fingerprinted by content, larger ones by size and modification time."""


def _describe(value: Any) -> Any:
    if isinstance(value, Path):
        if value.is_file():
            st = value.stat()
            if st.st_size <= SMALL_FILE:  # small files by content: rewriting the same bytes changes nothing
                return {"path": str(value), "sha256": sha256_file(value)}
            return {"path": str(value), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        if value.is_dir():
            files = sorted(p for p in value.rglob("*") if p.is_file() and not p.name.startswith("."))
            return {"dir": str(value), "files": [_describe(p) for p in files]}
        return {"missing": str(value)}
    if isinstance(value, Mapping):
        return {str(k): _describe(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_describe(v) for v in value]
    return value


def fingerprint(inputs: Mapping[str, Any]) -> str:
    """A hash of settings and input files (``Path`` values: small files by content, large by size and mtime)."""
    text = json.dumps(_describe(inputs), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Step:
    """One step of a job: ``run()`` must create every path in ``outputs``."""

    name: str
    run: Callable[[], None]
    outputs: list[Path]
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class JobState:
    """Finished steps of a job folder and the fingerprints they ran with."""

    folder: Path
    done: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.folder / STATE_NAME

    @classmethod
    def load(cls, folder: Path) -> JobState:
        path = folder / STATE_NAME
        if path.is_file():
            try:
                data = json.loads(path.read_text())
                return cls(folder, dict(data.get("done", {})))
            except (json.JSONDecodeError, OSError):
                log.warning("job state %s is unreadable; starting the job afresh", path)
        return cls(folder)

    def save(self) -> None:
        write_text_atomic(self.path, json.dumps({"done": self.done}, indent=1, sort_keys=True) + "\n")


def run_steps(steps: Iterable[Step], folder: Path, *, force: bool = False) -> list[str]:
    """Run the steps in order, skipping finished ones; returns the names of the steps that ran."""
    folder.mkdir(parents=True, exist_ok=True)
    state = JobState.load(folder)
    ran: list[str] = []
    for step in steps:
        fp = fingerprint(step.inputs)
        prev = state.done.get(step.name)
        if not force and prev and prev.get("fingerprint") == fp and all(p.exists() for p in step.outputs):
            log.info("step %s: up to date, skipped", step.name)
            continue
        log.info("step %s: running", step.name)
        t0 = time.perf_counter()
        step.run()
        missing = [str(p) for p in step.outputs if not p.exists()]
        if missing:
            raise RuntimeError(f"step {step.name} did not write {', '.join(missing)}")
        state.done[step.name] = {"fingerprint": fp, "seconds": round(time.perf_counter() - t0, 3)}
        state.save()
        ran.append(step.name)
    return ran
