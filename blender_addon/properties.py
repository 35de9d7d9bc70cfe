"""Add-on preferences and per-scene settings (``scene.dvp``)."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, StringProperty

ADDON_PACKAGE = __package__ or "dvp"


class DVP_AddonPreferences(bpy.types.AddonPreferences):  # type: ignore[misc]
    """Machine-wide defaults, kept in Blender's preferences."""

    bl_idname = ADDON_PACKAGE

    dvp_executable: StringProperty(  # type: ignore[valid-type]
        name="dvp executable",
        description="Path to the dvp command (empty: $DVP_EXECUTABLE, then PATH)",
        subtype="FILE_PATH",
        default="",
    )

    def draw(self, context: bpy.types.Context) -> None:
        self.layout.prop(self, "dvp_executable")


class DVP_SceneSettings(bpy.types.PropertyGroup):  # type: ignore[misc]
    """Per-scene settings shown in the 3D View sidebar's DVP tab."""

    dvp_executable: StringProperty(  # type: ignore[valid-type]
        name="dvp",
        description="Path to the dvp command for this scene (overrides the preference; empty: preference, "
        "then $DVP_EXECUTABLE, then PATH)",
        subtype="FILE_PATH",
        default="",
    )
    model: StringProperty(  # type: ignore[valid-type]
        name="Model",
        description="Folder of the trained dvp model (dvp render --model)",
        subtype="DIR_PATH",
        default="",
    )
    output: StringProperty(  # type: ignore[valid-type]
        name="Output",
        description="Output EXR sequence, one # per frame digit (// is the .blend's folder)",
        subtype="FILE_PATH",
        default="//dvp_render/frame.####.exr",
    )
    mode: EnumProperty(  # type: ignore[valid-type]
        name="Mode",
        items=(
            ("render", "Render", "dvp render: the conditioning renders through the model"),
            ("reenact", "Reenact", "dvp reenact: re-animate the target video with the edited head"),
        ),
        default="render",
    )
    load_result: EnumProperty(  # type: ignore[valid-type]
        name="Load result",
        items=(
            ("SEQUENCER", "Video Sequencer", "add the EXR sequence as an image strip"),
            ("IMAGE", "Image", "load the EXR sequence as an image (for the compositor / Image Editor)"),
            ("NONE", "Nothing", "leave the frames on disk"),
        ),
        default="SEQUENCER",
    )


def dvp_setting(context: bpy.types.Context) -> str:
    """The dvp path from the scene setting, else the add-on preference ('' if neither is set)."""
    settings = getattr(context.scene, "dvp", None)
    if settings is not None and settings.dvp_executable:
        return str(bpy.path.abspath(settings.dvp_executable))
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    if addon is not None and addon.preferences is not None and addon.preferences.dvp_executable:
        return str(bpy.path.abspath(addon.preferences.dvp_executable))
    return ""


classes = (DVP_AddonPreferences, DVP_SceneSettings)
