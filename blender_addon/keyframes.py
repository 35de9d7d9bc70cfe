"""Bulk keyframing and reading through Blender 5.0's layered-action API (``Action.fcurves`` is gone).

Keys are written with ``keyframe_points.add(n)`` + ``foreach_set`` on F-curves of the action slot's
channelbag (``bpy_extras.anim_utils.action_ensure_channelbag_for_slot``), never one ``keyframe_insert`` per
key, so a few thousand frames of 100+ channels import in well under a second.
"""

from __future__ import annotations

from collections.abc import Iterable

import bpy
import numpy as np
import numpy.typing as npt
from bpy_extras import anim_utils

_INTERP = {"CONSTANT": 0, "LINEAR": 1, "BEZIER": 2}


def prop_path(name: str) -> str:
    """The RNA data path of a custom property: ``'["gaze.left.x"]'``."""
    return '["' + name.replace("\\", "\\\\").replace('"', '\\"') + '"]'


def ensure_channelbag(obj: bpy.types.ID, action_name: str) -> bpy.types.ActionChannelbag:
    """The channelbag of ``obj``'s action slot, creating the action, the slot and the bag if needed."""
    adt = obj.animation_data or obj.animation_data_create()
    if adt.action is None:
        adt.action = bpy.data.actions.new(action_name)
    action = adt.action
    if adt.action_slot is None:
        slot = action.slots.new(id_type=obj.id_type, name=obj.name)
        adt.action_slot = slot
    return anim_utils.action_ensure_channelbag_for_slot(action, adt.action_slot)


def channelbag_of(obj: bpy.types.ID) -> bpy.types.ActionChannelbag | None:
    """The channelbag of the action slot assigned to ``obj`` (``None`` if it has no animation)."""
    adt = obj.animation_data
    if adt is None or adt.action is None or adt.action_slot is None:
        return None
    return anim_utils.action_get_channelbag_for_slot(adt.action, adt.action_slot)


def key_fcurve(
    bag: bpy.types.ActionChannelbag,
    data_path: str,
    index: int,
    frames: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    group: str = "",
    interpolation: str = "LINEAR",
) -> bpy.types.FCurve:
    """Replace the keys of one F-curve with ``(frames[i], values[i])`` in one bulk write."""
    f = np.asarray(frames, dtype=np.float32).reshape(-1)
    v = np.asarray(values, dtype=np.float32).reshape(-1)
    if f.shape != v.shape:
        raise ValueError(f"{data_path}[{index}]: {len(f)} frames for {len(v)} values")
    fc = bag.fcurves.find(data_path, index=index)
    if fc is not None:
        bag.fcurves.remove(fc)
    fc = (
        bag.fcurves.new(data_path, index=index, group_name=group)
        if group
        else bag.fcurves.new(data_path, index=index)
    )
    n = len(f)
    fc.keyframe_points.add(n)
    co = np.empty(2 * n, dtype=np.float32)
    co[0::2] = f
    co[1::2] = v
    fc.keyframe_points.foreach_set("co", co)
    fc.keyframe_points.foreach_set("interpolation", np.full(n, _INTERP[interpolation], dtype=np.int32))
    fc.update()
    return fc


def read_fcurve(fc: bpy.types.FCurve) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Key frames and values of an F-curve: ``((K,), (K,))`` float32."""
    n = len(fc.keyframe_points)
    co = np.empty(2 * n, dtype=np.float32)
    fc.keyframe_points.foreach_get("co", co)
    return co[0::2].copy(), co[1::2].copy()


def fcurves_by_path(bag: bpy.types.ActionChannelbag) -> dict[tuple[str, int], bpy.types.FCurve]:
    """All F-curves of a channelbag by ``(data_path, array_index)``."""
    return {(fc.data_path, fc.array_index): fc for fc in bag.fcurves}


def soft_range(name: str) -> tuple[float, float]:
    """The slider range of a channel's property (values outside it can still be typed)."""
    if name.startswith(("blink.", "track.")) or name == "look.weight":
        return 0.0, 1.0
    if name.startswith("gaze."):
        return -40.0, 40.0
    if name.startswith("light."):
        return -2.0, 2.0
    return -3.0, 3.0  # face.* controls and expr.* coefficients: 1.0 is a strong expression


def ensure_custom_props(
    obj: bpy.types.ID, names: Iterable[str], descriptions: dict[str, str] | None = None
) -> None:
    """Create float custom properties (0.0) so animation has something to write into, with soft ranges."""
    for name in names:
        if name not in obj.keys():
            obj[name] = 0.0
        lo, hi = soft_range(name)
        ui = obj.id_properties_ui(name)
        ui.update(soft_min=lo, soft_max=hi)
        if descriptions and name in descriptions:
            ui.update(description=descriptions[name])
