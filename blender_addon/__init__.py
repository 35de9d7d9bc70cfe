"""DVP (Deep Video Portraits) for Blender: face tracks as F-curves, edit and retime, render through ``dvp``.

A Blender 5.0+ extension (see ``blender_manifest.toml``; 5.0 is the first with the compositor as a node group, ``Scene.compositing_node_group``), tested with Blender 5.0.1. The add-on is a thin
adapter: it imports only ``dvp_engine.core`` (vendored into the zip as ``dvp_core``) and runs the heavy
engine out of process through the ``dvp`` command. Modules: :mod:`.convert` (camera conventions, no bpy),
:mod:`.runner` (the ``dvp`` subprocess, no bpy), :mod:`.keyframes` (channelbag bulk keys),
:mod:`.scene_io` (import/export), :mod:`.properties`, :mod:`.operators`, :mod:`.panels`.
"""

from __future__ import annotations

ADDON_ID = "dvp"
__version__ = "0.1.0"

import bpy  # noqa: E402

from . import operators, panels, preview, properties  # noqa: E402

#: Registered in this order, unregistered in reverse.
classes = properties.classes + operators.classes + preview.classes + panels.classes


def _menu_import(self: bpy.types.Menu, context: bpy.types.Context) -> None:
    self.layout.operator(operators.DVP_OT_import_track.bl_idname, text="DVP Face Track (.npz)")


def _menu_export(self: bpy.types.Menu, context: bpy.types.Context) -> None:
    self.layout.operator(operators.DVP_OT_export_curves.bl_idname, text="DVP Curves/Track (.json, .npz)")


def register() -> None:
    """Register the classes in order, then ``Scene.dvp`` and the File menu entries."""
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.dvp = bpy.props.PointerProperty(type=properties.DVP_SceneSettings)
    bpy.types.TOPBAR_MT_file_import.append(_menu_import)
    bpy.types.TOPBAR_MT_file_export.append(_menu_export)


def unregister() -> None:
    """Undo :func:`register` in reverse order."""
    preview.stop_servers()
    bpy.types.TOPBAR_MT_file_export.remove(_menu_export)
    bpy.types.TOPBAR_MT_file_import.remove(_menu_import)
    del bpy.types.Scene.dvp
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
