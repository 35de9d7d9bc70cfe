"""core.lock: a live holder keeps a second job out (named in the error), a dead one's lock is taken over, frame
locks coexist unless their frames overlap, locks go when the job ends, and concurrent jobs never hold at once.

The holders are real processes (``python -c`` scripts that take the lock and wait for a file), so the pid the
lock records is one that runs, or one that ran and is gone.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dvp_engine.core.errors import DvpError
from dvp_engine.core.frames import FrameSet
from dvp_engine.core.lock import LockError, hold_frames_lock, hold_lock, read_lock

REPO = Path(__file__).resolve().parents[2]

#: A process that takes a lock, writes ``ready`` and holds it until ``release`` appears.
HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from dvp_engine.core.frames import FrameSet
    from dvp_engine.core.lock import hold_frames_lock, hold_lock
    kind, target, ready, release = sys.argv[1:5]
    if kind == "folder":
        cm = hold_lock(target, "holder test")
    else:
        cm = hold_frames_lock(Path(target).parent, Path(target).name, FrameSet.parse(kind), "holder test")
    with cm:
        Path(ready).write_text("ready")
        deadline = time.time() + 60
        while not Path(release).exists() and time.time() < deadline:
            time.sleep(0.01)
    """
)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


class Holder:
    """A subprocess holding a lock until :meth:`release`."""

    def __init__(self, tmp: Path, kind: str, target: Path) -> None:
        self.ready, self.release_file = tmp / f"ready.{id(self)}", tmp / f"release.{id(self)}"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, kind, str(target), str(self.ready), str(self.release_file)],
            env=_env(),
        )
        deadline = time.time() + 60
        while not self.ready.exists():
            assert self.proc.poll() is None, "the holder process failed to take the lock"
            assert time.time() < deadline, "the holder process did not take the lock in time"
            time.sleep(0.01)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def release(self) -> None:
        self.release_file.write_text("go")
        assert self.proc.wait(60) == 0


@pytest.fixture
def holder_factory(tmp_path: Path) -> Iterator[list[Holder]]:
    made: list[Holder] = []
    yield made
    for h in made:  # never leave a holder behind, even when the test fails
        h.release_file.write_text("go")
        h.proc.wait(60)


