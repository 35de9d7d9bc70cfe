"""The DVPortrait node's channel <-> knob mapping and knob layout: :mod:`dvp_engine.nkscript.knobs`.

The layout lives in the engine (``dvp nuke-script`` writes the same node without Nuke); this module is the
adapter's name for it.
"""

from dvp_engine.nkscript.knobs import *  # noqa: F403
