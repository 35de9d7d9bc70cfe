"""File helpers (stdlib only): atomic writes (a temporary file in the destination folder, then a rename) and
content hashes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import DvpError


def _file_mode() -> int:
    """The mode ``open()`` gives a new file: 0o666 less the process's umask (read once, at import)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same extension); on success rename it over ``path``.

    The file gets the mode a newly created file would (0o666 less the umask), not the temporary file's
    private 0600, so renders and tracks are readable by the rest of a farm as any other output.

    On an exception the temporary file is removed and ``path`` is left as it was, so an interrupted
    write never leaves a half-written file. Raises :class:`DvpError` if the folder is not writable.
    """
    dest = Path(path)
    folder = dest.parent if str(dest.parent) else Path(".")
    if not folder.is_dir():
        raise DvpError("output folder does not exist", path=folder)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=f".tmp{dest.suffix}", dir=folder)
    except OSError as exc:
        raise DvpError(f"cannot write in folder ({exc.strerror})", path=folder) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp makes a private (0600) file and the rename keeps its mode: give it an ordinary file's mode
    with contextlib.suppress(OSError):
        os.chmod(tmp, _FILE_MODE)
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's contents, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def stale_temporaries(path: str | Path) -> list[Path]:
    """Temporary files :func:`atomic_path` made for ``path`` and never renamed: what a writer killed mid-write
    (SIGKILL, a farm task's timeout) leaves beside the file. ``path`` itself is never one of them."""
    dest = Path(path)
    folder = dest.parent if str(dest.parent) else Path(".")
    if not folder.is_dir():
        return []
    return sorted(folder.glob(f".{glob_escape(dest.stem)}.*.tmp{glob_escape(dest.suffix)}"))


def glob_escape(text: str) -> str:
    """``text`` with the glob wildcards ``*?[`` made literal."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)