def _dead_pid() -> int:
    """The pid of a process that ran on this host and has exited (reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_live_holder_keeps_a_second_lock_out_and_is_named(
    tmp_path: Path, holder_factory: list[Holder]
) -> None:
    lock = tmp_path / "model" / ".dvp-lock"
    lock.parent.mkdir()
    h = Holder(tmp_path, "folder", lock)
    holder_factory.append(h)
    held = read_lock(lock)
    assert held is not None and held["pid"] == h.pid and held["host"] == socket.gethostname()
    with pytest.raises(LockError) as err, hold_lock(lock, "second"):
        pytest.fail("a second job got a lock a live job holds")
    msg = str(err.value)
    assert str(lock) in msg and f"pid {h.pid}" in msg and f"host {socket.gethostname()}" in msg
    assert "holder test" in msg  # what the holder is doing
    assert err.value.path == str(lock)
    assert read_lock(lock) == held  # the refused job left the holder's lock alone
    h.release()
    assert not lock.exists()  # the holder removed it when it ended
    with hold_lock(lock, "second") as got:
        assert read_lock(got)["pid"] == os.getpid()  # type: ignore[index]
    assert not lock.exists()


def test_wait_keeps_trying_while_a_live_holder_holds_it(tmp_path: Path, holder_factory: list[Holder]) -> None:
    lock = tmp_path / ".dvp-job.json.lock"
    h = Holder(tmp_path, "folder", lock)
    holder_factory.append(h)
    t0 = time.monotonic()
    with pytest.raises(LockError, match=f"pid {h.pid}"), hold_lock(lock, wait=0.3):
        pass
    assert time.monotonic() - t0 >= 0.3  # it waited before giving up
    timer = threading.Timer(0.5, h.release_file.write_text, ("go",))
    timer.start()
    t0 = time.monotonic()
    with hold_lock(lock, "waiter", wait=30):  # the holder lets go after half a second: taken then
        assert time.monotonic() - t0 >= 0.4
        assert read_lock(lock)["pid"] == os.getpid()  # type: ignore[index]
    timer.join()
    assert h.proc.wait(60) == 0 and not lock.exists()


def test_a_dead_holders_lock_is_taken_over(tmp_path: Path) -> None:
    lock = tmp_path / ".dvp-lock"
    dead = {"host": socket.gethostname(), "pid": _dead_pid(), "started": time.time(), "what": "died"}
    lock.write_text(json.dumps(dead))
    with hold_lock(lock, "mine"):
        held = read_lock(lock)
        assert held is not None and held["pid"] == os.getpid() and held["what"] == "mine"
    assert not lock.exists()


def test_another_hosts_lock_is_taken_over_only_when_old(tmp_path: Path) -> None:
    lock = tmp_path / ".dvp-lock"
    # a pid that runs here (ours' parent) but on another host: it cannot be checked, so its age decides
    other = {"host": "farmnode7-not-this-host", "pid": os.getppid(), "started": time.time() - 60, "what": "x"}
    lock.write_text(json.dumps(other))
    with pytest.raises(LockError, match="farmnode7-not-this-host") as err, hold_lock(lock, stale_after=3600):
        pass
    assert str(lock) in str(err.value)
    assert read_lock(lock) == other
    with hold_lock(lock, "mine", stale_after=30):  # older than stale_after: taken over
        assert read_lock(lock)["pid"] == os.getpid()  # type: ignore[index]
    assert not lock.exists()


def test_the_lock_is_removed_on_an_exception_and_a_replaced_lock_is_left(tmp_path: Path) -> None:
    lock = tmp_path / ".dvp-lock"
    with pytest.raises(KeyboardInterrupt), hold_lock(lock, "interrupted"):
        assert lock.exists()
        raise KeyboardInterrupt
    assert not lock.exists()
    # a lock that is no longer ours when we end (someone removed ours and took it) is not removed by us
    with hold_lock(lock, "mine"):
        theirs = {"host": socket.gethostname(), "pid": os.getppid(), "started": time.time(), "what": "theirs"}
        lock.write_text(json.dumps(theirs))
    assert read_lock(lock) == theirs


@pytest.mark.parametrize("content", [b"", b"\x00\xff\xfegarbage{", b"[1, 2]", b'{"pid": "x"'])
def test_a_corrupt_lock_file_is_taken_over_when_old_and_refused_clearly_when_fresh(
    tmp_path: Path, content: bytes
) -> None:
    """An unreadable lock is what a writer leaves when it dies between creating and writing it, or what a job
    that is writing it right now shows: fresh, it is refused (naming the file), not taken over; old, taken over."""
    lock = tmp_path / ".dvp-lock"
    lock.write_bytes(content)
    assert read_lock(lock) == {}
    with pytest.raises(LockError) as err, hold_lock(lock, "mine"):
        pass
    assert str(lock) in str(err.value) and "unreadable" in str(err.value)
    assert lock.read_bytes() == content
    old = time.time() - 3600
    os.utime(lock, (old, old))
    with hold_lock(lock, "mine"):
        assert read_lock(lock)["what"] == "mine"  # type: ignore[index]
    assert not lock.exists()


def test_a_lock_in_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    lock = tmp_path / "missing" / ".dvp-lock"
    with pytest.raises(DvpError, match="cannot create lock file") as err, hold_lock(lock):
        pass
    assert str(lock) in str(err.value)


def test_frame_locks_coexist_unless_their_frames_overlap(
    tmp_path: Path, holder_factory: list[Holder]
) -> None:
    out = tmp_path / "render"
    out.mkdir()
    h = Holder(tmp_path, "1-10", out / "f.exr")
    holder_factory.append(h)
    (theirs,) = out.glob(".f.exr.*.lock")
    assert read_lock(theirs)["frames"] == "1-10"  # type: ignore[index]
    with hold_frames_lock(out, "f.exr", FrameSet.parse("11-20"), "next chunk") as mine:
        assert mine.exists() and theirs.exists()  # both chunks render at once
        with (
            pytest.raises(LockError) as err,
            hold_frames_lock(out, "f.exr", FrameSet.parse("5-10,30"), "third"),
        ):
            pass
        msg = str(err.value)
        assert (
            f"pid {h.pid}" in msg and "frames 5-10" in msg and theirs.name in msg
        )  # the live holder's overlap
        assert f"host {socket.gethostname()}" in msg and "holder test" in msg
        with (
            pytest.raises(LockError, match="frames 20"),
            hold_frames_lock(out, "f.exr", FrameSet.parse("20-30")),
        ):
            pass  # our own live chunk counts too
    assert not mine.exists()  # released
    assert sorted(p.name for p in out.iterdir()) == [theirs.name]  # the refused job's lock is gone too
    # another sequence in the same folder is not these frames
    with hold_frames_lock(out, "g.exr", FrameSet.parse("1-10")):
        pass
    h.release()
    assert list(out.iterdir()) == []
    with pytest.raises(KeyboardInterrupt), hold_frames_lock(out, "f.exr", FrameSet.parse("5")):
        raise KeyboardInterrupt
    assert list(out.iterdir()) == []


def test_a_dead_jobs_frame_lock_is_taken_over(tmp_path: Path) -> None:
    stale = tmp_path / f".f.exr.{socket.gethostname()}.{_dead_pid()}.0.lock"
    stale.write_text(json.dumps({"host": socket.gethostname(), "pid": _dead_pid(), "frames": "1-100"}))
    with hold_frames_lock(tmp_path, "f.exr", FrameSet.parse("50")):
        assert not stale.exists()
    assert list(tmp_path.iterdir()) == []


#: A worker that tries for ``seconds`` to take the lock again and again; inside, it creates ``inside`` with
#: O_EXCL, so a second holder at the same time finds it and counts an overlap.
CONTENDER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from dvp_engine.core.lock import LockError, hold_lock
    lock, inside, go, seconds, out = sys.argv[1:6]
    while not Path(go).exists():
        time.sleep(0.001)
    got = overlaps = 0
    end = time.time() + float(seconds)
    while time.time() < end:
        try:
            with hold_lock(lock, "contender"):
                got += 1
                try:
                    fd = os.open(inside, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    overlaps += 1
                    continue
                os.close(fd)
                os.unlink(inside)
        except LockError:
            pass
    Path(out).write_text(f"{got} {overlaps}")
    """
)


