"""Where the add-on finds ``dvp_engine.core`` (numpy + stdlib only).

The extension zip built by ``tools/build_blender_addon.py`` carries a copy of ``dvp_engine/core`` as the
subpackage ``dvp_core`` beside this file; it is imported relatively so two installed versions never clash.
Running from a source checkout (tests, development) there is no vendored copy and an importable
``dvp_engine`` (``PYTHONPATH`` or an installed package) is used instead. This module does not import bpy.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # type checkers see the source tree's copy
    import dvp_engine.core as _core
    from dvp_engine.core import (
        MOVIE_SUFFIXES,
        Curve,
        CurveSet,
        DvpError,
        FaceTrack,
        ImageSequence,
        InputError,
        Key,
        SchemaError,
        apply_curves,
        cli_protocol,
        curves,
        gaze,
        layout,
        rotation,
    )
else:
    try:  # the vendored copy inside the extension zip
        from . import dvp_core as _core
    except ImportError:  # a source checkout or an installed dvp_engine
        try:
            import dvp_engine.core as _core
        except ImportError as exc:  # only when the zip was built wrongly
            raise ImportError(
                "the DVP add-on cannot find dvp_engine.core: rebuild the zip with "
                "tools/build_blender_addon.py or put the dvp repository on PYTHONPATH"
            ) from exc
    FaceTrack = _core.FaceTrack
    ImageSequence = _core.ImageSequence
    MOVIE_SUFFIXES = _core.MOVIE_SUFFIXES
    CurveSet = _core.CurveSet
    Curve = _core.Curve
    Key = _core.Key
    DvpError = _core.DvpError
    SchemaError = _core.SchemaError
    InputError = _core.InputError
    apply_curves = _core.apply_curves
    layout = _core.layout
    rotation = import_module(_core.__name__ + ".rotation")
    curves = import_module(_core.__name__ + ".curves")
    gaze = import_module(_core.__name__ + ".gaze")
    cli_protocol = import_module(_core.__name__ + ".cli_protocol")

core: ModuleType = _core
#: True when the zip's own copy (``<add-on>.dvp_core``) is in use.
from_vendored: bool = _core.__name__ == f"{__package__}.dvp_core"

__all__ = [
    "MOVIE_SUFFIXES",
    "Curve",
    "CurveSet",
    "DvpError",
    "FaceTrack",
    "ImageSequence",
    "InputError",
    "Key",
    "SchemaError",
    "apply_curves",
    "cli_protocol",
    "core",
    "curves",
    "from_vendored",
    "gaze",
    "layout",
    "rotation",
]
