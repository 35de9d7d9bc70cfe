"""The ``.nk`` writer: :mod:`dvp_engine.nkscript.writer` (the engine's; this is the adapter's name for it)."""

from dvp_engine.nkscript.writer import *  # noqa: F403
