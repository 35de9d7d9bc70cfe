"""dvp_engine.render: camera, z-buffer rasteriser, SH shading and the conditioning images (torch + kornia).

* :mod:`.camera`: :class:`Camera` (intrinsics, projection via kornia, resizing), Euler rotations, gaze.
* :mod:`.rasterize`: :func:`rasterize` -> :class:`Rasterization` (triangle id, barycentrics, depth, mask,
  attribute interpolation), vectorised, batched, CPU/CUDA, differentiable through the barycentrics.
* :mod:`.shading`: SH shading (paper eq. 3), vertex normals.
* :mod:`.conditioning`: :func:`render_conditioning` (colour, correspondence, eye-gaze images),
  :func:`eyeball_follows_face` and
  :func:`build_volumes` (the network's space-time input).
* :mod:`.volume`: the space-time window (:func:`window_indices`, :func:`gather_windows`).

See docs/rendering.md.
"""

from .camera import Camera, RenderInputError, apply_pose, euler_to_matrix, gaze_direction
from .conditioning import (
    ConditioningRenderer,
    ConditioningResult,
    build_volumes,
    correspondence_codes,
    eye_fill_triangles,
    render_conditioning,
)
from .rasterize import Rasterization, coverage_count, rasterize, rasterize_pixels
from .shading import SH_CONSTANTS, ambient_sh, sh_basis, sh_shade, vertex_normals

__all__ = [
    "SH_CONSTANTS",
    "Camera",
    "ConditioningRenderer",
    "ConditioningResult",
    "Rasterization",
    "RenderInputError",
    "ambient_sh",
    "apply_pose",
    "build_volumes",
    "correspondence_codes",
    "coverage_count",
    "euler_to_matrix",
    "eye_fill_triangles",
    "gaze_direction",
    "rasterize",
    "rasterize_pixels",
    "render_conditioning",
    "sh_basis",
    "sh_shade",
    "vertex_normals",
]
