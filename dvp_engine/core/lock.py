"""Lock files that keep two jobs from writing the same outputs at once (stdlib only).

A lock is a small JSON file (``{"host": ..., "pid": ..., "started": ..., "what": ...}``) created with
``O_EXCL``, so exactly one job gets it. A second job is refused with an error naming the holder's host and pid.
A lock left by a job that died is *stale* and taken over: on the same host when its pid no longer runs; on
another host (where the pid cannot be checked) only when it is older than ``stale_after`` seconds, else the
message says which file to remove once that job is known to be gone. The lock is removed when the job ends,
whether it succeeds or fails.

:func:`hold_frames_lock` locks frames of one output sequence instead of a whole folder: each job writes its
own lock naming its frames, and a job is refused only where its frames overlap a live job's, so a farm may
still split one shot into chunks rendered at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import DvpError
from .frames import FrameSet

__all__ = ["LockError", "hold_frames_lock", "hold_lock", "read_lock"]

#: Seconds after which a lock held by another host counts as stale (a week).
STALE_AFTER = 7 * 24 * 3600.0


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


def _stale(holder: dict[str, Any], stale_after: float) -> bool:
    if not holder:  # unreadable or half-written: its writer died between create and write
        return True
    pid, host, started = holder.get("pid"), holder.get("host"), holder.get("started")
    if host == socket.gethostname() and isinstance(pid, int):
        return pid != os.getpid() and not _alive(pid)
    return isinstance(started, int | float) and time.time() - started > stale_after


@contextlib.contextmanager
def hold_lock(path: str | Path, what: str = "", *, stale_after: float = STALE_AFTER) -> Iterator[Path]:
    """Hold the lock file ``path`` while inside; a stale lock is taken over.

    Raises:
        LockError: a live job holds it (host, pid and how to clear it named).
    """
    lock = Path(path)
    doc = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(), "what": what})
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            holder = read_lock(lock)
            if holder is None:
                continue  # released meanwhile: try again
            if _stale(holder, stale_after):
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
                continue
            raise LockError(
                f"another dvp job ({holder.get('what') or 'unknown'}) holds this lock: host "
                f"{holder.get('host')}, pid {holder.get('pid')}; wait for it, or remove the file if that job "
                "is gone",
                path=lock,
            ) from None
        except OSError as exc:
            raise DvpError(f"cannot create lock file ({exc.strerror})", path=lock) from exc
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(doc)
        break
    else:
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
        try:
            fd = os.open(mine, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise DvpError(f"cannot create lock file ({exc.strerror})", path=mine) from exc
    else:
        raise LockError("too many lock files of this process", path=root)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(doc))
    try:
        for entry in sorted(os.listdir(root)):
            other = root / entry
            if other == mine or not (entry.startswith(stem) and entry.endswith(".lock")):
                continue
            holder = read_lock(other)
            if holder is None:
                continue
            if _stale(holder, stale_after):
                with contextlib.suppress(FileNotFoundError):
                    other.unlink()
                continue
            try:
                theirs = FrameSet.parse(str(holder.get("frames")))
            except ValueError:
                theirs = frames  # unknown frames: assume they overlap
            overlap = theirs & frames
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
