"""A strict stand-in for Nuke's ``nuke`` module: only the API the plugin uses, nothing else.

Not a MagicMock: an attribute that is not defined here raises ``AttributeError``; nodes accept only their
real knobs; in terminal mode (``GUI = False``) every UI call (message, ProgressTask, executeInMainThread,
menu) raises :class:`_UICallInTerminal`; in GUI mode nodes, knobs and dialogs must be touched from the main
thread (:class:`_WrongThread` otherwise), and ``executeInMainThread`` queues calls until :func:`_pump`.
Like Nuke, ``setAnimated`` keys the current frame. Public names are exactly the module-level names listed
in ``nuke_plugin/NUKE_API_ALLOWLIST.txt`` (a test checks it); test helpers start with ``_``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

GUI = True
STARTLINE = 0x1000
TABBEGINCLOSEDGROUP = 2
TABENDGROUP = -1


class _UICallInTerminal(AssertionError):
    """A UI function was called in terminal mode."""


class _WrongThread(AssertionError):
    """Nuke objects touched off the main thread in GUI mode."""


class _State:
    def __init__(self) -> None:
        self.frame = 1.0
        self.messages: list[str] = []
        self.queue: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self.menus: dict[str, _Menu] = {}
        self.plugin_paths: list[str] = []
        self.this_node: _Node | None = None
        self.context: list[_Node] = []
        self.tasks: list[_ProgressTask] = []
        self.cancel_after: int | None = None


_state = _State()


def _reset(gui: bool = True) -> _State:
    """Fresh state (tests call it first)."""
    global GUI, _state
    GUI = gui
    _state = _State()
    return _state


def _pump() -> int:
    """Run the calls queued by executeInMainThread (what Nuke's event loop does); returns how many ran."""
    _main_only("_pump")
    n = 0
    while _state.queue:
        call, args = _state.queue.pop(0)
        call(*args)
        n += 1
    return n


def _ui(what: str) -> None:
    if not GUI:
        raise _UICallInTerminal(f"nuke.{what} called in terminal mode")


def _main_only(what: str) -> None:
    if GUI and threading.current_thread() is not threading.main_thread():
        raise _WrongThread(f"{what} called from thread {threading.current_thread().name}")


# ---------------------------------------------------------------------------------------------- UI
def message(text: str) -> None:
    _ui("message")
    _main_only("nuke.message")
    _state.messages.append(str(text))


def executeInMainThread(call: Callable[..., Any], args: tuple[Any, ...] = ()) -> None:  # noqa: N802
    _ui("executeInMainThread")
    if not isinstance(args, tuple):
        args = (args,)
    _state.queue.append((call, args))


class _ProgressTask:
    def __init__(self, title: str) -> None:
        _ui("ProgressTask")
        self.title = title
        self.progress: list[int] = []
        self.messages: list[str] = []
        self.checks = 0
        _state.tasks.append(self)

    def setMessage(self, text: str) -> None:  # noqa: N802
        self.messages.append(str(text))

    def setProgress(self, percent: int) -> None:  # noqa: N802
        if not isinstance(percent, int) or not 0 <= percent <= 100:
            raise ValueError(f"ProgressTask.setProgress takes an int 0..100, got {percent!r}")
        self.progress.append(percent)

    def isCancelled(self) -> bool:  # noqa: N802
        self.checks += 1
        limit = _state.cancel_after
        return limit is not None and len(self.progress) >= limit


ProgressTask = _ProgressTask


class _Menu:
    def __init__(self, name: str) -> None:
        self.name = name
        self.submenus: dict[str, _Menu] = {}
        self.commands: dict[str, str] = {}
        self.icons: dict[str, str] = {}

    def addMenu(self, name: str) -> _Menu:  # noqa: N802
        return self.submenus.setdefault(name, _Menu(name))

    def addCommand(self, name: str, command: str, shortcut: str = "", icon: str = "") -> None:  # noqa: N802
        if not isinstance(command, str):
            raise TypeError("command must be Python text")
        compile(command, f"<menu {name}>", "exec")
        self.commands[name] = command
        if icon:  # Nuke finds icons on the plugin path
            if not any(Path(p, icon).is_file() for p in _state.plugin_paths):
                raise FileNotFoundError(f"icon {icon!r} is not on the plugin path {_state.plugin_paths}")
            self.icons[name] = icon


def menu(name: str) -> _Menu:
    _ui("menu")
    if name not in ("Nuke", "Nodes", "Pane", "Viewer", "Node Graph", "Properties", "Animation"):
        raise ValueError(f"no menu named {name!r}")
    return _state.menus.setdefault(name, _Menu(name))


def pluginAddPath(path: str) -> None:  # noqa: N802
    _state.plugin_paths.insert(0, str(path))


def frame() -> float:
    """The current frame of the session."""
    return _state.frame


def thisNode() -> _Node:  # noqa: N802
    if _state.this_node is None:
        raise RuntimeError("no current node (thisNode outside a knob callback)")
    return _state.this_node


# ---------------------------------------------------------------------------------------------- animation
_INTERPS = ("smooth", "linear", "constant")


class AnimationKey:
    __slots__ = ("x", "y")

    def __init__(self, x: float, y: float) -> None:
        self.x = float(x)
        self.y = float(y)


class _AnimationCurve:
    def __init__(self) -> None:
        self._keys: list[AnimationKey] = []

    def keys(self) -> list[AnimationKey]:
        return list(self._keys)

    def addKey(self, keys: Sequence[AnimationKey]) -> None:  # noqa: N802
        for k in keys:
            if not isinstance(k, AnimationKey):
                raise TypeError(f"addKey takes AnimationKey objects, got {type(k).__name__}")
            self._set(k.x, k.y)

    def clear(self) -> None:
        self._keys.clear()

    def _set(self, x: float, y: float) -> None:
        for k in self._keys:
            if k.x == x:
                k.y = float(y)
                return
        self._keys.append(AnimationKey(x, y))
        self._keys.sort(key=lambda k: k.x)

    def _evaluate(self, t: float) -> float:
        ks = self._keys
        if not ks:
            return 0.0
        if t <= ks[0].x:
            return ks[0].y
        if t >= ks[-1].x:
            return ks[-1].y
        for a, b in zip(ks, ks[1:], strict=False):
            if a.x <= t <= b.x:
                u = (t - a.x) / (b.x - a.x)
                return a.y + u * (b.y - a.y)
        raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------- knobs
class _Knob:
    _size = 1

    def __init__(self, name: str, label: str = "", *rest: Any) -> None:
        if not isinstance(name, str) or not name.replace("_", "a").isalnum():
            raise ValueError(f"bad knob name {name!r}")
        self._name = name
        self._label = label
        self._tooltip = ""
        self._flags = 0
        self._values: list[Any] = [self._default()] * self._size
        self._curves: dict[int, _AnimationCurve] = {}
        self._expr: dict[int, str] = {}
        self._node: _Node | None = None

    def _default(self) -> Any:
        return 0.0

    def _idx(self, index: int) -> list[int]:
        if index == -1:
            return list(range(self._size))
        if not 0 <= index < self._size:
            raise IndexError(f"{self._name}: index {index} out of range 0..{self._size - 1}")
        return [index]

    def name(self) -> str:
        return self._name

    def setTooltip(self, text: str) -> None:  # noqa: N802
        self._tooltip = str(text)

    def setFlag(self, flag: int) -> None:  # noqa: N802
        self._flags |= flag

    def clearFlag(self, flag: int) -> None:  # noqa: N802
        self._flags &= ~flag

    def value(self, *index: int) -> Any:
        _main_only(f"{self._name}.value")
        i = index[0] if index else 0
        (i,) = self._idx(i)
        if i in self._curves:
            return self._curves[i]._evaluate(_state.frame)
        return self._values[i]

    def setValue(self, value: Any, *index: int) -> bool:  # noqa: N802
        _main_only(f"{self._name}.setValue")
        for i in self._idx(index[0] if index else -1):
            if i in self._curves:
                self._curves[i]._set(_state.frame, float(value))
            else:
                self._values[i] = self._coerce(value)
        return True

    def _coerce(self, value: Any) -> Any:
        return float(value)


class _ArrayKnob(_Knob):
    def setRange(self, lo: float, hi: float) -> None:  # noqa: N802
        self._range = (float(lo), float(hi))

    def setAnimated(self, index: int = -1) -> bool:  # noqa: N802
        _main_only(f"{self._name}.setAnimated")
        for i in self._idx(index):
            if i not in self._curves:
                c = _AnimationCurve()
                c._set(_state.frame, float(self._values[i]))  # like Nuke: a key at the current frame
                self._curves[i] = c
        return True

    def clearAnimated(self, index: int = -1) -> bool:  # noqa: N802
        _main_only(f"{self._name}.clearAnimated")
        for i in self._idx(index):
            c = self._curves.pop(i, None)
            if c is not None:
                self._values[i] = c._evaluate(_state.frame)
        return True

    def isAnimated(self, index: int = -1) -> bool:  # noqa: N802
        _main_only(f"{self._name}.isAnimated")
        return any(i in self._curves for i in self._idx(index))

    def animation(self, index: int) -> _AnimationCurve | None:
        _main_only(f"{self._name}.animation")
        (i,) = self._idx(index)
        return self._curves.get(i)

    def getValueAt(self, time: float, index: int = 0) -> float:  # noqa: N802
        _main_only(f"{self._name}.getValueAt")
        (i,) = self._idx(index)
        if i in self._curves:
            return self._curves[i]._evaluate(float(time))
        return float(self._values[i])

    def setValueAt(self, value: float, time: float, index: int = -1) -> bool:  # noqa: N802
        _main_only(f"{self._name}.setValueAt")
        for i in self._idx(index):
            if i not in self._curves:
                self._curves[i] = _AnimationCurve()
            self._curves[i]._set(float(time), float(value))
        return True

    def setExpression(self, expression: str, index: int = -1) -> bool:  # noqa: N802
        for i in self._idx(index):
            self._expr[i] = str(expression)
        return True


class Double_Knob(_ArrayKnob):  # noqa: N801
    _size = 1


class XY_Knob(_ArrayKnob):  # noqa: N801
    """``nuke.XY_Knob(name, label)``: a 2D position (x, y in pixels, origin bottom-left) with a viewer handle.

    Two values: ``value(i)``, ``setValue(v, i)``, ``setAnimated(i)``, ``setValueAt(v, t, i)`` per index
    (0 = x, 1 = y); index -1 (the default of ``setValue``) sets both, as in Nuke. Transform.translate too.
    """

    _size = 2


class _TextValued(_Knob):
    def _default(self) -> Any:
        return ""

    def _coerce(self, value: Any) -> Any:
        if not isinstance(value, str | int | float):
            raise TypeError(f"{self._name}: cannot hold {type(value).__name__}")
        return str(value)


class File_Knob(_TextValued):  # noqa: N801
    pass


class String_Knob(_TextValued):  # noqa: N801
    pass


class Text_Knob(_TextValued):  # noqa: N801
    def __init__(self, name: str, label: str = "", text: str = "") -> None:
        super().__init__(name, label)
        self._values = [str(text)]


class PyScript_Knob(_TextValued):  # noqa: N801
    def __init__(self, name: str, label: str = "", command: str = "") -> None:
        super().__init__(name, label)
        compile(command, f"<button {name}>", "exec")
        self._values = [command]


class Enumeration_Knob(_TextValued):  # noqa: N801
    def __init__(self, name: str, label: str, values: Sequence[str]) -> None:
        super().__init__(name, label)
        self._items = [str(v) for v in values]
        self._values = [self._items[0]]

    def _coerce(self, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return self._items[int(value)]
        if value not in self._items:
            raise ValueError(f"{self._name}: {value!r} is not one of {self._items}")
        return value


class Tab_Knob(_Knob):  # noqa: N801
    def __init__(self, name: str, label: str = "", kind: int = 0) -> None:
        super().__init__(name or "tab", label)
        if kind not in (0, 1, TABBEGINCLOSEDGROUP, TABENDGROUP):
            raise ValueError(f"bad Tab_Knob kind {kind}")
        self._kind = kind


class _IntKnob(_ArrayKnob):
    pass


# ---------------------------------------------------------------------------------------------- nodes
_BUILTIN: dict[str, dict[str, type[_Knob]]] = {
    "Group": {},
    "Input": {},
    "Output": {},
    "Read": {
        "file": File_Knob,
        "first": _IntKnob,
        "last": _IntKnob,
        "origfirst": _IntKnob,
        "origlast": _IntKnob,
        "colorspace": String_Knob,
    },
    "Transform": {"translate": XY_Knob},
    "Premult": {},
    "Copy": {"from0": String_Knob, "to0": String_Knob},
    "Merge2": {"operation": String_Knob},
    "Switch": {"which": _IntKnob},
}


class _Node:
    def __init__(self, cls: str, name: str = "", **knobs: Any) -> None:
        _main_only(f"nuke.nodes.{cls}")
        self._class = cls
        self._knobs: dict[str, _Knob] = {"name": String_Knob("name", "name")}
        for kname, ktype in _BUILTIN[cls].items():
            self._knobs[kname] = ktype(kname, kname)
        if cls == "Read":
            self._knobs["on_error"] = Enumeration_Knob(
                "on_error", "missing frames", ["error", "black", "checkerboard", "nearest frame"]
            )
        if cls == "Merge2":
            self._knobs["operation"].setValue("over")
        self._knobs["name"].setValue(name or f"{cls}1")
        for k, v in knobs.items():
            if k not in self._knobs:
                raise AttributeError(f"{cls} has no knob {k!r}")
            self._knobs[k].setValue(v)
        self._inputs: dict[int, _Node | None] = {}
        self._children: list[_Node] = []
        self.parent: _Node | None = _state.context[-1] if _state.context else None
        if self.parent is not None:
            self.parent._children.append(self)

    def __getitem__(self, name: str) -> _Knob:
        return self._knobs[name]

    def name(self) -> str:
        return str(self._knobs["name"].value())

    def Class(self) -> str:  # noqa: N802
        return self._class

    def knob(self, name: str) -> _Knob | None:
        _main_only(f"{self.name()}.knob")
        return self._knobs.get(name)

    def knobs(self) -> dict[str, _Knob]:
        _main_only(f"{self.name()}.knobs")
        return dict(self._knobs)

    def addKnob(self, knob: _Knob) -> None:  # noqa: N802
        _main_only(f"{self.name()}.addKnob")
        if not isinstance(knob, _Knob):
            raise TypeError(f"addKnob takes a knob, got {type(knob).__name__}")
        if knob.name() in self._knobs and not isinstance(knob, Tab_Knob):
            raise ValueError(f"{self.name()} already has a knob {knob.name()!r}")
        key = knob.name() if knob.name() not in self._knobs else f"{knob.name()}#{len(self._knobs)}"
        self._knobs[key] = knob
        knob._node = self

    def setXYpos(self, x: int, y: int) -> None:  # noqa: N802
        _main_only(f"{self.name()}.setXYpos")
        if not (isinstance(x, int) and isinstance(y, int)):
            raise TypeError("setXYpos takes two ints")
        self.xy = (x, y)

    def setInput(self, index: int, node: _Node | None) -> bool:  # noqa: N802
        _main_only(f"{self.name()}.setInput")
        self._inputs[index] = node
        return True

    def input(self, index: int) -> _Node | None:
        _main_only(f"{self.name()}.input")
        return self._inputs.get(index)

    def begin(self) -> _Node:
        if self._class != "Group":
            raise AttributeError("begin")
        _state.context.append(self)
        return self

    def end(self) -> None:
        if self._class != "Group":
            raise AttributeError("end")
        if not _state.context or _state.context[-1] is not self:
            raise RuntimeError("Group.end without begin")
        _state.context.pop()

    def node(self, name: str) -> _Node | None:
        if self._class != "Group":
            raise AttributeError("node")
        for c in self._children:
            if c.name() == name:
                return c
        return None


class _Nodes:
    """``nuke.nodes``: one constructor per node class the plugin creates."""

    def __getattr__(self, cls: str) -> Callable[..., _Node]:
        if cls not in _BUILTIN:
            raise AttributeError(f"nuke.nodes.{cls} is not part of the fake (the plugin must not use it)")
        return lambda **kw: _Node(cls, **kw)


nodes = _Nodes()
