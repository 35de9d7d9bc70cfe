"""dvp_nuke: the Nuke adapter of dvp (Deep Video Portraits).

Modules: :mod:`.mapping` (channels <-> knobs, knob layout), :mod:`.anim` (import/export of knob animation),
:mod:`.runner` (the ``dvp`` subprocess), :mod:`.nkscript` (``.nk`` text without Nuke), :mod:`.batch`
(``dvp nuke-script``), :mod:`.node` (the DVPortrait node and its buttons), :mod:`.startup` (init/menu) and
:mod:`.host`, the only module that imports ``nuke``. Importing this package imports neither ``nuke`` nor
anything heavier than numpy.
"""

__version__ = "0.1.0"