def test_concurrent_jobs_never_hold_the_same_lock_at_once(tmp_path: Path) -> None:
    """Eight processes take and release one lock as fast as they can, for two seconds: never two at once."""
    lock, inside, go = tmp_path / ".dvp-lock", tmp_path / "inside", tmp_path / "go"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CONTENDER,
                str(lock),
                str(inside),
                str(go),
                "2.0",
                str(tmp_path / f"out{i}"),
            ],
            env=_env(),
        )
        for i in range(8)
    ]
    time.sleep(1.0)  # let them all start (import) before the race begins
    go.write_text("go")
    assert [p.wait(120) for p in procs] == [0] * 8
    results = [tuple(map(int, (tmp_path / f"out{i}").read_text().split())) for i in range(8)]
    assert sum(got for got, _ in results) > 100  # the lock did change hands many times
    assert sum(overlaps for _, overlaps in results) == 0, results
    assert not lock.exists()


def test_a_fresh_unreadable_frame_lock_is_refused_naming_the_file(tmp_path: Path) -> None:
    """A frame lock another job is still writing (empty) may cover any frame: refused, saying it is unreadable
    (not "host None, pid None"); once old it is taken over."""
    lock = tmp_path / ".f.exr.otherhost.123.0.lock"
    lock.write_bytes(b"")
    with pytest.raises(LockError) as err, hold_frames_lock(tmp_path, "f.exr", FrameSet.parse("1-5")):
        pass
    msg = str(err.value)
    assert "unreadable" in msg and lock.name in msg and "None" not in msg
    old = time.time() - 3600
    os.utime(lock, (old, old))
    with hold_frames_lock(tmp_path, "f.exr", FrameSet.parse("1-5")):
        pass
    assert not lock.exists()
