"""Render docs/images/blender_smile_render.png with Blender itself (headless bpy, Workbench).

Run with the Blender venv: ``PYTHONPATH=. .venv-blender/bin/python tools/make_blender_doc_images.py``.
It imports a track with the add-on, keys ``face.smile`` +1 on frame 2 in Blender, exports the edited track
through the add-on, and renders the face model's mesh with each frame's exported expression, placed by the
head Empty and seen through the DVP Camera: left frame 1 (as tracked), right frame 2 (smile +1).
"""

from __future__ import annotations

import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import bpy  # noqa: E402

import blender_addon  # noqa: E402
from blender_addon.convert import CV_TO_BLENDER  # noqa: E402
from dvp_engine.core import FaceTrack, layout  # noqa: E402
from dvp_engine.facemodel import load_default_model  # noqa: E402

SIZE = 256


def _track(model: object) -> FaceTrack:
    params = np.zeros((2, layout.FRAME_SIZE))
    params[:, 1] = np.deg2rad(20.0)  # head.ry: turned
    params[:, 5] = 0.42  # head.tz: metres from the camera
    return FaceTrack.from_params(
        [1, 2],
        params,
        rate=Fraction(25),
        width=SIZE,
        height=SIZE,
        intrinsics=(300.0, 300.0, SIZE / 2 - 0.5, SIZE / 2 - 0.5),
        metadata={"controls": {"names": list(model.control_names), "matrix": model.control_matrix.tolist()}},  # type: ignore[attr-defined]
    )


def main(out: Path = REPO / "docs" / "images" / "blender_smile_render.png") -> Path:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    blender_addon.register()
    model = load_default_model()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "track.npz"
        _track(model).save(src)
        bpy.ops.dvp.import_track(filepath=str(src))
        head = bpy.data.objects["DVP Head"]
        scene = bpy.context.scene
        scene.frame_set(2)
        head["face.smile"] = float(head["face.smile"]) + 1.0
        head.keyframe_insert('["face.smile"]', frame=2)
        edited_path = Path(tmp) / "edited.npz"
        bpy.ops.dvp.export_curves(filepath=str(edited_path))
        edited = FaceTrack.load(edited_path)
        expr = np.stack([edited.channels[c] for c in layout.EXPRESSION], axis=1)
        mesh = bpy.data.meshes.new("face")
        verts0 = model.vertices(expression=expr[0])[0] @ CV_TO_BLENDER.T
        mesh.from_pydata([tuple(v) for v in verts0], [], [tuple(int(i) for i in f) for f in model.faces])
        face = bpy.data.objects.new("face", mesh)
        scene.collection.objects.link(face)
        face.parent = head
        scene.render.engine = "BLENDER_WORKBENCH"
        scene.display.shading.light = "STUDIO"
        scene.display.shading.color_type = "SINGLE"
        scene.render.image_settings.file_format = "PNG"
        halves = []
        for i, f in enumerate((1, 2)):
            verts = model.vertices(expression=expr[i])[0] @ CV_TO_BLENDER.T
            mesh.vertices.foreach_set("co", verts.astype(np.float32).ravel())
            mesh.update()
            scene.frame_set(f)
            scene.render.filepath = str(Path(tmp) / f"f{f}.png")
            bpy.ops.render.render(write_still=True)
            img = bpy.data.images.load(scene.render.filepath)
            halves.append(np.array(img.pixels[:], dtype=np.float32).reshape(SIZE, SIZE, 4))
    both = np.concatenate(halves, axis=1)
    result = bpy.data.images.new("doc", 2 * SIZE, SIZE, alpha=True)
    result.pixels.foreach_set(both.ravel())
    result.filepath_raw = str(out)
    result.file_format = "PNG"
    result.save()
    blender_addon.unregister()
    return out


if __name__ == "__main__":
    print(main())
