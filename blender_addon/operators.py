"""Operators: Import Track, Export Curves and Render (modal, out of process through ``dvp``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import bpy
from bpy.props import BoolProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from . import convert, results, runner, scene_io
from .core import DvpError, FaceTrack
from .properties import dvp_setting


class DVP_OT_import_track(bpy.types.Operator, ImportHelper):  # type: ignore[misc]
    """Import a dvp face track (.npz): a camera matching its intrinsics and a keyed head Empty"""

    bl_idname = "dvp.import_track"
    bl_label = "Import Track"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".npz"
    filter_glob: StringProperty(default="*.npz", options={"HIDDEN"})  # type: ignore[valid-type]
    plate: StringProperty(  # type: ignore[valid-type]
        name="Plate",
        description="Optional footage shown behind the camera: a movie or the first file of an image sequence",
        subtype="FILE_PATH",
        default="",
    )
    set_range: BoolProperty(  # type: ignore[valid-type]
        name="Set frame range", description="Set the scene's frame range to the track's", default=True
    )

    def execute(self, context: bpy.types.Context) -> set[str]:
        path = Path(bpy.path.abspath(self.filepath))
        try:
            track = FaceTrack.load(path)
            plate = Path(bpy.path.abspath(self.plate)) if self.plate else None
            head, _camera = scene_io.import_track(context, track, path, plate, self.set_range)
        except DvpError as exc:
            self.report({"ERROR"}, f"Import Track: {exc}")
            return {"CANCELLED"}
        for obj in context.view_layer.objects:
            obj.select_set(False)
        head.select_set(True)
        context.view_layer.objects.active = head
        self.report({"INFO"}, f"Imported {track.n_frames} frames from {path.name}")
        return {"FINISHED"}


class DVP_OT_export_curves(bpy.types.Operator, ExportHelper):  # type: ignore[misc]
    """Evaluate the head at every output frame (NLA, modifiers, drivers baked) and write a
    dvp curve file (.json) or an edited track (.npz)"""

    bl_idname = "dvp.export_curves"
    bl_label = "Export Curves"
    bl_options = {"REGISTER"}

    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json;*.npz", options={"HIDDEN"})  # type: ignore[valid-type]
    check_extension = False

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            head = scene_io.find_head(context)
            dest, n = scene_io.export(context, bpy.path.abspath(self.filepath), head)
        except DvpError as exc:
            self.report({"ERROR"}, f"Export Curves: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Exported {n} frames of {head.name} to {dest}")
        return {"FINISHED"}


class DVP_OT_add_look_target(bpy.types.Operator):  # type: ignore[misc]
    """Add an Empty the head's eyes look at (<head>_look_target, under the camera): key its location to move
    the target, and the head's look.weight (0..1) to blend it with the gaze curves"""

    bl_idname = "dvp.add_look_target"
    bl_label = "Add Look Target"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            head = scene_io.find_head(context)
            existing = scene_io.look_target(head)
            target = scene_io.ensure_look_target(context, head)
        except DvpError as exc:
            self.report({"ERROR"}, f"Add Look Target: {exc}")
            return {"CANCELLED"}
        for obj in context.view_layer.objects:
            obj.select_set(False)
        target.select_set(True)
        context.view_layer.objects.active = target
        if existing is not None:
            self.report({"INFO"}, f"{head.name} already looks at {target.name} (selected)")
        else:
            self.report(
                {"INFO"},
                f"{target.name}: the eyes of {head.name} follow it (look.weight "
                f"{float(head[scene_io.LOOK_WEIGHT]):g}); key its location to animate the target",
            )
        return {"FINISHED"}


@dataclass
class RenderJob:
    """Everything one render needs: the command line, where frames go and how to load them back."""

    command: list[str]
    pattern: str
    first: int
    last: int
    step: int
    track_path: Path
    model_dir: str = ""
    """The model folder whose crop places the frames (for reenact without a model: the job's ``model/``)."""

    @classmethod
    def prepare(cls, context: bpy.types.Context) -> RenderJob:
        """Check settings, export the evaluated head beside the output and build the ``dvp`` command.

        ``render``: the head is exported as a track (``dvp_edited_track.npz`` in the output folder) and
        rendered with ``--model``. ``reenact``: the chosen channel groups are exported as a curve file
        (``<job>/blender_curves.json``) applied over the transfer.

        Raises:
            runner.DvpNotFound: no ``dvp`` executable.
            DvpError: missing settings, no head Empty, unwritable folder.
        """
        settings = context.scene.dvp
        scene = context.scene
        dvp = runner.find_dvp(dvp_setting(context))
        first, last, step = scene.frame_start, scene.frame_end, max(1, scene.frame_step)
        frames = f"{first}-{last}" + (f"x{step}" if step > 1 else "")
        model = _abspath(settings.model, "model folder") if settings.model else ""
        head = scene_io.find_head(context)
        if settings.mode == "render":
            if not model:
                raise DvpError("set the model folder in the DVP panel (3D View sidebar > DVP)")
            pattern = _abspath(settings.output, "output")
            if "#" not in Path(pattern).name:
                raise DvpError(f"the output needs #### for the frame number, got {pattern!r}")
            out_dir = writable_folder(Path(pattern).parent, "output")
            edit_path = out_dir / "dvp_edited_track.npz"
            scene_io.export(context, edit_path, head)
            command = runner.render_command(
                dvp, model, str(edit_path), pattern, frames, existing=settings.existing
            )
        else:
            if not settings.source or not settings.target:
                raise DvpError("reenact needs the source and target videos (DVP panel: Source, Target)")
            job = writable_folder(Path(_abspath(settings.job, "job folder")), "job")
            edit_path = job / "blender_curves.json"
            groups = set(settings.curve_groups)
            scene_io.export(context, edit_path, head, keep=lambda n: scene_io.channel_group(n) in groups)
            command = runner.reenact_command(
                dvp,
                _abspath(settings.source, "source"),
                _abspath(settings.target, "target"),
                str(job),
                settings.reenact_mode,
                model or None,
                frames,
                [str(edit_path)],
            )
            pattern = runner.reenact_output(job)
            model = model or str(job / "model")
        return cls(command, pattern, first, last, step, edit_path, model)

    @property
    def total(self) -> int:
        """Number of frames to render."""
        return len(range(self.first, self.last + 1, self.step))

    def written(self) -> list[Path]:
        """Output frames on disk now."""
        return runner.sequence_files(self.pattern, self.first, self.last)

    def finish(self, context: bpy.types.Context, result: runner.RunResult) -> tuple[str, str]:
        """Report level and message; loads the frames into Blender on success."""
        files = self.written()
        if not result.ok:
            return "ERROR" if not result.cancelled else "WARNING", (
                f"{result.message()} ({len(files)} frame(s) on disk in {Path(self.pattern).parent})"
            )
        crop = convert.model_crop(self.model_dir) if self.model_dir else None
        loaded = results.load_frames(context, self.pattern, self.first, self.last, self.step, crop)
        message = f"{result.message()}: {len(files)} frame(s) in {Path(self.pattern).parent}"
        if loaded.missing:
            gaps = ", ".join(str(f) for f in loaded.missing[:8]) + (" ..." if len(loaded.missing) > 8 else "")
            return "WARNING", f"{message}; missing on disk (left as gaps): {gaps}"
        return "INFO", message


