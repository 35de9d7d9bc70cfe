"""Lock files that keep two jobs from writing the same outputs at once (stdlib only).

A lock is a small JSON file (``{"host": ..., "pid": ..., "started": ..., "what": ...}``) created with
``O_EXCL``, so exactly one job gets it. A second job is refused with an error naming the holder's host and pid.
A lock left by a job that died is *stale* and taken over: on the same host when its pid no longer runs; on
another host (where the pid cannot be checked) only when it is older than ``stale_after`` seconds, else the
message says which file to remove once that job is known to be gone. The lock is removed when the job ends,
whether it succeeds or fails.

A lock file appears whole: its JSON is written to a temporary file that is then hard-linked to the lock's name
(the link fails when the name exists, as ``O_EXCL`` would), so a second job never reads a half-written lock and
takes it for a dead one. An unreadable lock (corrupt, or half-written by a folder without hard links, where
``O_EXCL`` and a write are used instead) is refused while younger than ``UNREADABLE_GRACE`` seconds and taken
over after. A stale lock is removed under a short-lived ``<lock>.takeover`` lock after reading it again, so two
jobs taking over the same stale lock at once never remove each other's new one.

:func:`hold_frames_lock` locks frames of one output sequence instead of a whole folder: each job writes its
own lock naming its frames, and a job is refused only where its frames overlap a live job's, so a farm may
still split one shot into chunks rendered at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .atomic import _FILE_MODE
from .errors import DvpError
from .frames import FrameSet

__all__ = ["LockError", "hold_frames_lock", "hold_lock", "read_lock"]

#: Seconds after which a lock held by another host counts as stale (a week).
STALE_AFTER = 7 * 24 * 3600.0
#: Seconds an unreadable lock file is left alone (it may be being written) before it counts as stale.
UNREADABLE_GRACE = 30.0
#: Seconds after which a ``.takeover`` lock (held for a moment while removing a stale lock) counts as left over.
TAKEOVER_GRACE = 10.0


class LockError(DvpError):
    """Another job holds the lock (the message names its host, pid and the lock file)."""


def read_lock(path: str | Path) -> dict[str, Any] | None:
    """The lock's holder (``host``, ``pid``, ``started``, ``what``), ``{}`` if unreadable, None if absent."""
    try:
        doc = json.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def _age(path: Path) -> float:
    """Seconds since ``path`` was last modified (0 if it is gone)."""
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _stale(holder: dict[str, Any], stale_after: float, path: Path) -> bool:
    if not holder:  # unreadable: being written (no hard links) or corrupt; stale once it has been so a while
        return _age(path) > UNREADABLE_GRACE
    pid, host, started = holder.get("pid"), holder.get("host"), holder.get("started")
    if host == socket.gethostname() and isinstance(pid, int):
        return pid != os.getpid() and not _alive(pid)
    return isinstance(started, int | float) and time.time() - started > stale_after


def _create(path: Path, text: str) -> bool:
    """Create ``path`` holding ``text`` if no file has that name; False if one has.

    The text is written to a temporary file first and hard-linked to ``path``, so the file appears whole. Where
    the folder has no hard links, ``O_EXCL`` then a write (a reader may see it empty for a moment).

    Raises:
        DvpError: the folder is missing or not writable.
    """
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f"{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise DvpError(f"cannot create lock file ({exc.strerror})", path=path) from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        with contextlib.suppress(OSError):
            os.chmod(tmp, _FILE_MODE)  # readable by the rest of a farm, as O_CREAT made it
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links here (some network or FUSE folders): O_EXCL and write
            pass
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            return False
        except OSError as exc:
            raise DvpError(f"cannot create lock file ({exc.strerror})", path=path) from exc
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        return True
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _remove_stale(path: Path, holder: dict[str, Any]) -> None:
    """Remove the stale lock ``path`` if it still holds what was read (``holder``), under ``path.takeover``.

    Another job may have taken the stale lock over since it was read: its new lock is then left alone."""
    guard = path.with_name(path.name + ".takeover")
    me = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()})
    if not _create(guard, me):
        if _age(guard) > TAKEOVER_GRACE:  # left by a job that died while taking over
            with contextlib.suppress(FileNotFoundError):
                guard.unlink()
        return  # another job is taking it over: look again
    try:
        if read_lock(path) == holder:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    finally:
        with contextlib.suppress(FileNotFoundError):
            guard.unlink()


