"""Registration, the manifest and the built zip."""

from __future__ import annotations

import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def _snapshot(bpy: Any) -> dict[str, Any]:
    return {
        "types": set(dir(bpy.types)),
        "scene_dvp": hasattr(bpy.types.Scene, "dvp"),
        "ops": set(dir(bpy.ops.dvp)),
        "import_menu": len(bpy.types.TOPBAR_MT_file_import._dyn_ui_initialize()),
        "export_menu": len(bpy.types.TOPBAR_MT_file_export._dyn_ui_initialize()),
    }


def test_register_unregister_leaves_nothing(factory: Any) -> None:
    import blender_addon

    bpy = factory
    before = _snapshot(bpy)
    blender_addon.register()
    during = _snapshot(bpy)
    assert all(c.is_registered for c in blender_addon.classes)
    assert {"DVP_OT_import_track", "DVP_OT_render", "VIEW3D_PT_dvp"} <= during["types"]
    assert during["scene_dvp"] and {"import_track", "export_curves", "render"} <= during["ops"]
    assert during["import_menu"] == before["import_menu"] + 1
    assert bpy.context.scene.dvp.output.endswith("####.exr")
    blender_addon.unregister()
    assert _snapshot(bpy) == before
    assert not any(c.is_registered for c in blender_addon.classes)
    # and it registers again cleanly
    blender_addon.register()
    blender_addon.unregister()
    assert _snapshot(bpy) == before


def test_classes_order_panels_after_operators() -> None:
    import blender_addon
    from blender_addon import operators, panels, properties

    names = [c.__name__ for c in blender_addon.classes]
    assert names.index(properties.DVP_SceneSettings.__name__) < names.index(operators.DVP_OT_render.__name__)
    assert names.index(operators.DVP_OT_render.__name__) < names.index(panels.VIEW3D_PT_dvp.__name__)


def test_manifest_matches_package() -> None:
    import blender_addon
    import dvp_engine

    with open(REPO / "blender_addon" / "blender_manifest.toml", "rb") as fh:
        info = tomllib.load(fh)
    assert info["schema_version"] == "1.0.0"
    assert info["id"] == blender_addon.ADDON_ID
    assert info["version"] == blender_addon.__version__ == dvp_engine.__version__
    assert info["type"] == "add-on"
    # 5.0: Scene.compositing_node_group (results.py); 4.4: action slots, channelbags, sequence_editor.strips
    assert info["blender_version_min"] == "5.0.0"
    assert all(lic.startswith("SPDX:") for lic in info["license"])


def test_blenders_own_validator_accepts_the_manifest() -> None:
    """``blender_ext.py validate`` (shipped inside Blender, here the bpy wheel) checks lengths, tags, keys."""
    import subprocess

    import bpy

    tool = Path(bpy.utils.system_resource("SCRIPTS")) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    assert tool.is_file(), f"blender_ext.py not found at {tool}"
    res = subprocess.run(
        [sys.executable, str(tool), "validate", str(REPO / "blender_addon")],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0 and "Success" in res.stdout, res.stdout + res.stderr


def test_the_api_the_minimum_version_needs_is_used_and_present() -> None:
    """The manifest's minimum is real: the add-on uses Scene.compositing_node_group (new in 5.0)."""
    import bpy

    src = (REPO / "blender_addon" / "results.py").read_text("utf-8")
    assert "compositing_node_group" in src
    assert (
        hasattr(bpy.types.Scene, "bl_rna") and "compositing_node_group" in bpy.types.Scene.bl_rna.properties
    )
    assert bpy.app.version >= (5, 0, 0)


def _build(out: Path) -> Path:
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import build_blender_addon
    finally:
        sys.path.remove(str(REPO / "tools"))
    return build_blender_addon.build(out)


def test_zip_layout(tmp_path: Path) -> None:
    path = _build(tmp_path)
    assert path.name == "dvp-0.1.0.zip"
    names = set(zipfile.ZipFile(path).namelist())
    assert {"blender_manifest.toml", "__init__.py", "operators.py", "dvp_core/__init__.py"} <= names
    assert "dvp_core/track.py" in names and not any("__pycache__" in n for n in names)
    # reproducible
    again = _build(tmp_path / "again")
    assert again.read_bytes() == path.read_bytes()


def test_zip_installs_in_fresh_session(factory: Any, tmp_path: Path, make_track: Any) -> None:
    bpy = factory
    path = _build(tmp_path / "dist")
    repo_dir = tmp_path / "repo"
    repo_dir.mkdir()
    repo = bpy.context.preferences.extensions.repos.new(
        name="dvp_test", module="dvp_test", custom_directory=str(repo_dir), source="USER"
    )
    module = "bl_ext.dvp_test.dvp"
    try:
        result = bpy.ops.extensions.package_install_files(
            filepath=str(path), repo="dvp_test", enable_on_install=True
        )
        assert result == {"FINISHED"}
        assert (repo_dir / "dvp" / "blender_manifest.toml").is_file()
        assert module in bpy.context.preferences.addons.keys()
        mod = sys.modules[module]
        assert sys.modules[module + ".core"].from_vendored  # uses the zip's own dvp_core
        assert hasattr(bpy.types.Scene, "dvp")
        track = make_track(range(1, 6))
        tpath = tmp_path / "t.npz"
        track.save(tpath)
        assert bpy.ops.dvp.import_track(filepath=str(tpath)) == {"FINISHED"}
        assert bpy.data.objects["DVP Head"]["dvp_head"] == str(tpath)
        assert mod.__version__ == "0.1.0"
    finally:
        if module in bpy.context.preferences.addons.keys():
            bpy.ops.preferences.addon_disable(module=module)
        bpy.context.preferences.extensions.repos.remove(repo)
    assert not hasattr(bpy.types.Scene, "dvp")


def test_conftest_track_is_valid(make_track: Any) -> None:
    track = make_track([1, 2, 5])
    with pytest.raises(KeyError):
        track.channel("nope")
