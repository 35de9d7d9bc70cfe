"""A strict stand-in for CuPy, run on the CPU, for testing the tracker's device code without a GPU.

It computes with numpy but keeps "device" arrays apart from host (numpy) arrays the way CuPy does, so the
mistakes that only show on a GPU machine show here:

* a host ``numpy.ndarray`` mixed into a device operation (``device + host``, ``xp.stack([device, host])``,
  ``xp.einsum(..., host)``, a host index or value in ``device[...]``) raises ``TypeError``;
* implicit conversion of a device array to numpy (``np.asarray(device)``, a numpy function called on a device
  array) raises ``TypeError``; ``.get()``, ``cupy.asnumpy`` and ``float()``/``int()``/``bool()`` of a
  one-element array work, as in CuPy;
* reductions return 0-d device arrays (not numpy scalars), as in CuPy.

Install it with ``monkeypatch.setitem(sys.modules, "cupy", strict_cupy.module())``: ``get_xp("cuda")`` then
imports it like the real CuPy. It is a test double, not an emulator: only what the tracker uses is there,
and anything else raises ``AttributeError``.
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

# functions the tracker may call as xp.<name>; anything else is missing, as it would be in a smaller CuPy
_FUNCTIONS = """abs arange arctan2 argsort asarray ascontiguousarray array bincount broadcast_to clip concatenate cos
cross cumsum diag diagonal einsum exp eye floor full full_like isfinite linspace log matmul max maximum mean
min minimum ones ones_like pad repeat reshape round searchsorted sign sin sqrt square stack sum swapaxes take
tensordot tile transpose where zeros zeros_like""".split()
_LINALG = "cholesky inv norm solve".split()
_DTYPES = (
    "bool_ float16 float32 float64 int8 int16 int32 int64 uint8 uint16 uint32 newaxis pi inf nan e".split()
)
_CONSTRUCTORS = {"asarray", "array", "ascontiguousarray"}  # take host arrays (a host-to-device copy)


class DeviceArray(NDArrayOperatorsMixin):
    """A numpy array in a box that behaves like a ``cupy.ndarray`` where it matters."""

    __module__ = "cupy"  # the tracker recognises CuPy arrays by their module, as it does the real ones
    __array_priority__ = 100.0

    def __init__(self, data: np.ndarray) -> None:
        self._a = data

    # ---- conversions CuPy allows
    def get(self) -> np.ndarray:
        return np.array(self._a, copy=True)

    def item(self) -> Any:
        return self._a.item()

    def tolist(self) -> Any:
        return self._a.tolist()

    def __float__(self) -> float:
        return float(self._a)

    def __int__(self) -> int:
        return int(self._a)

    def __index__(self) -> int:
        return self._a.__index__()

    def __bool__(self) -> bool:
        return bool(self._a)

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Any:
        return (_wrap(x) for x in self._a)

    def __repr__(self) -> str:
        return f"DeviceArray({self._a!r})"

    # ---- conversions CuPy refuses
    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        # CuPy raises TypeError; numpy would take a TypeError here as "try without copy=" and then fall back
        # to the sequence protocol, so a RuntimeError it cannot swallow
        raise RuntimeError("implicit conversion of a device array to numpy (use .get() or cupy.asnumpy)")

    def __array_function__(self, func: Any, types_: Any, args: Any, kwargs: Any) -> Any:
        raise TypeError(f"numpy.{func.__name__} called on a device array: call it through xp")

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        args = [_dev(x, f"numpy.{ufunc.__name__}") for x in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(_dev(o, f"numpy.{ufunc.__name__}(out=)") for o in kwargs["out"])
        return _wrap(getattr(ufunc, method)(*args, **kwargs))

    # ---- array protocol used by the tracker
    def __getitem__(self, index: Any) -> DeviceArray:
        return _wrap(self._a[_index(index)])

    def __setitem__(self, index: Any, value: Any) -> None:
        self._a[_index(index)] = _dev(value, "__setitem__")

    def __getattr__(self, name: str) -> Any:
        # ndarray attributes and methods (shape, dtype, ndim, size, T, reshape, astype, sum, ...), but not
        # numpy's own protocols (__array_interface__, __array_struct__), through which np.asarray would copy
        if name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if callable(attr):
            return lambda *a, **k: _wrap(
                attr(*[_dev(x, name) for x in a], **{n: _dev(v, name) for n, v in k.items()})
            )
        return _wrap(attr)


def _is_host(x: Any) -> bool:
    return isinstance(x, np.ndarray)


def _dev(x: Any, where: str) -> Any:
    """Unbox device arrays (recursively in lists/tuples); refuse host arrays."""
    if isinstance(x, DeviceArray):
        return x._a
    if _is_host(x):
        raise TypeError(f"{where}: a host numpy array {x.shape} mixed into a device operation")
    if isinstance(x, list | tuple):
        return type(x)(_dev(v, where) for v in x)
    return x


def _index(index: Any) -> Any:
    return _dev(index, "indexing")


def _wrap(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return DeviceArray(x)
    if isinstance(x, np.generic):
        return DeviceArray(np.asarray(x))  # CuPy reductions give 0-d arrays
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _function(name: str, namespace: Any) -> Any:
    fn = getattr(namespace, name)

    def call(*args: Any, **kwargs: Any) -> Any:
        if name in _CONSTRUCTORS:
            data = args[0]
            data = data._a if isinstance(data, DeviceArray) else np.array(data, copy=True)
            return _wrap(fn(data, *args[1:], **kwargs))
        unboxed = [_dev(a, f"xp.{name}") for a in args]
        kw = {k: _dev(v, f"xp.{name}") for k, v in kwargs.items()}
        return _wrap(fn(*unboxed, **kw))

    call.__name__ = name
    return call


def module() -> types.ModuleType:
    """A fresh ``cupy`` stand-in module (with ``cuda.runtime.getDeviceCount() == 1`` and ``asnumpy``)."""
    cp = types.ModuleType("cupy")
    cp.__dict__["ndarray"] = DeviceArray
    for name in _FUNCTIONS:
        setattr(cp, name, _function(name, np))
    for name in _DTYPES:
        setattr(cp, name, getattr(np, name))
    linalg = types.ModuleType("cupy.linalg")
    for name in _LINALG:
        setattr(linalg, name, _function(name, np.linalg))
    cp.__dict__["linalg"] = linalg

    def asnumpy(a: Any) -> np.ndarray:
        return a.get() if isinstance(a, DeviceArray) else np.asarray(a)

    cp.__dict__["asnumpy"] = asnumpy
    runtime = types.SimpleNamespace(getDeviceCount=lambda: 1)

    class Device:
        def __init__(self, index: int = 0) -> None:
            self.id = index

        def use(self) -> None:
            pass

        def synchronize(self) -> None:
            pass

    cp.__dict__["cuda"] = types.SimpleNamespace(runtime=runtime, Device=Device)
    return cp
