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
            (
                "render",
                "Render",
                "dvp render: the edited head (exported as a track) through the trained model",
            ),
            (
                "reenact",
                "Reenact",
                "dvp reenact: a source-to-target job with the edited curves applied on top",
            ),
        ),
        default="render",
    )
    existing: EnumProperty(  # type: ignore[valid-type]
        name="Existing frames",
        description="What dvp render does with output frames already on disk",
        items=(
            ("overwrite", "Overwrite", "replace them (--overwrite)"),
            ("resume", "Resume", "skip them (--resume)"),
            ("fail", "Stop", "refuse to render over them"),
        ),
        default="overwrite",
    )
    source: StringProperty(  # type: ignore[valid-type]
        name="Source",
        description="Reenact: the source actor's video (movie or image sequence)",
        subtype="FILE_PATH",
        default="",
    )
    target: StringProperty(  # type: ignore[valid-type]
        name="Target",
        description="Reenact: the target actor's video (movie or image sequence)",
        subtype="FILE_PATH",
        default="",
    )
    reenact_mode: EnumProperty(  # type: ignore[valid-type]
        name="Transfer",
        description="Reenact: which parameters come from the source (dvp reenact --mode)",
        items=(
            ("full", "Full", "head pose, expression, gaze and blinks"),
            ("expression", "Expression", "expression only"),
            ("gaze", "Gaze", "gaze and blinks only"),
            ("pose", "Pose", "head pose only"),
            ("dubbing", "Dubbing", "mouth only (visual dubbing)"),
        ),
        default="full",
    )
    job: StringProperty(  # type: ignore[valid-type]
        name="Job folder",
        description="Reenact: the job folder (frames land in <job>/frames/frame.####.exr)",
        subtype="DIR_PATH",
        default="//dvp_reenact/",
    )
    curve_groups: EnumProperty(  # type: ignore[valid-type]
        name="Curves",
        description="Reenact: the channel groups whose Blender curves override the transferred values",
        items=(
            ("head", "Head", "head.rx .. head.tz"),
            ("gaze", "Gaze", "gaze.*"),
            ("blink", "Blink", "blink.*"),
            ("controls", "Controls", "named face.* controls"),
            ("expression", "Expression", "raw expr.*"),
            ("light", "Light", "light.sh.*"),
            ("look", "Look-at", "look.* (the look target Empty and look.weight)"),
        ),
        options={"ENUM_FLAG"},
        default={"gaze", "blink"},
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
