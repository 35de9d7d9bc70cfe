"""Write a Nuke ``.nk`` script or snippet with a keyed DVPortrait node, without Nuke or a licence.

Examples::

    dvp nuke-script shot.npz -o shot_dvp.nk --model model/ --output out/sh010.####.exr
    dvp nuke-script shot.npz -o shot.nk --curves edits.json --plate plate/sh010.####.exr --script

The node's knobs carry the track's channels as animation (one key per tracked frame); ``--script`` writes a
whole script with a Root node instead of a snippet to paste. The writer is part of the engine
(:mod:`dvp_engine.nkscript`), so an installed dvp runs this without the Nuke plugin (docs/nuke.md).
"""

from __future__ import annotations

import argparse

from dvp_engine.nkscript import batch

NAME = "nuke-script"
HELP = "write a .nk script with a keyed DVPortrait node (no Nuke needed)"


def configure(p: argparse.ArgumentParser) -> None:
    batch.configure(p)


def run(args: argparse.Namespace) -> int:
    return int(batch.run_args(args))
