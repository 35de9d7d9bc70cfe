"""The DVP tab in the 3D View sidebar (N panel)."""

from __future__ import annotations

import bpy

from . import operators


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


classes = (VIEW3D_PT_dvp,)