def _abspath(path: str, what: str) -> str:
    """An absolute path for a setting; ``//`` paths need a saved .blend (never the process's folder)."""
    if path.startswith("//") and not bpy.data.filepath:
        raise DvpError(
            f"the {what} {path!r} is relative to the .blend file, which is not saved yet: save the .blend "
            f"first or give an absolute {what} path in the DVP panel"
        )
    out = str(bpy.path.abspath(path))
    if out.startswith("//") or not os.path.isabs(out):
        raise DvpError(f"save the .blend first or give an absolute {what} path ({path} is relative to it)")
    return out


def writable_folder(folder: Path, what: str) -> Path:
    """Create ``folder`` if needed and check that files can be written in it (clear error otherwise)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DvpError(
            f"cannot create the {what} folder {folder} ({exc.strerror}): choose another {what} in the DVP panel"
        ) from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DvpError(
            f"the {what} folder {folder} is read-only: choose a folder you can write to in the DVP panel"
        )
    return folder


def run_job_blocking(context: bpy.types.Context, job: RenderJob) -> tuple[str, str]:
    """Run a prepared job to completion (no UI); the operator's ``execute`` and tests use it."""
    result = runner.run_dvp(job.command)
    return job.finish(context, result)


class DVP_OT_render(bpy.types.Operator):  # type: ignore[misc]
    """Render the scene's frame range through dvp out of process (Esc cancels; frames written are kept)"""

    bl_idname = "dvp.render"
    bl_label = "Render with dvp"
    bl_options = {"REGISTER"}

    _job: RenderJob | None = None
    _proc: runner.DvpProcess | None = None
    _timer: bpy.types.Timer | None = None

    def _prepare(self, context: bpy.types.Context) -> RenderJob | None:
        try:
            return RenderJob.prepare(context)
        except (DvpError, runner.DvpNotFound, OSError) as exc:
            self.report({"ERROR"}, f"Render: {exc}")
            return None

    def execute(self, context: bpy.types.Context) -> set[str]:
        job = self._prepare(context)
        if job is None:
            return {"CANCELLED"}
        level, message = run_job_blocking(context, job)
        self.report({level}, message)
        return {"FINISHED"} if level == "INFO" else {"CANCELLED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if bpy.app.background:
            return self.execute(context)
        job = self._prepare(context)
        if job is None:
            return {"CANCELLED"}
        try:
            self._proc = runner.DvpProcess(job.command)
        except OSError as exc:
            self.report({"ERROR"}, f"Render: cannot start {job.command[0]}: {exc}")
            return {"CANCELLED"}
        self._job = job
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.2, window=context.window)
        wm.progress_begin(0, 1000)
        context.workspace.status_text_set(f"dvp {context.scene.dvp.mode}: starting (Esc to cancel)")
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def _end(self, context: bpy.types.Context) -> None:
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        context.workspace.status_text_set(None)

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        proc, job = self._proc, self._job
        assert proc is not None and job is not None
        if event.type == "ESC":
            proc.cancel()
            self._end(context)
            level, message = job.finish(context, proc.result)
            self.report({level}, message)
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        for ev in proc.poll():
            if isinstance(ev, runner.Progress):
                context.window_manager.progress_update(int(1000 * ev.done / max(1, ev.total)))
                context.workspace.status_text_set(
                    f"dvp {context.scene.dvp.mode}: {ev.done}/{ev.total} frame {ev.frame} (Esc to cancel)"
                )
        if not proc.finished:
            return {"RUNNING_MODAL"}
        self._end(context)
        level, message = job.finish(context, proc.result)
        self.report({level}, message)
        return {"FINISHED"} if level == "INFO" else {"CANCELLED"}


classes = (DVP_OT_import_track, DVP_OT_export_curves, DVP_OT_add_look_target, DVP_OT_render)
