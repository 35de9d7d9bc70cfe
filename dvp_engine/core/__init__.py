"""dvp_engine.core: the data model (numpy + stdlib only, so hosts such as Nuke and Blender can load it).

FaceTrack and its file format, the parameter layout and channel names, rotations, frame ranges,
image-sequence fields and curve files. Importing this package never imports torch or OpenImageIO.
"""

from . import controls, layout
from .curves import Curve, CurveSet, Key, apply_curves
from .errors import DvpError, InputError, SchemaError
from .frames import FrameSet, parse_frames
from .sequence import MOVIE_SUFFIXES, ImageSequence
from .track import FaceTrack

__all__ = [
    "MOVIE_SUFFIXES",
    "Curve",
    "CurveSet",
    "DvpError",
    "FaceTrack",
    "FrameSet",
    "ImageSequence",
    "InputError",
    "Key",
    "SchemaError",
    "apply_curves",
    "controls",
    "layout",
    "parse_frames",
]
