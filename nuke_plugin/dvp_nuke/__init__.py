"""dvp_nuke: the Nuke adapter of dvp (Deep Video Portraits).

Modules: :mod:`.mapping`, :mod:`.nkscript` and :mod:`.batch` (the engine's :mod:`dvp_engine.nkscript`: knob
layout, ``.nk`` text, ``dvp nuke-script``), :mod:`.anim` (import/export of knob animation), :mod:`.runner`
(the ``dvp`` subprocess), :mod:`.node` (the DVPortrait node and its buttons), :mod:`.startup` (init/menu) and
:mod:`.host`, the only module that imports ``nuke``. Importing this package imports neither ``nuke`` nor
anything heavier than numpy.
"""

__version__ = "0.1.0"
