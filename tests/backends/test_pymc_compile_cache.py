"""The cross-process compile cache of the PyMC backend (compile_cache), its status line, the BLAS warning,
and the study progress bar's cost weights."""

from __future__ import annotations

import os
import subprocess
import tempfile
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from compare_mm.backends.pymc import compile_cache
from compare_mm.backends.pymc.status import ARVIZ_NOTICE, BLAS_WARNING, design_label

# One fit in a fresh process; prints the cache status and the posterior rows (repr: every bit of every
# float), fits the same design a second time to show that only one compile is announced.
SCRIPT = textwrap.dedent("""
    import sys
    import pandas as pd
    import compare_mm
    from compare_mm.examples.sleepstudy import load_sleepstudy
    df = load_sleepstudy()
    kw = dict(backend="pymc", draws=50, tune=50, chains=1, cores=1, seed=11)
    r = compare_mm.fit("Reaction ~ Days + (1 | Subject)", df, **kw)
    r2 = compare_mm.fit("Reaction ~ Days + (1 | Subject)", df, **kw)
    print("CACHE", r.diagnostics["compile_cache"], r2.diagnostics["compile_cache"])
    print("POST", repr(r.posterior))
""")


def _env(cache: Path) -> dict:
    """The cache directory, and a fresh XDG cache so that ArviZ's once-a-day import notice would fire."""
    return dict(os.environ, COMPARE_MM_CACHE=str(cache), XDG_CACHE_HOME=tempfile.mkdtemp())


def _run(cache: Path) -> tuple[str, str, str]:
    env = _env(cache)
    return _finish(subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE))


def _start(cache: Path) -> subprocess.Popen:
    env = _env(cache)
    return subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen) -> tuple[str, str, str]:
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    cache = next(line for line in out.splitlines() if line.startswith("CACHE"))
    post = next(line for line in out.splitlines() if line.startswith("POST"))
    return cache, post, err


def _check_stderr(err: str) -> None:
    assert err.count("compiling the PyMC model for design") == 1, err
    assert err.count("compare-mm: compiled in") == 1, err
    assert BLAS_WARNING not in err
    assert ARVIZ_NOTICE not in err and "Warning" not in err, err


@pytest.fixture(scope="module")
def cache_runs(tmp_path_factory):
    """Four fresh processes on one cache directory: two started together (the lock makes one compile
    and store while the other waits and loads), a third afterwards (loads from disk), and one with the
    cache off (compiles on its own)."""
    cache = tmp_path_factory.mktemp("cache")
    procs = [_start(cache), _start(cache)]
    together = sorted((_finish(p) for p in procs), key=lambda r: r[0])
    return {"together": together, "later": _run(cache), "off": _run_off(), "dir": cache}


@pytest.mark.slow
def test_concurrent_compiles_of_one_design_leave_a_valid_cache(cache_runs):
    (c_comp, p_comp, e_comp), (c_load, p_load, e_load) = cache_runs["together"]
    # the lock makes the second process wait and load what the first stored
    assert (c_comp, c_load) == ("CACHE compiled memory", "CACHE disk memory")
    assert p_comp == p_load  # same seed, bit for bit
    assert "stored in the disk cache" in e_comp and "from the disk cache" in e_load
    assert not list((cache_runs["dir"] / "numba").glob("*.tmp*"))


@pytest.mark.slow
def test_second_process_loads_the_disk_cache_and_draws_the_same(cache_runs):
    c3, p3, e3 = cache_runs["later"]
    assert c3 == "CACHE disk memory"
    assert p3 == cache_runs["together"][0][1]
    assert "from the disk cache" in e3
    for _, _, err in (*cache_runs["together"], cache_runs["later"]):
        _check_stderr(err)


@pytest.mark.slow
def test_cache_off_gives_the_draws_of_the_disk_cache(cache_runs):
    c_off, p_off, e_off = cache_runs["off"]
    assert c_off == "CACHE off memory"
    assert p_off == cache_runs["later"][1]
    _check_stderr(e_off)


