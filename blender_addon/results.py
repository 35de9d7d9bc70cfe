"""Bring rendered frames back into Blender: a Video Sequencer strip, or an image sequence in the compositor.

dvp writes, for Blender, premultiplied RGBA EXRs in ACEScg (``dvp render --matte alpha``: Blender reads the
default ``R, G, B, matte.A`` layout as a multilayer file, without alpha or colour management). Frames keep
their scene frame numbers: with a frame step the frames between steps hold the last rendered one, and a
rendered frame missing on disk is a gap, never a shift of the frames after it (:func:`runner.frame_elements`).
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy

from . import convert, runner

STRIP_NAME = "DVP render"
NODE_NAME = "DVP render"
TREE_NAME = "DVP Compositing"
COLOURSPACE = "ACEScg"
"""The colour space dvp writes EXRs in (its default ``--colourspace``)."""


@dataclass
class Loaded:
    """What :func:`load_frames` made (``None`` for the kinds it did not make) and the missing frames."""

    strip: bpy.types.Strip | None = None
    image: bpy.types.Image | None = None
    node: bpy.types.Node | None = None
    missing: list[int] | None = None


def load_frames(
    context: bpy.types.Context,
    pattern: str,
    first: int,
    last: int,
    step: int = 1,
    crop: tuple[int, int, int] | None = None,
    how: str | None = None,
) -> Loaded:
    """Load the rendered EXR sequence ``pattern`` (frames ``first..last`` step ``step``).

    ``how``: ``SEQUENCER`` (an image strip in a free channel from scene frame ``first``, one element per
    scene frame, alpha over the channels below, colour space ACEScg, moved to the model's ``crop`` in the
    plate), ``IMAGE`` (an image sequence and an Image node in the compositor that shows file ``f`` at scene
    frame ``f``) or ``NONE``; default: the scene's *Load result* setting.
    """
    how = how or context.scene.dvp.load_result
    names, missing = runner.frame_elements(pattern, first, last, step)
    out = Loaded(missing=missing)
    present = runner.sequence_files(pattern, first, last)
    if how == "NONE" or not present:
        return out
    folder = present[0].parent
    if how == "SEQUENCER":
        scene = context.scene
        se = scene.sequence_editor or scene.sequence_editor_create()
        channel = 1 + max((s.channel for s in se.strips), default=0)
        strip = se.strips.new_image(
            name=STRIP_NAME,
            filepath=str(folder / names[0]),
            channel=channel,
            frame_start=first,
            fit_method="ORIGINAL",
        )
        for name in names[1:]:
            strip.elements.append(name)
        strip.colorspace_settings.name = COLOURSPACE
        strip.alpha_mode = "PREMUL"
        strip.blend_type = "ALPHA_OVER"
        if crop is not None:
            r = scene.render
            strip.transform.offset_x, strip.transform.offset_y = convert.strip_offset(
                crop, r.resolution_x, r.resolution_y
            )
        out.strip = strip
    elif how == "IMAGE":
        img = bpy.data.images.load(str(present[0]), check_existing=False)
        img.source = "SEQUENCE"
        img.name = STRIP_NAME
        img.colorspace_settings.name = COLOURSPACE
        img.alpha_mode = "PREMUL"
        out.image = img
        out.node = compositor_node(context.scene, img, first, last)
    return out


def compositor_node(scene: bpy.types.Scene, image: bpy.types.Image, first: int, last: int) -> bpy.types.Node:
    """An Image node for the sequence in the scene's compositor (a new ``DVP Compositing`` tree whose output
    is the image if the scene has none); file ``f`` shows at scene frame ``f``."""
    tree = scene.compositing_node_group
    new_tree = tree is None
    if tree is None:
        tree = bpy.data.node_groups.new(TREE_NAME, "CompositorNodeTree")
        scene.compositing_node_group = tree
    node = tree.nodes.new("CompositorNodeImage")
    node.name = node.label = NODE_NAME
    node.image = image
    node.frame_start = first  # dvp names frame f's file with the number f
    node.frame_duration = last - first + 1
    node.frame_offset = first - 1
    if new_tree:
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        output = tree.nodes.new("NodeGroupOutput")
        output.location = (300, 0)
        tree.links.new(node.outputs["Image"], output.inputs["Image"])
    return node


def image_for_frame(node: bpy.types.Node, frame: int) -> int:
    """The file number an Image node shows at a scene frame (Blender's rule for image sequences)."""
    return int(frame - node.frame_start + 1 + node.frame_offset)
