"""What ``init.py`` and ``menu.py`` call: make the engine's core importable, register the plugin path and menu."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parents[1]
"""The ``nuke_plugin`` folder (the one on NUKE_PATH)."""
ENGINE_ENV = "DVP_ENGINE_PATH"
MENU_PATH = ("Nodes", "DVP")
MENU_LABEL = "DVPortrait"
MENU_COMMAND = "import dvp_nuke.node\ndvp_nuke.node.menu_create()"
MENU_ICON = "DVPortrait.png"
"""In ``icons/``, which :func:`on_init` puts on the plugin path."""
MIN_PYTHON = (3, 10)
"""The plugin (and dvp_engine.core) use Python 3.10 (``zip(strict=...)``, ``X | Y`` types): Nuke 15 or later."""
PYTHON_SEEN: tuple[int, ...] = tuple(sys.version_info[:3])


def check_python(version: tuple[int, ...] | None = None) -> None:
    """Refuse a Nuke whose Python is older than 3.10 (Nuke 14 and before) with a message that says so.

    This module itself only uses Python 3.6 syntax, so the check runs (and reports) on an old Nuke.
    """
    seen = tuple(version if version is not None else PYTHON_SEEN)
    if seen[:2] < MIN_PYTHON:
        raise RuntimeError(
            "the DVP plugin needs Nuke 15 or later (Python 3.10+); this Nuke runs Python "
            + ".".join(str(v) for v in seen)
        )


def ensure_engine_core() -> str:
    """Make ``dvp_engine.core`` importable: ``$DVP_ENGINE_PATH`` (the repository root), else the folder above
    this plugin when it holds ``dvp_engine``. Returns the folder used ('' if it was importable already)."""
    for cand in (os.environ.get(ENGINE_ENV, ""), str(PLUGIN_DIR.parent)):
        if cand and (Path(cand) / "dvp_engine" / "core" / "__init__.py").is_file():
            if cand not in sys.path:
                sys.path.append(cand)
            break
    else:
        cand = ""
    import dvp_engine.core  # noqa: F401  (raises ImportError with a clear name if still missing)

    return cand


def on_init() -> None:
    """``init.py``: the engine core on sys.path, the plugin's ``icons`` folder on the plugin path."""
    check_python()
    ensure_engine_core()
    from . import host

    host.plugin_add_path(str(PLUGIN_DIR / "icons"))


def on_menu() -> None:
    """``menu.py``: Nodes > DVP > DVPortrait (GUI sessions only)."""
    from . import host

    check_python()
    if host.is_gui():
        host.add_menu_command(MENU_PATH, MENU_LABEL, MENU_COMMAND, icon=MENU_ICON)


def report_failure(stage: str, exc: BaseException) -> None:
    """Print why the plugin did not load, without stopping Nuke's start-up."""
    print(
        f"[dvp] the DVP Nuke plugin failed to load in {stage}: {type(exc).__name__}: {exc}\n"
        f"[dvp] check that dvp_engine is beside {PLUGIN_DIR} or set ${ENGINE_ENV} to the dvp repository, "
        "and that Nuke's Python has numpy. See docs/nuke.md.",
        file=sys.stderr,
        flush=True,
    )


def run(stage: str, step: Callable[[], None]) -> bool:
    """Run a start-up step; on any error report it (stderr) and return False instead of raising."""
    try:
        step()
    except Exception as exc:  # noqa: BLE001 - start-up must survive a broken install
        report_failure(stage, exc)
        return False
    return True
