"""``dvp nuke-script``: :mod:`dvp_engine.nkscript.batch` (kept here so ``python -m dvp_nuke.batch`` works)."""

import sys

from dvp_engine.nkscript.batch import *  # noqa: F403
from dvp_engine.nkscript.batch import cli_main

if __name__ == "__main__":
    sys.exit(cli_main())
