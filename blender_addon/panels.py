"""The DVP tab in the 3D View sidebar (N panel)."""

from __future__ import annotations

import bpy

from . import keyframes, operators, scene_io


class VIEW3D_PT_dvp(bpy.types.Panel):  # type: ignore[misc]
    """Settings and the Import / Export / Render buttons."""

    bl_label = "Deep Video Portraits"
    bl_idname = "VIEW3D_PT_dvp"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "DVP"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.dvp
        col = layout.column(align=True)
        col.operator(operators.DVP_OT_import_track.bl_idname, icon="IMPORT")
        col.operator(operators.DVP_OT_export_curves.bl_idname, icon="EXPORT")
        layout.separator()
        layout.prop(settings, "dvp_executable")
        layout.prop(settings, "mode", expand=True)
        layout.prop(settings, "model")
        if settings.mode == "render":
            layout.prop(settings, "output")
            layout.prop(settings, "existing")
        else:
            layout.prop(settings, "source")
            layout.prop(settings, "target")
            layout.prop(settings, "reenact_mode")
            layout.prop(settings, "job")
            layout.label(text="Blender curves override:")
            layout.prop(settings, "curve_groups", expand=True)
        layout.prop(settings, "load_result")
        scene = context.scene
        layout.label(text=f"Frames {scene.frame_start}-{scene.frame_end} (scene range)")
        layout.operator(operators.DVP_OT_render.bl_idname, icon="RENDER_ANIMATION")
        row = layout.row(align=True)
        row.operator("dvp.preview_frame", icon="RENDER_STILL")
        row.operator("dvp.load_overlay", icon="MOD_WIREFRAME")


def control_rows(obj: bpy.types.Object | None) -> list[tuple[str, str]]:
    """``(data path, label)`` of the head's named controls ``face.*``, in the order they were keyed."""
    if obj is None:
        return []
    names = [n for n in str(obj.get("dvp_channels", "")).split(",") if n.startswith("face.") and n in obj]
    return [(keyframes.prop_path(n), n[5:].replace("_", " ")) for n in names]


def panel_head(context: bpy.types.Context) -> bpy.types.Object | None:
    """The head Empty the panel shows: the selected one (or its ancestor), else the scene's only one."""
    try:
        return scene_io.find_head(context)
    except scene_io.HeadNotFound:
        return None


class VIEW3D_PT_dvp_controls(bpy.types.Panel):  # type: ignore[misc]
    """The head's named expression controls (face.*) as sliders; keyframe them with I over a slider."""

    bl_label = "Expression controls"
    bl_idname = "VIEW3D_PT_dvp_controls"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "DVP"
    bl_parent_id = "VIEW3D_PT_dvp"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return bool(control_rows(panel_head(context)))

    def draw(self, context: bpy.types.Context) -> None:
        head = panel_head(context)
        col = self.layout.column(align=True)
        for path, label in control_rows(head):
            col.prop(head, path, text=label, slider=True)


class VIEW3D_PT_dvp_look(bpy.types.Panel):  # type: ignore[misc]
    """The look-at target: the Empty the eyes follow and the head's look.weight."""

    bl_label = "Look at"
    bl_idname = "VIEW3D_PT_dvp_look"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "DVP"
    bl_parent_id = "VIEW3D_PT_dvp"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return panel_head(context) is not None

    def draw(self, context: bpy.types.Context) -> None:
        head = panel_head(context)
        if head is None:
            return
        col = self.layout.column(align=True)
        target = scene_io.look_target(head)
        if target is None:
            col.operator(operators.DVP_OT_add_look_target.bl_idname, icon="HIDE_OFF")
        else:
            col.label(text=f"Target: {target.name}", icon="EMPTY_DATA")
        if scene_io.LOOK_WEIGHT in head.keys():
            col.prop(head, keyframes.prop_path(scene_io.LOOK_WEIGHT), text="look weight", slider=True)


classes = (VIEW3D_PT_dvp, VIEW3D_PT_dvp_controls, VIEW3D_PT_dvp_look)
