"""A tiny resumable step runner.

Each :class:`Step` names its outputs and a fingerprint of its inputs: settings as they are, and every input
by content. A file is its size and SHA-256; an image-sequence pattern (``plate/t.####.png``) is every frame on
disk (number, size, SHA-256), so a regraded, added or missing frame changes it; a folder is all its files; a
callable is called when the step's turn comes and its result described (e.g. the generator weights a model's
``latest.json`` points to, known only after training). Hashes are cached per job folder in ``.dvp-hashes.json``
by path, size and modification time, so an unchanged file is read once; a file rewritten with the same bytes
changes nothing. The job state (``<job folder>/.dvp-job.json``, read again, updated and written atomically under a
lock after every step, so processes of one job finishing steps at once keep each other's) records the
fingerprint each finished step ran with. A rerun skips a step whose outputs all exist and whose fingerprint
is unchanged, so an interrupted job continues where it stopped and a changed input redoes only what depends on
it.
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
from dvp_engine.core.lock import hold_lock

log = logging.getLogger("dvp")

STATE_NAME = ".dvp-job.json"
HASHES_NAME = ".dvp-hashes.json"
#: Seconds a process waits for another's read-modify-write of the job state or hash cache (milliseconds long).
LOCK_WAIT = 60.0


class HashCache:
    """SHA-256 of files keyed by resolved path, size and modification time (ns), optionally kept in a JSON file.

    A file whose size or modification time changed is hashed again; entries of files that are gone are dropped
    when saved.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._entries: dict[str, list[Any]] = {}
        self._dirty = False
        if path is not None and path.is_file():
            try:
                doc = json.loads(path.read_text("utf-8"))
                if isinstance(doc, dict):
                    self._entries = {k: v for k, v in doc.items() if isinstance(v, list) and len(v) == 3}
            except (OSError, ValueError):
                log.warning("hash cache %s is unreadable; hashing the inputs again", path)

    def sha256(self, file: Path) -> tuple[int, str]:
        """``(size, sha256)`` of ``file``."""
        st = file.stat()
        key = str(file.resolve())
        hit = self._entries.get(key)
        if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return st.st_size, str(hit[2])
        digest = sha256_file(file)
        self._entries[key] = [st.st_size, st.st_mtime_ns, digest]
        self._dirty = True
        return st.st_size, digest

    def save(self) -> None:
        """Write the cache (when a hash was added) atomically, merged with what other processes wrote meanwhile
        (under a lock, ``<cache>.lock``)."""
        if self.path is None or not self._dirty:
            return
        with hold_lock(self.path.with_name(self.path.name + ".lock"), f"update {self.path}", wait=LOCK_WAIT):
            merged = {**HashCache(self.path)._entries, **self._entries}  # keep other processes' hashes
            live = {k: v for k, v in merged.items() if Path(k).is_file()}
            write_text_atomic(self.path, json.dumps(live, sort_keys=True) + "\n")
        self._dirty = False


def _describe_sequence(pattern: str, cache: HashCache) -> Any:
    from dvp_engine.core.errors import DvpError
    from dvp_engine.core.sequence import ImageSequence

    try:
        seq = ImageSequence.parse(pattern).scan()
    except (ValueError, DvpError):
        return {"missing": pattern}
    assert seq.frames is not None
    frames = []
    for f in seq.frames:
        size, digest = cache.sha256(seq.path(f))
        frames.append([f, size, digest])
    return {"sequence": pattern, "frames": frames}


def _describe(value: Any, cache: HashCache) -> Any:
    if callable(value):
        return _describe(value(), cache)
    if isinstance(value, Path):
        if value.is_file():
            size, digest = cache.sha256(value)
            return {"path": str(value), "size": size, "sha256": digest}
        if value.is_dir():
            files = sorted(p for p in value.rglob("*") if p.is_file() and not p.name.startswith("."))
            return {"dir": str(value), "files": [_describe(p, cache) for p in files]}
        from dvp_engine.core.sequence import is_pattern

        if is_pattern(value):
            return _describe_sequence(str(value), cache)
        return {"missing": str(value)}
    if isinstance(value, Mapping):
        return {str(k): _describe(v, cache) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_describe(v, cache) for v in value]
    return value


def fingerprint(inputs: Mapping[str, Any], cache: HashCache | None = None) -> str:
    """A hash of settings and inputs (``Path`` values by content: a file's size and SHA-256, a sequence pattern's
    frames, a folder's files; callables are called first). ``cache`` saves re-reading unchanged files."""
    text = json.dumps(
        _describe(inputs, cache if cache is not None else HashCache()), sort_keys=True, default=str
    )
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
        """Write this state as it is (over whatever the file holds)."""
        write_text_atomic(self.path, json.dumps({"done": self.done}, indent=1, sort_keys=True) + "\n")

    def record(self, name: str, entry: dict[str, Any]) -> None:
        """Record the finished step ``name`` in the file, keeping what other processes recorded meanwhile.

        The file is read again, updated and written (atomically) under a lock (``<state>.lock``,
        :func:`dvp_engine.core.lock.hold_lock`), so two processes of one job finishing steps at once both keep
        theirs; ``done`` becomes the merged state.

        Raises:
            LockError: another process held the state's lock for over a minute (named).
        """
        with hold_lock(self.path.with_name(self.path.name + ".lock"), f"update {self.path}", wait=LOCK_WAIT):
            on_disk = JobState.load(self.folder).done
            on_disk[name] = entry
            self.done = on_disk
            self.save()


def run_steps(steps: Iterable[Step], folder: Path, *, force: bool = False) -> list[str]:
    """Run the steps in order, skipping finished ones; returns the names of the steps that ran."""
    folder.mkdir(parents=True, exist_ok=True)
    state = JobState.load(folder)
    cache = HashCache(folder / HASHES_NAME)
    ran: list[str] = []
    for step in steps:
        fp = fingerprint(step.inputs, cache)
        cache.save()
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
        state.record(step.name, {"fingerprint": fp, "seconds": round(time.perf_counter() - t0, 3)})
        ran.append(step.name)
    return ran
