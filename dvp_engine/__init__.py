"""dvp_engine: the host-agnostic Deep Video Portraits engine (track, transfer, render, translate).

Subpackages: ``core`` (data model, numpy only), ``facemodel``, ``tracking``, ``render``, ``transfer``,
``network``, ``io`` and ``cli``. Nothing here imports ``nuke`` or ``bpy``.
"""

__version__ = "0.1.0"
