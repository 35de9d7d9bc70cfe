"""core.atomic: the temporaries an interrupted atomic write leaves are found for the file they belong to."""

from __future__ import annotations

from pathlib import Path

import pytest

from dvp_engine.core.atomic import atomic_path, stale_temporaries


def test_stale_temporaries_are_what_a_killed_atomic_write_leaves(tmp_path: Path) -> None:
    dest = tmp_path / "frame.0021.exr"
    with pytest.raises(KeyboardInterrupt), atomic_path(dest) as tmp:
        tmp.write_bytes(b"half")
        assert stale_temporaries(dest) == [tmp]  # while writing, the temporary is there
        raise KeyboardInterrupt
    assert not dest.exists() and stale_temporaries(dest) == []  # an exception cleans up after itself
    # what SIGKILL leaves: the temporary, never renamed; other frames' temporaries are not this frame's
    killed = tmp_path / ".frame.0021.k1ll3d.tmp.exr"
    killed.write_bytes(b"half")
    (tmp_path / ".frame.0022.k1ll3d.tmp.exr").write_bytes(b"other frame")
    (tmp_path / ".frame.00210.x.tmp.exr").write_bytes(b"another file")
    dest.write_bytes(b"whole")
    assert stale_temporaries(dest) == [killed]
    assert stale_temporaries(tmp_path / "missing" / "f.exr") == []
