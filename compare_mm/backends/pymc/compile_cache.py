"""nutpie compilation with an on-disk cache of its two C callbacks, shared by every process of a user.

Where a nutpie compile spends its time (sleepstudy ``(Days || Subject)``, measured with cProfile): ~90 %
in ``numba.cfunc`` of the two C callbacks nutpie wraps around PyTensor's generated functions (logp +
gradient, and the "expand" function that computes the stored deterministics).  PyTensor's numba backend
already caches its own generated functions on disk (``numba__cache``, keyed by a hash of the graph), but
nutpie's callbacks cannot be cached: they are closures that capture the shared-data arrays as globals, so
numba reports "Cannot cache compiled function … as it uses dynamic globals" and compiles both (and with
them the whole PyTensor function they call) in every process.

:func:`compile_pymc_model` does what ``nutpie.compile_pymc_model(model, var_names=…)`` does, step by step
with nutpie's own helpers, except that the two callbacks are generated as source text that reads the
shared arrays from nutpie's user-data record by fixed offsets (no captured arrays) and are compiled with
``cache=True`` under a locator that puts them in :func:`cache_dir`, keyed by a hash of PyTensor's cache
keys for the two functions, the generated source and the library versions.  The callbacks compute
exactly what nutpie's do (same PyTensor function, same return codes), so a fit draws the same numbers
with or without the cache.  A file lock per key keeps two processes from compiling the same design at
once; numba writes its index and data files through a temporary file and a rename.

The cache lives in ``$COMPARE_MM_CACHE`` (default ``$XDG_CACHE_HOME/compare_mm`` or
``~/.cache/compare_mm``); ``COMPARE_MM_CACHE=off`` disables it (plain ``nutpie.compile_pymc_model``).
Delete the directory to clear it.  If nutpie's internals differ from the version this was written for
(0.16), or PyTensor cannot key one of the functions, the plain nutpie path is used.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

CACHE_ENV = "COMPARE_MM_CACHE"
FORMAT = 1  # bump when the generated source or its key changes meaning
_SOURCES: "weakref.WeakKeyDictionary[Any, tuple[str, Path]]" = weakref.WeakKeyDictionary()
_LOCATOR_REGISTERED = False


def cache_dir() -> Path | None:
    """The cache directory (``None`` when ``COMPARE_MM_CACHE=off``)."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env.lower() in ("off", "0", "none", "false"):
        return None
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "compare_mm"


