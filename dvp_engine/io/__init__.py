"""dvp_engine.io: images and sequences (OpenImageIO), movies (PyAV), colour (OpenColorIO).

Submodules are imported on first use, so ``import dvp_engine.io`` stays cheap:

* :mod:`dvp_engine.io.images`: :func:`read_image`, :func:`write_image`, :func:`read_sequence`,
  :func:`write_sequence`, :func:`image_info`;
* :mod:`dvp_engine.io.video`: :func:`open_video`, :func:`read_frames`, :func:`write_video`;
* :mod:`dvp_engine.io.colour`: :func:`convert`, :func:`srgb_display_to_acescg`,
  :func:`acescg_to_srgb_display`.

See docs/io.md.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "read_image": "images",
    "write_image": "images",
    "read_sequence": "images",
    "write_sequence": "images",
    "image_info": "images",
    "open_video": "video",
    "read_frames": "video",
    "write_video": "video",
    "Video": "video",
    "convert": "colour",
    "srgb_display_to_acescg": "colour",
    "acescg_to_srgb_display": "colour",
    "ColourError": "colour",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dvp_engine.io' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
