"""Export a trained generator to TorchScript for Nuke's CopyCat Inference node (via a .cat file).

Example::

    dvp export --model model/ -o portrait_256.pt

The exported module takes ONE input tensor, the conditioning volume ``(1, 9*Nw, S, S)`` in [0, 1], and returns
ONE output tensor ``(1, 3, S, S)`` in [0, 1]: the normalisation to and from the network's [-1, 1] space is
inside ``forward``. In Nuke, turn it into a ``.cat`` with the CatFileCreator node (see docs/network.md).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .options import add_overwrite, refuse_existing

NAME = "export"
HELP = "export a trained generator to TorchScript (for Nuke CopyCat)"
log = logging.getLogger("dvp")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", type=Path, required=True, help="model folder, checkpoint folder or generator file"
    )
    p.add_argument("-o", "--output", type=Path, required=True, help="TorchScript file (.pt)")
    add_overwrite(p, "an output file")


def run(args: argparse.Namespace) -> int:
    from dvp_engine.network import export_torchscript
    from dvp_engine.network.checkpoint import load_generator

    refuse_existing([args.output], args.overwrite)
    g = load_generator(args.model)
    export_torchscript(g, args.output)
    c = g.config
    log.info(
        "wrote %s: input (1, %d, %d, %d) in [0, 1], output (1, 3, %d, %d) in [0, 1]",
        args.output,
        c.in_channels,
        c.size,
        c.size,
        c.size,
        c.size,
    )
    return 0
