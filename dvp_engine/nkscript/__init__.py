"""Nuke scripts without Nuke: the DVPortrait node's knob layout and its ``.nk`` text (pure, numpy + core).

``knobs``: channel <-> knob mapping and the panel layout; ``writer``: :func:`writer.nk_snippet`;
``batch``: the ``dvp nuke-script`` command. The Nuke adapter (``nuke_plugin/dvp_nuke``) builds its node from
the same layout, so the dependency points from the adapter to the engine. Nothing here imports ``nuke``.
"""