@contextlib.contextmanager
def hold_lock(
    path: str | Path, what: str = "", *, stale_after: float = STALE_AFTER, wait: float = 0.0
) -> Iterator[Path]:
    """Hold the lock file ``path`` while inside; a stale lock is taken over.

    Args:
        path: the lock file (its folder must exist).
        what: what the job does, shown to a job that is refused.
        stale_after: seconds after which another host's lock counts as stale.
        wait: seconds to keep trying while a live job holds it (0: refuse at once).

    Raises:
        LockError: a live job holds it (host, pid and how to clear it named), still after ``wait`` seconds.
        DvpError: the lock file cannot be created (folder missing or not writable).
    """
    lock = Path(path)
    doc = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(), "what": what})
    deadline = time.monotonic() + wait
    delay = 0.001
    changes = 0
    while True:
        if _create(lock, doc):
            break
        holder = read_lock(lock)
        if holder is None:  # released meanwhile: try again
            changes += 1
        elif _stale(holder, stale_after, lock):
            _remove_stale(lock, holder)
            changes += 1
        elif time.monotonic() >= deadline:
            if not holder:
                raise LockError(
                    "the lock file is unreadable (another dvp job may be writing it); remove it if no dvp job "
                    f"is running (it is taken over when older than {UNREADABLE_GRACE:g} s)",
                    path=lock,
                )
            raise LockError(
                f"another dvp job ({holder.get('what') or 'unknown'}) holds this lock: host "
                f"{holder.get('host')}, pid {holder.get('pid')}; wait for it, or remove the file if that job "
                "is gone",
                path=lock,
            )
        else:
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
            continue
        if changes > 100 and time.monotonic() >= deadline:
            raise LockError("could not take the lock (it keeps changing hands)", path=lock)
    try:
        yield lock
    finally:
        if read_lock(lock) == json.loads(doc):
            with contextlib.suppress(OSError):
                lock.unlink()


@contextlib.contextmanager
def hold_frames_lock(
    folder: str | Path, name: str, frames: FrameSet, what: str = "", *, stale_after: float = STALE_AFTER
) -> Iterator[Path]:
    """Hold a lock on ``frames`` of the outputs called ``name`` in ``folder`` while inside.

    The lock is ``folder/.<name>.<host>.<pid>.<n>.lock`` listing the frames. It is written first, then the
    other jobs' locks are read: a stale one is removed, a live one whose frames overlap ours refuses the job (two
    jobs starting at the same moment may both be refused, never both let through).

    Raises:
        LockError: a live job holds a lock on some of these frames (host, pid, frames and lock file named).
    """
    root = Path(folder)
    stem = f".{name}."
    doc = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": time.time(),
        "what": what,
        "frames": str(frames),
    }
    for n in range(1000):
        mine = root / f"{stem}{socket.gethostname()}.{os.getpid()}.{n}.lock"
        if _create(mine, json.dumps(doc)):
            break
    else:
        raise LockError("too many lock files of this process", path=root)
    try:
        for entry in sorted(os.listdir(root)):
            other = root / entry
            if other == mine or not (entry.startswith(stem) and entry.endswith(".lock")):
                continue
            holder = read_lock(other)
            if holder is None:
                continue
            if _stale(holder, stale_after, other):
                _remove_stale(other, holder)
                continue
            try:
                theirs = FrameSet.parse(str(holder.get("frames")))
            except ValueError:
                theirs = frames  # unknown frames: assume they overlap
            overlap = theirs & frames
            if overlap and not holder:
                raise LockError(
                    f"a frame lock is unreadable (another dvp job may be writing it), so frames {frames} may be "
                    f"in use; remove it if no dvp job is running (it is taken over when older than "
                    f"{UNREADABLE_GRACE:g} s)",
                    path=other,
                )
            if overlap:
                raise LockError(
                    f"another dvp job ({holder.get('what') or 'unknown'}) is writing frames {overlap} of these: "
                    f"host {holder.get('host')}, pid {holder.get('pid')}; wait for it, or remove the file if "
                    "that job is gone",
                    path=other,
                )
        yield mine
    finally:
        with contextlib.suppress(OSError):
            mine.unlink()
