"""Track <-> Blender scene: Import Track builds the camera and head Empty; export evaluates them back.

Host logic used by the operators (and directly by tests). Conventions are in :mod:`.convert`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import bpy
import numpy as np
import numpy.typing as npt
from mathutils import Matrix

from . import convert, keyframes
from .core import (
    MOVIE_SUFFIXES,
    Curve,
    CurveSet,
    FaceTrack,
    InputError,
    Key,
    apply_curves,
    curves,
    gaze,
    layout,
)

HEAD_MARK = "dvp_head"
"""Custom property marking the head Empty (its value is the source track's path)."""
CHANNELS_PROP = "dvp_channels"
"""Custom property on the head Empty listing the keyed channel names (comma separated)."""
ACTION_NAME = "DVP head"
CAMERA_NAME = "DVP Camera"
HEAD_NAME = "DVP Head"
LOOK_TARGET_PROP = "dvp_look_target"
"""Custom property on the head Empty: the look-at target Empty (an object pointer)."""
LOOK_SUFFIX = "_look_target"
"""The target Empty is named ``<head name>_look_target``."""
LOOK_ACTION_NAME = "DVP look target"
LOOK_WEIGHT = layout.LOOK_AT[3]
LOOK_TARGET = layout.LOOK_AT[:3]

_DESCRIPTIONS = {
    "gaze.left.x": "actor's left eye yaw, degrees (+ looks toward image right)",
    "gaze.left.y": "actor's left eye pitch, degrees (+ looks down)",
    "gaze.right.x": "actor's right eye yaw, degrees",
    "gaze.right.y": "actor's right eye pitch, degrees",
    "blink.left": "actor's left eyelid closure, 0 open .. 1 closed",
    "blink.right": "actor's right eyelid closure, 0 open .. 1 closed",
    layout.CONFIDENCE: "tracking confidence 0..1 (informational)",
    layout.VALID: "1 where the face was tracked, 0 where it was lost",
    LOOK_WEIGHT: "0 the gaze curves alone .. 1 both eyes look at the look target Empty",
}


class HeadNotFound(InputError):
    """No (unique) head Empty to export."""


# ---------------------------------------------------------------------------------------------- import
def _group_of(name: str) -> str:
    if name.startswith("face."):
        return "controls"
    for group, names in layout.CHANNEL_GROUPS.items():
        if name in names:
            return group
    return "other"


def prop_channels(track: FaceTrack) -> dict[str, npt.NDArray[np.float32]]:
    """Channels that become custom properties: everything but ``head.*`` and the look-at target
    ``look.x look.y look.z`` (the target Empty's location), plus named ``face.*`` controls."""
    out = {k: v for k, v in track.channels.items() if not k.startswith("head.") and k not in LOOK_TARGET}
    for name in curves.control_directions(track):
        out[name] = curves.control_values(track, name).astype(np.float32)
    return out


def setup_camera(
    scene: bpy.types.Scene, track: FaceTrack, camera: bpy.types.Object | None = None
) -> bpy.types.Object:
    """A camera (new or given) matching the track's intrinsics; sets the scene's resolution and rate.

    The camera sits at the world origin looking along +Y with +Z up (rotation X 90 degrees), so the head
    appears in front of it in Blender's usual front view.
    """
    params = convert.intrinsics_to_camera(track.intrinsics, track.width, track.height)
    if camera is None:
        cam_data = bpy.data.cameras.new(CAMERA_NAME)
        camera = bpy.data.objects.new(CAMERA_NAME, cam_data)
        scene.collection.objects.link(camera)
        camera.rotation_euler = (math.pi / 2, 0.0, 0.0)
    cam = camera.data
    cam.type = "PERSP"
    cam.sensor_fit = "HORIZONTAL"
    cam.sensor_width = params.sensor_width_mm
    cam.lens_unit = "MILLIMETERS"
    cam.lens = params.lens_mm
    cam.shift_x = params.shift_x
    cam.shift_y = params.shift_y
    cam.clip_start = 0.01
    cam.clip_end = 100.0
    r = scene.render
    r.resolution_x = params.resolution_x
    r.resolution_y = params.resolution_y
    r.resolution_percentage = 100
    r.pixel_aspect_x = params.pixel_aspect_x
    r.pixel_aspect_y = params.pixel_aspect_y
    try:
        r.fps, r.fps_base = convert.rate_to_blender(Fraction(track.rate))
    except convert.RateError as exc:
        raise InputError(str(exc)) from None
    scene.camera = camera
    return camera


def import_track(
    context: bpy.types.Context,
    track: FaceTrack,
    source: str | Path = "",
    plate: str | Path | None = None,
    set_range: bool = True,
) -> tuple[bpy.types.Object, bpy.types.Object]:
    """Build the camera and the keyed head Empty for ``track``; returns ``(head, camera)``.

    The Empty is parented to the camera; ``location``/``rotation_euler`` hold the head pose converted by
    :func:`convert.pose_to_blender`; custom properties hold gaze, blinks, expression, light, named
    controls and the ``track.*`` channels, all keyed exactly at the tracked frames (linear interpolation).
    """
    scene = context.scene
    camera = setup_camera(scene, track)
    head = bpy.data.objects.new(HEAD_NAME, None)
    head.empty_display_type = "ARROWS"
    head.empty_display_size = 0.1
    scene.collection.objects.link(head)
    head.parent = camera
    head.matrix_parent_inverse = Matrix.Identity(4)
    head.rotation_mode = "XYZ"
    head[HEAD_MARK] = str(source)

    frames = track.frames.astype(np.float64)
    props = prop_channels(track)
    head[CHANNELS_PROP] = ",".join(props)
    keyframes.ensure_custom_props(head, props, _DESCRIPTIONS)
    bag = keyframes.ensure_channelbag(head, ACTION_NAME)
    zeros = np.zeros(track.n_frames, np.float32)
    rot = np.stack([track.channels.get(c, zeros) for c in layout.HEAD_ROTATION], axis=1)
    trans = np.stack([track.channels.get(c, zeros) for c in layout.HEAD_TRANSLATION], axis=1)
    euler, loc = convert.pose_to_blender(rot, trans)
    for i in range(3):
        keyframes.key_fcurve(bag, "rotation_euler", i, frames, euler[:, i], group="head.rotate")
        keyframes.key_fcurve(bag, "location", i, frames, loc[:, i], group="head.translate")
    for name, values in props.items():
        interp = "CONSTANT" if name == layout.VALID else "LINEAR"
        keyframes.key_fcurve(
            bag, keyframes.prop_path(name), 0, frames, values, group=_group_of(name), interpolation=interp
        )
    if all(c in track.channels for c in layout.LOOK_AT):
        target = ensure_look_target(context, head, camera)
        pts = np.stack([track.channels[c] for c in LOOK_TARGET], axis=1)
        loc_bl = convert.points_to_blender(pts)
        tbag = keyframes.ensure_channelbag(target, LOOK_ACTION_NAME)
        for i in range(3):
            keyframes.key_fcurve(tbag, "location", i, frames, loc_bl[:, i], group="look")
    if set_range and track.n_frames:
        scene.frame_start = int(track.frames[0])
        scene.frame_end = int(track.frames[-1])
        scene.frame_set(int(track.frames[0]))
    if plate:
        add_plate(camera, Path(plate))
        head["dvp_plate"] = str(plate)
    return head, camera


def look_target(head: bpy.types.Object) -> bpy.types.Object | None:
    """The head's look-at target Empty (:data:`LOOK_TARGET_PROP`), or None (none made, or deleted)."""
    obj = head.get(LOOK_TARGET_PROP)
    if not isinstance(obj, bpy.types.Object) or obj.name not in bpy.data.objects:
        return None
    return obj


def ensure_look_target(
    context: bpy.types.Context, head: bpy.types.Object, camera: bpy.types.Object | None = None
) -> bpy.types.Object:
    """The head's look-at target Empty, created if missing: ``<head>_look_target``, parented to the camera.

    Its location relative to the camera is the target of ``look.x look.y look.z`` (Blender camera frame,
    :func:`convert.points_to_blender`); a new one starts halfway between the lens and the head at the current
    frame (in front of the face). The head gets the ``look.weight`` custom property (1.0 when new) so the
    eyes follow the target; key both like any other channel.
    """
    target = look_target(head)
    if target is None:
        cam = camera if camera is not None else reference_camera(context, head)
        target = bpy.data.objects.new(head.name + LOOK_SUFFIX, None)
        target.empty_display_type = "SPHERE"
        target.empty_display_size = 0.01
        context.scene.collection.objects.link(target)
        rel = cam.matrix_world.inverted_safe() @ head.matrix_world
        target.parent = cam
        target.matrix_parent_inverse = Matrix.Identity(4)
        target.location = 0.5 * rel.translation
        head[LOOK_TARGET_PROP] = target
    if LOOK_WEIGHT not in head.keys():
        keyframes.ensure_custom_props(head, [LOOK_WEIGHT], _DESCRIPTIONS)
        head[LOOK_WEIGHT] = 1.0
    names = [n for n in str(head.get(CHANNELS_PROP, "")).split(",") if n]
    if LOOK_WEIGHT not in names:
        head[CHANNELS_PROP] = ",".join(names + [LOOK_WEIGHT])
    head.update_tag()  # custom properties set from Python reach the evaluated copy only when tagged
    return target


def add_plate(camera: bpy.types.Object, plate: Path) -> None:
    """Show the footage behind the camera view: a movie clip, or an image sequence from its first file.

    Frame numbers are dvp's: a movie's first frame is frame 1 (as ``dvp track`` numbers it) and an image
    sequence's file ``N`` is frame ``N``, so scene frame ``f`` shows plate frame ``f`` wherever the track
    starts (a track of frames 181-200 shows movie frame 181 at scene frame 181).
    """
    if not plate.is_file():
        raise InputError("plate not found", path=plate)
    cam = camera.data
    cam.show_background_images = True
    bg = cam.background_images.new()
    if plate.suffix.lower() in MOVIE_SUFFIXES:
        clip = bpy.data.movieclips.load(str(plate))
        clip.frame_start = 1
        clip.frame_offset = 0
        bg.source = "MOVIE_CLIP"
        bg.clip = clip
        return
    img = bpy.data.images.load(str(plate), check_existing=True)
    m = re.search(r"(\d+)(\.[^.]+)$", plate.name)
    if m:
        img.source = "SEQUENCE"
        siblings = sorted(plate.parent.glob(plate.name[: m.start(1)] + "*" + m.group(2)))
        number = int(m.group(1))
        bg.image_user.frame_duration = max(1, len(siblings))
        bg.image_user.frame_start = number  # scene frame N shows file N
        bg.image_user.frame_offset = number - 1
        bg.image_user.use_auto_refresh = True
    bg.source = "IMAGE"
    bg.image = img


# ---------------------------------------------------------------------------------------------- export
def find_head(context: bpy.types.Context) -> bpy.types.Object:
    """The head Empty: the active object (or its ancestor) if it is one, else the only one in the scene."""
    obj = context.active_object
    while obj is not None:
        if HEAD_MARK in obj.keys():
            return obj
        obj = obj.parent
    heads = [o for o in context.scene.objects if HEAD_MARK in o.keys()]
    if len(heads) == 1:
        return heads[0]
    if not heads:
        raise HeadNotFound(
            "no DVP head Empty in this scene: run Import Track first (3D View sidebar > DVP), or select "
            f"the Empty it created ('{HEAD_NAME}', which has the '{HEAD_MARK}' custom property)"
        )
    names = ", ".join(sorted(o.name for o in heads))
    raise HeadNotFound(f"several DVP head Empties ({names}): select the one to export and try again")


def reference_camera(context: bpy.types.Context, head: bpy.types.Object) -> bpy.types.Object:
    """The camera the head is tracked against: its parent camera, else the scene camera."""
    obj = head.parent
    while obj is not None:
        if obj.type == "CAMERA":
            return obj
        obj = obj.parent
    if context.scene.camera is not None:
        return context.scene.camera
    raise HeadNotFound(f"{head.name}: no camera to export against (parent it to the DVP Camera)")


def output_frames(scene: bpy.types.Scene) -> npt.NDArray[np.int64]:
    """The scene's output frames ``frame_start..frame_end`` step ``frame_step``."""
    return np.arange(scene.frame_start, scene.frame_end + 1, max(1, scene.frame_step), dtype=np.int64)


def evaluate_head(
    context: bpy.types.Context, head: bpy.types.Object, frames: npt.ArrayLike
) -> dict[str, npt.NDArray[np.float32]]:
    """Channels of the evaluated scene at each frame (NLA, modifiers, drivers, constraints baked).

    Returns channel name -> ``(F,)`` values in engine units: the head pose from the Empty's evaluated
    matrix relative to the camera, ``look.x look.y look.z`` from the look target Empty's evaluated world
    position relative to the camera (OpenCV camera frame, :func:`convert.points_from_blender`) when the head
    has one, every other channel from the evaluated custom properties (a property the artist deleted is left
    out; a ``.npz`` export then fills a missing packed channel with 0).
    """
    scene = context.scene
    camera = reference_camera(context, head)
    target = look_target(head)
    present = set(head.keys())
    names = [n for n in str(head.get(CHANNELS_PROP, "")).split(",") if n and n in present]
    fr = np.asarray(frames, dtype=np.int64).reshape(-1)
    rel = np.empty((len(fr), 4, 4))
    look_bl = np.empty((len(fr), 3))
    values = np.empty((len(fr), len(names)), dtype=np.float64)
    current = scene.frame_current
    try:
        for i, f in enumerate(fr):
            scene.frame_set(int(f))
            dg = context.evaluated_depsgraph_get()
            h = head.evaluated_get(dg)
            c = camera.evaluated_get(dg)
            rel[i] = np.array(c.matrix_world.inverted_safe() @ h.matrix_world)
            if target is not None:
                tw = target.evaluated_get(dg).matrix_world.translation
                look_bl[i] = np.array(c.matrix_world.inverted_safe() @ tw)
            for j, n in enumerate(names):
                values[i, j] = float(h.get(n, 0.0))
    finally:
        scene.frame_set(current)
    rot, trans = convert.matrices_to_pose(rel)
    out: dict[str, npt.NDArray[np.float32]] = {}
    for k, name in enumerate(layout.HEAD_ROTATION):
        out[name] = rot[:, k].astype(np.float32)
    for k, name in enumerate(layout.HEAD_TRANSLATION):
        out[name] = trans[:, k].astype(np.float32)
    if target is not None:
        look_cv = convert.points_from_blender(look_bl)
        for k, name in enumerate(LOOK_TARGET):
            out[name] = look_cv[:, k].astype(np.float32)
    for j, n in enumerate(names):
        col = values[:, j]
        if n == layout.VALID:
            col = (col >= 0.5).astype(np.float64)
        out[n] = col.astype(np.float32)
    return out


def scene_intrinsics(
    scene: bpy.types.Scene, camera: bpy.types.Object
) -> tuple[tuple[float, float, float, float], int, int]:
    """``((fx, fy, cx, cy), width, height)`` of a camera under the scene's render settings."""
    r = scene.render
    cam = camera.data
    if cam.sensor_fit not in ("HORIZONTAL", "AUTO") or (
        cam.sensor_fit == "AUTO" and r.resolution_y > r.resolution_x
    ):
        raise InputError(f"{camera.name}: export needs sensor fit Horizontal (as Import Track sets it)")
    params = convert.CameraParams(
        lens_mm=cam.lens,
        sensor_width_mm=cam.sensor_width,
        shift_x=cam.shift_x,
        shift_y=cam.shift_y,
        resolution_x=r.resolution_x,
        resolution_y=r.resolution_y,
        pixel_aspect_x=r.pixel_aspect_x,
        pixel_aspect_y=r.pixel_aspect_y,
    )
    return convert.camera_to_intrinsics(params), r.resolution_x, r.resolution_y


def scene_rate(scene: bpy.types.Scene) -> Fraction:
    """The scene's exact frame rate (:func:`convert.blender_to_rate`); InputError if it has none."""
    try:
        return convert.blender_to_rate(scene.render.fps, scene.render.fps_base)
    except convert.RateError as exc:
        raise InputError(str(exc)) from None


def curve_set(
    frames: npt.ArrayLike, channels: Mapping[str, npt.ArrayLike], metadata: dict[str, Any]
) -> CurveSet:
    """An ``override`` curve per channel with a linear key at every frame; ``face.*`` controls last."""
    fr = np.asarray(frames, dtype=np.float64).reshape(-1)
    order = sorted(channels, key=lambda n: (n.startswith("face."), 0))
    out: dict[str, Curve] = {}
    for name in order:
        vals = np.asarray(channels[name], dtype=np.float64).reshape(-1)
        interp = "constant" if name == layout.VALID else "linear"
        out[name] = Curve(keys=[Key(float(f), float(v), interp) for f, v in zip(fr, vals, strict=True)])
    return CurveSet(curves=out, metadata=metadata)


def channel_group(name: str) -> str:
    """The panel's curve group of a channel: head, gaze, blink, controls, expression, look, light or track."""
    if name.startswith("face."):
        return "controls"
    for prefix, group in (
        ("head.", "head"),
        ("gaze.", "gaze"),
        ("blink.", "blink"),
        ("expr.", "expression"),
        ("look.", "look"),
    ):
        if name.startswith(prefix):
            return group
    return "light" if name.startswith("light.") else "track"


def export(
    context: bpy.types.Context,
    path: str | Path,
    head: bpy.types.Object | None = None,
    keep: Callable[[str], bool] | None = None,
) -> tuple[Path, int]:
    """Evaluate the head at every output frame and write a curve file (``.json``) or a track (``.npz``).

    A ``.npz`` track takes identity, reflectance and metadata (named controls) from the source track the
    head was imported from; the frames are the scene's output frames, the intrinsics and rate those of the
    scene camera. Named controls ``face.*`` are applied over the expression coefficients as overrides along
    their directions (:func:`dvp_engine.core.apply_curves`). ``keep`` selects the channels written to a
    curve file (default all). Returns ``(path, number of frames)``.
    """
    scene = context.scene
    head = head if head is not None else find_head(context)
    dest = Path(path)
    frames = output_frames(scene)
    chans = evaluate_head(context, head, frames)
    camera = reference_camera(context, head)
    meta = {"source": str(head.get(HEAD_MARK, "")), "exported_from": "blender", "blend": bpy.data.filepath}
    src_path = Path(str(head.get(HEAD_MARK, "")))
    src = FaceTrack.load(src_path) if src_path.is_file() else None
    if dest.suffix == ".json":
        kept = {k: v for k, v in chans.items() if keep is None or keep(k)}
        if not kept:
            raise InputError("no channels selected to export", path=dest)
        if keep is None:  # the whole head as the scene shows it (reenact's selections meet another pose)
            check_look_at(chans, frames, src)
        curve_set(frames, kept, meta).save(dest)
        return dest, len(frames)
    if dest.suffix != ".npz":
        raise InputError("export to a .npz track or a .json curve file", path=dest)
    if src is None:
        raise InputError(
            "the head's source track is missing (needed for identity and controls): re-import it or "
            "export a .json curve file instead",
            path=src_path,
        )
    intr, width, height = scene_intrinsics(scene, camera)
    base = {k: v for k, v in chans.items() if not k.startswith("face.")}
    for name in layout.FRAME_CHANNELS:
        base.setdefault(name, np.zeros(len(frames), np.float32))
    rate = scene_rate(scene)
    track = FaceTrack(
        frames=frames,
        rate=rate,
        width=width,
        height=height,
        intrinsics=intr,
        channels=base,
        identity=src.identity,
        reflectance=src.reflectance,
        metadata={**src.metadata, "edited_in": meta},
        eyes=src.eyes,
    )
    controls = {k: v for k, v in chans.items() if k.startswith("face.")}
    if controls:
        track = apply_curves(track, curve_set(frames, controls, {}))
    check_look_at(track.channels, frames, src)
    track.save(dest)
    return dest, len(frames)


def _model_eye_centres() -> npt.NDArray[np.float64] | None:
    """The default face model's eyeball centres ``(2, 3)`` (model frame, metres), or None where only the
    vendored ``dvp_core`` is installed (no face model: ``dvp render`` checks the target then)."""
    try:
        from dvp_engine.facemodel import load_default_model
    except ImportError:
        return None
    model = load_default_model()
    return np.stack([model.eyeball_left_center, model.eyeball_right_center]).astype(np.float64)


def check_look_at(
    channels: Mapping[str, npt.ArrayLike], frames: npt.ArrayLike, source: FaceTrack | None
) -> None:
    """Refuse a look-at target the render would refuse (behind the face where ``look.weight`` > 0, or a
    weight outside 0..1), naming the frame, with the eyeball centres ``dvp render`` uses: the source track's
    eye calibration, else the face model's.

    Raises:
        InputError: ``frame N: look target: ...`` from :func:`dvp_engine.core.gaze.resolved_gaze`.
    """
    if LOOK_WEIGHT not in channels:
        return
    if any(c not in channels for c in layout.HEAD_ROTATION + layout.HEAD_TRANSLATION + layout.GAZE):
        return
    centres = source.eyes.centres if source is not None and source.eyes is not None else _model_eye_centres()
    if centres is None:
        return
    numbers = [int(f) for f in np.asarray(frames).reshape(-1)]
    try:
        gaze.resolved_gaze(channels, centres, numbers)
    except InputError as exc:
        text, prefix = str(exc), f"frame {exc.frame}: "
        text = text[len(prefix) :] if exc.frame is not None and text.startswith(prefix) else text
        raise InputError(f"look target: {text}", frame=exc.frame) from None