@pytest.mark.slow
def test_code_numba_will_not_store_is_compiled_without_a_traceback(tmp_path):
    """With ``NUMBA_OPT=0`` numba refuses to store the callbacks ("uses dynamic globals"); its warning
    named an attribute our cache locator lacked, and the fit died with AttributeError.  Now the fit runs,
    stderr stays clean and the status line does not claim the code was stored."""
    env = dict(_env(tmp_path / "cache"), NUMBA_OPT="0")
    cache, _, err = _finish(subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, text=True,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    assert cache == "CACHE uncacheable memory", cache      # numba 0.65: what NUMBA_OPT=0 gives
    assert "not stored: the disk cache cannot hold this model's code" in err
    assert "stored in the disk cache" not in err
    _check_stderr(err)


def _run_off() -> tuple[str, str, str]:
    env = dict(_env(Path(".")), COMPARE_MM_CACHE="off")
    return _finish(subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE))


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("COMPARE_MM_CACHE", str(tmp_path / "c"))
    assert compile_cache.cache_dir() == tmp_path / "c"
    monkeypatch.setenv("COMPARE_MM_CACHE", "off")
    assert compile_cache.cache_dir() is None
    monkeypatch.delenv("COMPARE_MM_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.cache_dir() == tmp_path / "xdg" / "compare_mm"


def test_offsets_read_nutpie_user_data_record():
    from nutpie.compile_pymc import make_user_data

    class V:
        def __init__(self, ndim):
            self.ndim = ndim

    shared = {"y": np.arange(6.0).reshape(2, 3), "s": np.asarray(2.0), "c": np.arange(4)}
    rec = make_user_data({k: V(v.ndim) for k, v in shared.items()}, shared)
    words = np.frombuffer(rec.tobytes(), np.uint64)
    offs = compile_cache._offsets(rec.dtype, list(shared))
    for name, arr in shared.items():
        d, s, shape = offs[name]
        assert words[d] == arr.ctypes.data
        assert words[s] == arr.size
        assert [int(words[w]) for w in shape] == list(arr.shape)


def test_design_label():
    import pandas as pd

    from compare_mm.api import make_design

    df = pd.DataFrame({"y": np.arange(12.0), "x": np.tile([0.0, 1.0], 6), "g": np.repeat(list("abc"), 4)})
    d = make_design("y ~ x + (x || g)", df)
    assert design_label(d, "noncentred") == "y ~ x + (x || g), 12 rows, 3 g, noncentred"


def test_status_line_goes_through_tqdm_while_a_bar_is_shown(capsys):
    from tqdm import tqdm

    from compare_mm.backends.pymc.status import announce_compile

    with tqdm(total=3, file=sys.stderr) as bar:
        with announce_compile("d") as info:
            info["cache"] = "disk"
        bar.update(1)
    err = capsys.readouterr().err
    assert "compiling the PyMC model for design d …" in err
    assert "from the disk cache" in err


def test_chunk_cost_weights_pymc_over_reml():
    from compare_mm.study.config.load import load_config
    from compare_mm.study.plan import plan_chunks
    from compare_mm.study.progress import COMPILE_WEIGHT, chunk_cost

    cfg = load_config({"name": "t", "replicates": 40, "seed": 1,
                       "grid": {"model": ["oneway"], "sigma_a2": [0.5]},
                       "fixed": {"groups": 6, "per_group": 5, "mu": 0.0, "sigma_e2": 1.0},
                       "fits": [{"name": "reml", "backend": "reml", "method": "REML"},
                                {"name": "bayes", "backend": "pymc", "replicates": 10}]})
    costs = {(c.start, c.stop): chunk_cost(cfg, c) for c in plan_chunks(cfg)}
    first = min(costs)
    assert costs[first] > COMPILE_WEIGHT
    cheap = [v for (a, b), v in costs.items() if a >= 10]
    assert cheap and max(cheap) < 0.1 * costs[first]


def test_the_graph_key_of_a_crossed_model_does_not_change_between_builds():
    """The disk cache is keyed by PyTensor's key of the compiled graph.  With two grouping factors the
    broadcast checks of a dynamically shaped graph came out in a different order on every build (as in
    every process), so a second process never found the first one's code; static data shapes remove them."""
    pytest.importorskip("nutpie")
    import pandas as pd
    from nutpie.compile_pymc import _make_functions

    from compare_mm.api import make_design
    from compare_mm.backends.pymc.model import build_model
    from compare_mm.backends.pymc.priors import resolve_priors

    rng = np.random.default_rng(7)
    g, h = np.repeat(np.arange(8), 6), np.tile(np.arange(6), 8)
    df = pd.DataFrame({"g": g.astype(str), "h": h.astype(str), "x": rng.normal(size=48), "y": rng.normal(size=48)})
    design = make_design("y ~ x + (1 | g) + (1 | h)", df)
    keys = set()
    for _ in range(3):
        model = build_model(design, resolve_priors(design, None), "noncentred")
        logp = _make_functions(model, mode="NUMBA", compute_grad=True, join_expanded=True,
                               pymc_initial_point_fn=None, var_names=None)[2]
        keys.add(compile_cache._pytensor_key(logp))
    assert len(keys) == 1 and None not in keys, keys
