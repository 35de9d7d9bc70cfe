"""The small slice of Nuke's object API the plugin uses, as typing protocols (no ``nuke`` import).

Everything outside :mod:`dvp_nuke.host` is typed against these, so it runs against Nuke or the strict fake
in ``tests/nuke/fake_nuke.py`` alike. Each method listed here is a documented Nuke Python API method (see
``NUKE_API_ALLOWLIST.txt``, where the test suite checks them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class AnimationKey(Protocol):
    """``nuke.AnimationKey``: one key; ``x`` frame, ``y`` value."""

    x: float
    y: float


class AnimationCurve(Protocol):
    """``nuke.AnimationCurve`` of one knob channel."""

    def keys(self) -> Sequence[AnimationKey]: ...

    def addKey(self, keys: Sequence[AnimationKey]) -> None: ...  # noqa: N802 (Nuke's name)

    def clear(self) -> None: ...


class Knob(Protocol):
    """``nuke.Knob`` / ``nuke.Array_Knob`` (the animatable ones)."""

    def name(self) -> str: ...

    def value(self, *index: int) -> Any: ...

    def setValue(self, value: Any, *index: int) -> bool: ...  # noqa: N802

    def setAnimated(self, index: int = -1) -> bool: ...  # noqa: N802

    def clearAnimated(self, index: int = -1) -> bool: ...  # noqa: N802

    def isAnimated(self, index: int = -1) -> bool: ...  # noqa: N802

    def animation(self, index: int) -> AnimationCurve | None: ...

    def getValueAt(self, time: float, index: int = 0) -> float: ...  # noqa: N802

    def setValueAt(self, value: float, time: float, index: int = -1) -> bool: ...  # noqa: N802

    def setExpression(self, expression: str, index: int = -1) -> bool: ...  # noqa: N802


class Node(Protocol):
    """``nuke.Node`` / ``nuke.Group``."""

    def name(self) -> str: ...

    def knob(self, name: str) -> Knob | None: ...

    def knobs(self) -> Mapping[str, Knob]: ...

    def addKnob(self, knob: Any) -> None: ...  # noqa: N802

    def setInput(self, index: int, node: Node | None) -> bool: ...  # noqa: N802

    def setXYpos(self, x: int, y: int) -> None: ...  # noqa: N802

    def input(self, index: int) -> Node | None: ...

    def begin(self) -> Any: ...

    def end(self) -> Any: ...

    def node(self, name: str) -> Node | None: ...


class ProgressTask(Protocol):
    """``nuke.ProgressTask``: a progress bar that the user can cancel."""

    def setMessage(self, message: str) -> None: ...  # noqa: N802

    def setProgress(self, percent: int) -> None: ...  # noqa: N802

    def isCancelled(self) -> bool: ...  # noqa: N802


class Menu(Protocol):
    """``nuke.Menu``."""

    def addMenu(self, name: str) -> Menu: ...  # noqa: N802

    def addCommand(self, name: str, command: str, shortcut: str = "", icon: str = "") -> Any: ...  # noqa: N802
