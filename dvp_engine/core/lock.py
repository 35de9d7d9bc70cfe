"""Lock files that keep two jobs from writing the same outputs at once (stdlib only).

A lock is a small JSON file (``{"host": ..., "pid": ..., "started": ..., "what": ...}``) created with
``O_EXCL``, so exactly one job gets it. A second job is refused with an error naming the holder's host and pid.
A lock left by a job that died is *stale* and taken over: on the same host when its pid no longer runs; on
another host (where the pid cannot be checked) only when it is older than ``stale_after`` seconds, else the
message says which file to remove once that job is known to be gone. The lock is removed when the job ends,
whether it succeeds or fails.
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

__all__ = ["LockError", "hold_lock", "read_lock"]

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
