"""init.py / menu.py: what they register, and that a broken install reports itself without raising."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Any

import pytest

PLUGIN = Path(__file__).resolve().parents[2] / "nuke_plugin"


def _run(script: str) -> None:
    runpy.run_path(str(PLUGIN / script), run_name="__main__")


def test_init_adds_plugin_path_and_menu_adds_command(nuke: Any) -> None:
    _run("init.py")
    assert nuke._state.plugin_paths == [str(PLUGIN / "icons")]
    _run("menu.py")
    dvp_menu = nuke._state.menus["Nodes"].submenus["DVP"]
    assert list(dvp_menu.commands) == ["DVPortrait"]
    assert dvp_menu.icons == {"DVPortrait": "DVPortrait.png"}
    # the command is Python that builds the node
    exec(dvp_menu.commands["DVPortrait"], {})
    assert nuke._state.messages == []


def test_menu_command_creates_a_node(nuke: Any) -> None:
    from dvp_nuke import startup

    ns: dict[str, Any] = {}
    exec(
        startup.MENU_COMMAND.replace("dvp_nuke.node.menu_create()", "node = dvp_nuke.node.menu_create()"), ns
    )
    node = ns["node"]
    assert node.Class() == "Group" and node.knob("head_ry") is not None


def test_terminal_mode_start_up_makes_no_ui_calls(nuke_t: Any) -> None:
    _run("init.py")
    _run("menu.py")  # no menu in nuke -t (the fake raises on nuke.menu)
    assert nuke_t._state.menus == {}
    assert nuke_t._state.plugin_paths == [str(PLUGIN / "icons")]


def test_broken_install_reports_itself(nuke: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    import dvp_nuke.startup as startup

    def broken() -> str:
        raise ImportError("No module named 'dvp_engine'")

    monkeypatch.setattr(startup, "ensure_engine_core", broken)
    _run("init.py")  # must not raise
    err = capsys.readouterr().err
    assert "failed to load in init.py" in err and "dvp_engine" in err and "DVP_ENGINE_PATH" in err
    monkeypatch.setitem(sys.modules, "dvp_nuke.startup", None)  # the package itself cannot be imported
    _run("menu.py")
    assert "failed to load in menu.py" in capsys.readouterr().err


def test_buttons_are_valid_python_calling_on_button() -> None:
    from dvp_nuke import mapping, node

    for spec in mapping.knob_layout():
        if spec.kind == "button":
            compile(spec.command, spec.name, "exec")
            assert f"on_button({spec.name!r})" in spec.command
            assert spec.name in node.ACTIONS


def test_python_older_than_3_10_is_refused_at_load_with_the_nuke_version(
    nuke: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Nuke 14 runs Python 3.9; the plugin (zip(strict=...), X | Y types) needs Nuke 15+ (3.10)."""
    import dvp_nuke.startup as startup

    with pytest.raises(RuntimeError, match=r"needs Nuke 15 or later \(Python 3.10\+\).*Python 3.9.7"):
        startup.check_python((3, 9, 7))
    startup.check_python((3, 10, 0))  # Nuke 15
    monkeypatch.setattr(startup, "PYTHON_SEEN", (3, 9, 7))
    _run("init.py")  # must not raise
    err = capsys.readouterr().err
    assert "failed to load in init.py" in err and "Nuke 15 or later" in err
    assert nuke._state.plugin_paths == []


def test_nk_header_says_the_supported_nuke() -> None:
    from dvp_nuke import nkscript

    text = nkscript.nk_snippet(standalone=True)
    assert text.splitlines()[1].startswith("version 15.")