def _register_locator() -> None:
    """Put a numba cache locator for our generated callbacks in front of numba's own."""
    global _LOCATOR_REGISTERED
    if _LOCATOR_REGISTERED:
        return
    from numba.core.caching import CacheImpl, _CacheLocator

    class _Locator(_CacheLocator):
        """Generated callbacks: cached in their design's directory, disambiguated by the key."""

        def __init__(self, py_func, key: str, path: Path):
            self._py_func, self._key, self._path = py_func, key, path
            # numba names this file in its "Cannot cache …" warning (it raised AttributeError without it)
            self._py_file = getattr(getattr(py_func, "__code__", None), "co_filename", "<compare_mm>")

        def ensure_cache_path(self):
            self._path.mkdir(parents=True, exist_ok=True)

        def get_cache_path(self):
            return str(self._path)

        def get_source_stamp(self):
            return FORMAT

        def get_disambiguator(self):
            return self._key

        @classmethod
        def from_function(cls, py_func, py_file):
            entry = _SOURCES.get(py_func)
            return None if entry is None else cls(py_func, *entry)

    CacheImpl._locator_classes.insert(0, _Locator)
    _LOCATOR_REGISTERED = True


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (released when the block ends or the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _offsets(record: np.dtype, names: list[str]) -> dict[str, tuple[int, int, list[int]]]:
    """For each shared array: (word index of its data pointer, of its size, of each shape entry).

    nutpie's user-data record is ``shared: {data: {name: uintp}, size: {name: uintp}, shape: {name:
    uint[ndim]}}``; every field is an 8-byte word, so the callbacks read it as a ``uint64`` vector.
    """
    if record.itemsize % 8:
        raise ValueError("unexpected nutpie user-data layout")
    shared, base = record.fields["shared"]
    out = {}
    for name in names:
        words = []
        for part in ("data", "size", "shape"):
            sub, off = shared.fields[part]
            dt, off2 = sub.fields[name][:2]
            start = base + off + off2
            if dt.base.itemsize != 8 or start % 8:
                raise ValueError("unexpected nutpie user-data layout")
            n = int(np.prod(dt.shape)) if dt.shape else 1
            words.append([start // 8 + i for i in range(n)])
        if len(words[0]) != 1 or len(words[1]) != 1:
            raise ValueError("unexpected nutpie user-data layout")
        out[name] = (words[0][0], words[1][0], words[2])
    return out


def _unpack_lines(names: list[str], shared: dict[str, np.ndarray], offs) -> tuple[list[str], list[str]]:
    """Source lines that rebuild each shared array from the record, and the argument names."""
    lines, args = [], []
    for i, name in enumerate(names):
        d, s, shape = offs[name]
        arr = shared[name]
        dtype = np.dtype(arr.dtype).name
        if dtype not in ("float64", "int64", "int32", "bool", "float32", "uint8"):
            raise ValueError(f"unsupported shared dtype {dtype}")
        flat = f"numba.carray(address_as_void_pointer(u[{d}]), (int(u[{s}]),), np.{dtype})"
        if arr.ndim == 0:
            lines.append(f"        a{i} = {flat}.reshape(())")
        else:
            if len(shape) != arr.ndim:
                raise ValueError("unexpected nutpie user-data layout")
            dims = ", ".join(f"int(u[{w}])" for w in shape) + ("," if arr.ndim == 1 else "")
            lines.append(f"        a{i} = {flat}.reshape(({dims}))")
        args.append(f"a{i}")
    return lines, args


def _unpack_source(words: int, names, shared, offs) -> str:
    """``call_inner(x, user_data_)``: rebuild the shared arrays from the record and call PyTensor's function.

    Kept out of the callbacks' ``try`` block: numba's SSA pass is super-linear in the number of raising
    statements inside a ``try`` (minutes for two dozen arrays).
    """
    lines, args = _unpack_lines(names, shared, offs)
    body = "\n".join(line[4:] for line in lines)
    return f"""
def call_inner(x, user_data_):
    u = numba.carray(user_data_, ({words},), np.uint64)
{body}
    return inner({", ".join(["x"] + args)})
"""


def _logp_source(n_dim: int, words: int, names, shared, offs) -> str:
    return _unpack_source(words, names, shared, offs) + f"""

def logp_cfunc(dim, x_, out_, logp_, user_data_):
    if dim != {n_dim}:
        return -1
    try:
        x = numba.carray(x_, ({n_dim},))
        out = numba.carray(out_, ({n_dim},))
        logp = numba.carray(logp_, ())
        logp_val, grad = call_inner_jit(x, user_data_)
        logp[()] = logp_val
        out[...] = grad
        if not np.all(np.isfinite(out)):
            return 3
        if not np.isfinite(logp_val):
            return 4
    except Exception:  # noqa: BLE001
        return 1
    return 0
"""


def _expand_source(n_dim: int, n_expanded: int, words: int, names, shared, offs) -> str:
    return _unpack_source(words, names, shared, offs) + f"""

def expand_cfunc(dim, expanded, x_, out_, user_data_):
    if dim != {n_dim}:
        return -1
    if expanded != {n_expanded}:
        return -1
    try:
        x = numba.carray(x_, ({n_dim},))
        out = numba.carray(out_, ({n_expanded},))
        (values,) = call_inner_jit(x, user_data_)
        out[...] = values
    except Exception:  # noqa: BLE001
        return -2
    return 0
"""


def _pytensor_key(fn_pt) -> str | None:
    """PyTensor's own numba cache key of a compiled function (``None``: PyTensor cannot cache it)."""
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    jit = fn_pt.vm.jit_fn
    return CACHED_SRC_FUNCTIONS.get(getattr(jit, "py_func", None))


def _make_cfunc(src: str, name: str, inner, sig, key: str, path: Path):
    """Compile the generated callback with numba's file cache; returns (cfunc, loaded from disk?, stored?).

    numba refuses to store a function that uses "dynamic globals" (seen with ``NUMBA_OPT=0``): it warns
    and compiles it anyway; that warning is turned into ``stored = False`` instead of reaching stderr.
    numba's other warnings here — performance hints about PyTensor's generated code (``np.dot() is
    faster on contiguous arrays``, a centred ``(x | g)`` model) — are dropped: a user cannot act on them."""
    import warnings

    import numba
    from numba.core.errors import NumbaWarning
    from nutpie.compile_pymc import address_as_void_pointer

    env = {"numba": numba, "np": np, "inner": inner, "address_as_void_pointer": address_as_void_pointer,
           "__name__": __name__}  # an importable module: numba rebuilds the environment from it on load
    head, tail = src.split("\n\ndef " + name)
    exec(compile(head, "<compare_mm call_inner>", "exec"), env)
    env["call_inner_jit"] = numba.njit(env["call_inner"])
    exec(compile("def " + name + tail, f"<compare_mm {name}>", "exec"), env)
    fn = env[name]
    _SOURCES[fn] = (key, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NumbaWarning)
        cf = numba.cfunc(sig, cache=True)(fn)
    for w in caught:   # numba's own warnings concern PyTensor's generated code: nothing a user can act on
        if not issubclass(w.category, NumbaWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    stored = not any("Cannot cache" in str(w.message) for w in caught)
    return cf, cf.cache_hits > 0, stored


def _versions() -> list[str]:
    import numba
    import nutpie
    import pytensor

    return [numba.__version__, nutpie.__version__, pytensor.__version__]


def compile_pymc_model(model, var_names: list[str]) -> tuple[Any, str]:
    """``nutpie.compile_pymc_model(model, var_names=var_names)`` with disk-cached callbacks.

    Returns (compiled model, how): ``"disk"`` both callbacks loaded from the cache, ``"compiled"``
    compiled and stored, ``"off"`` cache disabled, ``"uncacheable"`` PyTensor could not key a function,
    nutpie's internals differ (plain nutpie compile) or numba would not store the callbacks.
    """
    import nutpie

    root = cache_dir()
    if root is None:
        return nutpie.compile_pymc_model(model, var_names=var_names), "off"
    try:
        from nutpie.compile_pymc import (CompiledPyMCModel, _make_c_expand_func, _make_functions,
                                         _prepare_dims_and_coords, _wrap_with_lock, make_user_data)
        from pymc.initial_point import make_initial_point_fn
        del _make_c_expand_func  # present in the nutpie layout this mirrors
    except ImportError:
        return nutpie.compile_pymc_model(model, var_names=var_names), "uncacheable"
    import numba

    # nutpie.compile_pymc_model, numba backend, default arguments (freeze_model=False, support_point)
    initial_point_fn = _wrap_with_lock(make_initial_point_fn(
        model=model, overrides=None, default_strategy="support_point", jitter_rvs=set(model.free_RVs),
        return_transformed=True))
    n_dim, n_expanded, logp_pt, expand_pt, init_fn, shape_info = _make_functions(
        model, mode="NUMBA", compute_grad=True, join_expanded=True, pymc_initial_point_fn=initial_point_fn,
        var_names=var_names)
    keys = [_pytensor_key(logp_pt), _pytensor_key(expand_pt)]
    if None in keys:
        return nutpie.compile_pymc_model(model, var_names=var_names), "uncacheable"
    shared_data, shared_vars = {}, {}
    for val in [*logp_pt.get_shared(), *expand_pt.get_shared()]:
        if val.name in shared_data and shared_vars[val.name] is not val:
            raise ValueError(f"Shared variables must have unique names: {val.name}")
        shared_data[val.name] = np.array(val.get_value(), order="C", copy=True)
        shared_vars[val.name] = val
    for val in shared_data.values():
        val.flags.writeable = False
    user_data = make_user_data(shared_vars, shared_data)
    try:
        offs = _offsets(user_data.dtype, list(shared_vars))
        words = user_data.dtype.itemsize // 8
        logp_names = [v.name for v in logp_pt.get_shared()]
        expand_names = [v.name for v in expand_pt.get_shared()]
        srcs = [_logp_source(n_dim, words, logp_names, shared_data, offs),
                _expand_source(n_dim, n_expanded, words, expand_names, shared_data, offs)]
    except ValueError:
        return nutpie.compile_pymc_model(model, var_names=var_names), "uncacheable"
    key = hashlib.sha256(json.dumps([FORMAT, _versions(), keys, srcs]).encode()).hexdigest()[:32]
    path = root / "numba"
    _register_locator()
    vp, f64p = numba.types.voidptr, numba.types.CPointer(numba.types.double)
    logp_sig = numba.types.int64(numba.types.uint64, f64p, f64p, f64p, vp)
    expand_sig = numba.types.int64(numba.types.uint64, numba.types.uint64, f64p, f64p, vp)
    with _file_lock(path / f"{key}.lock"):
        logp_cf, hit1, kept1 = _make_cfunc(srcs[0], "logp_cfunc", logp_pt.vm.jit_fn, logp_sig, key, path)
        expand_cf, hit2, kept2 = _make_cfunc(srcs[1], "expand_cfunc", expand_pt.vm.jit_fn, expand_sig, key,
                                             path)
    dims, coords = _prepare_dims_and_coords(model, shape_info)
    compiled = CompiledPyMCModel(
        _n_dim=n_dim, dims=dims, _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info)},
        compiled_logp_func=logp_cf, compiled_expand_func=expand_cf, initial_point_func=init_fn,
        shared_data=shared_data, user_data=user_data, n_expanded=n_expanded, shape_info=shape_info,
        logp_func=logp_pt, expand_func=expand_pt)
    return compiled, "disk" if hit1 and hit2 else "compiled" if kept1 and kept2 else "uncacheable"
