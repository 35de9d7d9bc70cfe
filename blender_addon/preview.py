"""Preview in Blender: one frame through a persistent ``dvp serve``, and the tracker's overlay as a strip.

*Preview Frame* exports the evaluated head (as *Render* does) and asks a ``dvp serve`` process, started once
and kept running with the model loaded, for the current frame; the EXR comes back as the image
``DVP preview`` (shown in any Image Editor), in seconds rather than a whole render job. *Load Overlay* runs
``dvp overlay`` on the plate for the scene's frame range and adds ``overlay.####.png`` as a strip, so the fit
of the track can be judged where the artist works.
"""

from __future__ import annotations

from pathlib import Path

import bpy

from . import operators, results, runner, scene_io
from .core import DvpError
from .properties import dvp_setting

PREVIEW_IMAGE = "DVP preview"
OVERLAY_STRIP = "DVP overlay"
PLATE_PROP = "dvp_plate"
"""Custom property on the head Empty: the plate given to Import Track (the footage ``dvp overlay`` draws on)."""

_servers: dict[str, runner.ServeProcess] = {}


def server(dvp: str) -> runner.ServeProcess:
    """The running ``dvp serve`` for this executable (started on first use, restarted if it died)."""
    proc = _servers.get(dvp)
    if proc is None or not proc.alive:
        proc = _servers[dvp] = runner.ServeProcess(dvp)
    return proc


def stop_servers() -> None:
    """End every ``dvp serve`` this session started (on unregister)."""
    for proc in _servers.values():
        proc.close()
    _servers.clear()


def preview_frame(context: bpy.types.Context, frame: int | None = None) -> bpy.types.Image:
    """Render one frame of the edited head through ``dvp serve``; returns the loaded image."""
    settings = context.scene.dvp
    dvp = runner.find_dvp(dvp_setting(context))
    if not settings.model:
        raise DvpError("set the model folder in the DVP panel (3D View sidebar > DVP)")
    model = operators._abspath(settings.model, "model folder")
    folder = operators.writable_folder(Path(operators._abspath(settings.output, "output")).parent, "output")
    head = scene_io.find_head(context)
    track_path = folder / "dvp_preview_track.npz"
    scene_io.export(context, track_path, head)
    f = int(context.scene.frame_current if frame is None else frame)
    reply = server(dvp).request(
        {
            "model": model,
            "track": str(track_path),
            "frame": f,
            "output": str(folder / "dvp_preview.####.exr"),
            "matte": "alpha",
        }
    )
    if not reply.get("ok"):
        raise DvpError(f"preview of frame {f} failed: {reply.get('error')}")
    path = str(reply["path"])
    img = bpy.data.images.get(PREVIEW_IMAGE)
    if img is None:
        img = bpy.data.images.load(path, check_existing=False)
        img.name = PREVIEW_IMAGE
    else:
        img.filepath = path
        img.reload()
    img.colorspace_settings.name = results.COLOURSPACE
    img.alpha_mode = "PREMUL"
    for area in context.screen.areas if context.screen is not None else []:
        if area.type == "IMAGE_EDITOR":
            area.spaces.active.image = img
    return img


def load_overlay(context: bpy.types.Context) -> bpy.types.Strip | None:
    """Run ``dvp overlay`` on the head's plate for the scene range and add the PNGs as a strip."""
    scene = context.scene
    dvp = runner.find_dvp(dvp_setting(context))
    head = scene_io.find_head(context)
    plate = str(head.get(PLATE_PROP, ""))
    track = str(head.get(scene_io.HEAD_MARK, ""))
    if not plate or not Path(plate).is_file():
        raise DvpError(
            "the head has no plate: import the track again with its Plate (the footage it was tracked on)"
        )
    folder = operators.writable_folder(
        Path(operators._abspath(scene.dvp.output, "output")).parent / "overlay", "overlay"
    )
    first, last = scene.frame_start, scene.frame_end
    result = runner.run_dvp(runner.overlay_command(dvp, track, plate, str(folder), f"{first}-{last}"))
    if not result.ok:
        raise DvpError(f"dvp overlay: {result.message()}")
    loaded = results.load_frames(context, str(folder / "overlay.####.png"), first, last, how="SEQUENCER")
    if loaded.strip is not None:
        loaded.strip.name = OVERLAY_STRIP
        loaded.strip.colorspace_settings.name = "sRGB"
        loaded.strip.blend_type = "REPLACE"
    return loaded.strip


class DVP_OT_preview_frame(bpy.types.Operator):  # type: ignore[misc]
    """Render the current frame of the edited head through a running dvp serve (model kept loaded)"""

    bl_idname = "dvp.preview_frame"
    bl_label = "Preview Frame"
    bl_options = {"REGISTER"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            img = preview_frame(context)
        except (DvpError, runner.DvpNotFound, OSError) as exc:
            self.report({"ERROR"}, f"Preview: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Preview of frame {context.scene.frame_current}: image '{img.name}'")
        return {"FINISHED"}


class DVP_OT_load_overlay(bpy.types.Operator):  # type: ignore[misc]
    """Draw the fitted mesh over the plate (dvp overlay) for the scene range and add it as a strip"""

    bl_idname = "dvp.load_overlay"
    bl_label = "Load Overlay"
    bl_options = {"REGISTER"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            strip = load_overlay(context)
        except (DvpError, runner.DvpNotFound, OSError) as exc:
            self.report({"ERROR"}, f"Overlay: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Overlay loaded as strip '{strip.name if strip else '-'}'")
        return {"FINISHED"}


classes = (DVP_OT_preview_frame, DVP_OT_load_overlay)
