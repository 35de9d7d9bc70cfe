"""Write a Nuke ``.nk`` script or snippet with a keyed DVPortrait node, without Nuke or a licence.

Examples::

    dvp nuke-script shot.npz -o shot_dvp.nk --model model/ --output out/sh010.####.exr
    dvp nuke-script shot.npz -o shot.nk --curves edits.json --plate plate/sh010.####.exr --script

The node's knobs carry the track's channels as animation (one key per tracked frame); ``--script`` writes a
whole script with a Root node instead of a snippet to paste. The Nuke plugin lives in ``nuke_plugin/`` of the
dvp source tree (docs/nuke.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import ModuleType

from .common import UsageError

NAME = "nuke-script"
HELP = "write a .nk script with a keyed DVPortrait node (no Nuke needed)"


def _batch() -> ModuleType:
    """The Nuke adapter's batch module, from the source tree's ``nuke_plugin/``."""
    plugin = Path(__file__).resolve().parents[2] / "nuke_plugin"
    if not (plugin / "dvp_nuke").is_dir():
        raise UsageError(
            "the Nuke plugin folder is not beside this dvp_engine (expected nuke_plugin/dvp_nuke); "
            "run dvp from a dvp source checkout",
            path=plugin,
        )
    if str(plugin) not in sys.path:
        sys.path.insert(0, str(plugin))
    import dvp_nuke.batch

    batch: ModuleType = dvp_nuke.batch
    return batch


def configure(p: argparse.ArgumentParser) -> None:
    try:
        _batch().configure(p)
    except UsageError:
        p.add_argument("args", nargs=argparse.REMAINDER, help="(the Nuke plugin is not installed here)")


def run(args: argparse.Namespace) -> int:
    return int(_batch().run_args(args))
