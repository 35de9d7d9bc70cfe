"""Every nuke.* name the plugin uses is allowlisted with its Foundry documentation page, and nothing else."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

PLUGIN = Path(__file__).resolve().parents[2] / "nuke_plugin"
ALLOWLIST = PLUGIN / "NUKE_API_ALLOWLIST.txt"
DOCS = re.compile(r"^https://learn\.foundry\.com/nuke/developers/\d+/(pythondevguide|pythonreference)/\S+$")


def allowlist() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in ALLOWLIST.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, url = line.split()
        assert name not in out, f"duplicate allowlist entry {name}"
        out[name] = url
    return out


def _chain(node: ast.AST) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _sources() -> dict[Path, ast.Module]:
    return {p: ast.parse(p.read_text(), str(p)) for p in sorted(PLUGIN.rglob("*.py"))}


def used_module_names() -> set[str]:
    names: set[str] = set()
    for tree in _sources().values():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                c = _chain(node)
                if c is not None and c.startswith("nuke."):
                    names.add(c)
    return names


def used_methods() -> set[str]:
    """Methods called on Nuke objects in host.py, plus every member of the protocols (Nuke's object API)."""
    host = ast.parse((PLUGIN / "dvp_nuke" / "host.py").read_text())
    out: set[str] = set()
    for node in ast.walk(host):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            c = _chain(node.func)
            if c is not None and c.split(".")[0] not in ("nuke", "sys"):
                out.add(node.func.attr)
    protocols = ast.parse((PLUGIN / "dvp_nuke" / "protocols.py").read_text())
    for cls in protocols.body:
        if isinstance(cls, ast.ClassDef):
            for item in cls.body:
                if isinstance(item, ast.FunctionDef):
                    out.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    out.add(item.target.id)
    return out


def test_allowlist_entries_cite_the_foundry_docs() -> None:
    entries = allowlist()
    assert len(entries) > 30
    for name, url in entries.items():
        assert DOCS.match(url), f"{name}: {url} is not a Foundry Nuke Python API page"
        assert re.match(
            r"^(nuke(\.nodes)?\.[A-Za-z_][A-Za-z0-9_]*|nuke\.nodes|[A-Z][A-Za-z_]+\.[a-zA-Z]+)$", name
        ), name
        if name.startswith("nuke.") and "_autosummary/nuke." in url and not name.startswith("nuke.nodes"):
            assert url.endswith(f"/{name}.html"), f"{name} cites another page: {url}"


def test_only_host_imports_nuke() -> None:
    importers = []
    for path, tree in _sources().items():
        for node in ast.walk(tree):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module]
            if any(m == "nuke" or m.startswith(("nuke.", "nukescripts")) for m in mods):
                importers.append(path.relative_to(PLUGIN).as_posix())
    assert importers == ["dvp_nuke/host.py"]


def test_every_nuke_name_used_is_allowlisted_and_vice_versa() -> None:
    entries = allowlist()
    used = used_module_names()
    assert used, "the scan found no nuke.* names at all"
    assert sorted(used - set(entries)) == [], "nuke.* names used but not allowlisted"
    listed = {n for n in entries if n.startswith("nuke.")}
    assert sorted(listed - used) == [], "allowlisted nuke.* names no longer used"


def test_every_method_used_on_nuke_objects_is_allowlisted() -> None:
    entries = allowlist()
    methods = {n.split(".", 1)[1]: n for n in entries if not n.startswith("nuke.")}
    used = used_methods()
    assert sorted(used - set(methods)) == [], "methods on Nuke objects not allowlisted"
    assert sorted(set(methods) - used) == [], "allowlisted methods no longer used"


def test_button_and_menu_scripts_only_call_the_plugin() -> None:
    from dvp_nuke import mapping, startup

    scripts = [s.command for s in mapping.knob_layout() if s.kind == "button"] + [startup.MENU_COMMAND]
    for text in scripts:
        names = {
            c
            for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.Attribute)
            for c in [_chain(node)]
            if c
        }
        assert not any(n.startswith("nuke.") for n in names), text


def test_fake_nuke_implements_exactly_the_allowlisted_module_names(nuke: Any) -> None:
    entries = allowlist()
    top = {n.split(".")[1] for n in entries if n.startswith("nuke.")}
    public = {
        name
        for name, obj in vars(nuke).items()
        if not name.startswith("_")
        and getattr(obj, "__module__", nuke.__name__) == nuke.__name__
        and not isinstance(obj, type(ast))
    }
    public -= {"annotations"}
    assert public == top
    node_classes = {n.split(".")[2] for n in entries if n.startswith("nuke.nodes.")}
    assert set(nuke._BUILTIN) == node_classes
    import pytest

    with pytest.raises(AttributeError):
        nuke.createNode  # noqa: B018 - unknown API must not exist in the fake
    with pytest.raises(AttributeError):
        nuke.nodes.Blur  # noqa: B018
