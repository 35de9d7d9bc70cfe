"""Error types shared by the engine, the CLI and the host adapters (stdlib only)."""

from __future__ import annotations

from pathlib import Path


class DvpError(Exception):
    """A failure a user can act on. The message names the file and, where known, the frame.

    Attributes:
        path: the file concerned, if any.
        frame: the frame number concerned, if any.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, frame: int | None = None) -> None:
        self.path = None if path is None else str(path)
        self.frame = frame
        parts = []
        if self.path is not None:
            parts.append(self.path)
        if frame is not None:
            parts.append(f"frame {frame}")
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class SchemaError(DvpError):
    """A file's schema is unknown, newer than this dvp, or its contents are inconsistent."""


class InputError(DvpError):
    """Input data is missing, unreadable or invalid (NaN, wrong type, corrupt)."""
