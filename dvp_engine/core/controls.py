"""Named expression controls ``face.*``: what their values are and what an edit of them does.

A face model defines K named controls, each a direction ``d_k`` (64 values) in expression space; a track
copies them into ``metadata["controls"] = {"names": [...], "matrix": [[64 floats], ...]}`` (``D``, K x 64).

**The one definition** (``SEMANTICS = "least-squares"``, recorded in every curve file):

* The *values* of the controls at a frame are the least-squares coordinates of the frame's expression in
  the basis of all the track's directions together: ``c = argmin_c |expr - c @ D|^2``. The expression is
  ``c @ D + r`` with a remainder ``r`` orthogonal to every direction.
* A set of edited controls becomes expression coefficients by changing those coordinates and nothing
  else: ``expr' = expr + (c' - c) @ D``, where ``c'`` is ``c`` with the edited controls set (``override``) or
  shifted (``offset``). Unedited controls keep their values exactly and ``r`` is untouched, so smile +1
  arrives as +1 whatever the other controls are, whether or not they are written too, and in any order.

The directions need not be orthogonal (the shipped ones are not: brow_raise/brow_lower have cosine -0.99),
only linearly independent; a face moved by ``+1`` on one control moves by exactly ``d_k``.
This module is the only place that defines this; :func:`dvp_engine.core.apply_curves`, ``dvp edit``, the
Nuke and Blender adapters and :meth:`dvp_engine.facemodel.FaceModel.expression_to_controls` all use it.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from . import layout
from .track import FaceTrack

SEMANTICS: Final = "least-squares"
"""The value of a curve file's ``"controls"`` field: face.* values are least-squares coordinates."""
KNOWN_SEMANTICS: Final[tuple[str, ...]] = (SEMANTICS,)


def control_matrix(track: FaceTrack) -> tuple[list[str], npt.NDArray[np.float64]]:
    """``(names, D)``: the track's control names and their directions ``(K, 64)`` (``K = 0`` if none)."""
    ctrl = track.metadata.get("controls")
    if not ctrl:
        return [], np.zeros((0, layout.N_EXPRESSION))
    matrix = np.asarray(ctrl["matrix"], dtype=np.float64).reshape(-1, layout.N_EXPRESSION)
    names = [str(n) for n in ctrl["names"]]
    if len(names) != len(matrix):
        raise ValueError(f"track controls: {len(names)} names for {len(matrix)} directions")
    return names, matrix


def control_directions(track: FaceTrack) -> dict[str, npt.NDArray[np.float64]]:
    """Named controls of the track: name -> direction ``(64,)`` in expression space."""
    names, matrix = control_matrix(track)
    return {n: matrix[i] for i, n in enumerate(names)}


def coordinates(expression: npt.ArrayLike, matrix: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Least-squares control values of expressions.

    Args:
        expression: ``(F, 64)`` or ``(64,)`` expression coefficients.
        matrix: ``(K, 64)`` control directions (linearly independent).

    Returns:
        ``(F, K)`` (or ``(K,)``) float64 ``c`` minimising ``|expression - c @ matrix|``.
    """
    e = np.asarray(expression, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape[0] == 0:
        return np.zeros(e.shape[:-1] + (0,))
    sol, *_ = np.linalg.lstsq(m.T, np.atleast_2d(e).T, rcond=None)
    out = np.asarray(sol.T, dtype=np.float64)
    return np.asarray(out[0]) if e.ndim == 1 else out


def expression_of(track: FaceTrack) -> npt.NDArray[np.float64]:
    """The track's expression coefficients ``(F, 64)`` float64."""
    return np.stack([track.channels[c] for c in layout.EXPRESSION], axis=1).astype(np.float64)


def control_values(track: FaceTrack, name: str) -> npt.NDArray[np.float64]:
    """Value of one named control per frame ``(F,)``: its least-squares coordinate (module docstring)."""
    names, matrix = control_matrix(track)
    if name not in names:
        raise KeyError(f"named control {name!r} not in this track; it has {sorted(names) or 'none'}")
    return coordinates(expression_of(track), matrix)[:, names.index(name)]


def all_control_values(track: FaceTrack) -> dict[str, npt.NDArray[np.float64]]:
    """Every named control's values per frame: name -> ``(F,)``."""
    names, matrix = control_matrix(track)
    c = coordinates(expression_of(track), matrix)
    return {n: c[:, i] for i, n in enumerate(names)}


def apply_control_edits(
    expression: npt.ArrayLike,
    matrix: npt.ArrayLike,
    targets: npt.ArrayLike,
    offsets: npt.ArrayLike,
) -> npt.NDArray[np.float64]:
    """New expression coefficients for edited controls, all controls solved together.

    Args:
        expression: ``(F, 64)`` current coefficients.
        matrix: ``(K, 64)`` control directions.
        targets: ``(F, K)`` override values; NaN where a control is not overridden on a frame.
        offsets: ``(F, K)`` amounts added to the control values (after the overrides); 0 where unedited.

    Returns:
        ``(F, 64)`` ``expression + (c' - c) @ matrix`` with ``c`` the current coordinates and
        ``c' = where(isnan(targets), c, targets) + offsets``; unedited controls keep their values.
    """
    e = np.asarray(expression, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    tgt = np.asarray(targets, dtype=np.float64)
    off = np.asarray(offsets, dtype=np.float64)
    c = coordinates(e, m)
    new = np.where(np.isnan(tgt), c, tgt) + off
    return np.asarray(e + (new - c) @ m, dtype=np.float64)
