"""Config groups (compare_mm.study.presets): names in a study resolved from config/, in lookup order."""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
import yaml

from compare_mm.backends.pymc.priors import load_defaults
from compare_mm.errors import ConfigError
from compare_mm.study.config.load import load_config
from compare_mm.study.presets import PACKAGED, preset_files
from compare_mm.study.runner import run_study

REPO = Path(__file__).resolve().parents[2]
PRIORS = "half_cauchy, inverse_gamma, pc_prior, weakly_informative"
BASE = {"name": "p", "seed": 3, "replicates": 6, "chunk_size": 2, "model": "oneway",
        "grid": {"groups": [4], "per_group": [3, [2, 3, 4, 3]], "sigma_a2": [0.3]},
        "fits": [{"name": "reml", "backend": "reml"}]}
KEYS = ["row_type", "condition", "replicate", "fit", "parameter", "group"]


def _bayes(**keys) -> dict:
    return dict(BASE, fits=[{"name": "reml", "backend": "reml"}, {"name": "b", "backend": "pymc", **keys}])


def _write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def _packaged(relative: str):
    return yaml.safe_load(resources.files("compare_mm").joinpath(PACKAGED, relative).read_text())


# ------------------------------------------------------------------------------------------ drift
def test_top_level_config_equals_its_packaged_copy_byte_for_byte():
    repo = preset_files(REPO / "config")
    packaged = preset_files(resources.files("compare_mm").joinpath(PACKAGED))
    assert set(repo) == set(packaged)
    assert {"priors/weakly_informative.yaml", "priors/half_cauchy.yaml", "priors/pc_prior.yaml",
            "priors/inverse_gamma.yaml", "samplers/quick.yaml", "samplers/careful.yaml",
            "clusters/local.yaml", "clusters/slurm.yaml", "report.yaml"} <= set(repo)
    for name in repo:
        assert repo[name] == packaged[name], name


def test_weakly_informative_is_exactly_the_packaged_default_priors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(_bayes(prior="weakly_informative"))
    assert cfg.fits[1].prior == load_defaults()["priors"]
    assert yaml.safe_load((REPO / "config/priors/weakly_informative.yaml").read_text()) == load_defaults()["priors"]


# ------------------------------------------------------------------------------------------ resolution
def test_prior_by_name_equals_the_file_content_and_hashes_as_inline(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = _write(tmp_path / "s" / "study.yaml", _bayes(prior="pc_prior", draws=40))
    cfg = load_config(study)
    content = _packaged("priors/pc_prior.yaml")
    assert cfg.fits[1].prior == content and cfg.fits[1].backend_options(0.95)["prior"] == content
    assert cfg.config_hash == load_config(_bayes(prior=content, draws=40)).config_hash


@pytest.mark.parametrize("name", ["weakly_informative", "half_cauchy", "pc_prior", "inverse_gamma"])
def test_every_prior_preset_is_a_valid_pymc_prior(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config(_bayes(prior=name)).fits[1].prior == _packaged(f"priors/{name}.yaml")


def test_lookup_order_study_folder_then_cwd_then_packaged(tmp_path, monkeypatch):
    cwd, sdir = tmp_path / "cwd", tmp_path / "studies"
    monkeypatch.chdir(_write(cwd / "placeholder", "").parent)
    study = _write(sdir / "study.yaml", _bayes(prior="pc_prior"))
    assert load_config(study).fits[1].prior == _packaged("priors/pc_prior.yaml")
    from_cwd = {"sd": {"family": "half_normal", "scale": 0.5, "autoscale": True}}
    _write(cwd / "config/priors/pc_prior.yaml", from_cwd)
    assert load_config(study).fits[1].prior == from_cwd
    from_study = {"sd": {"family": "half_cauchy", "scale": 2.0}}
    _write(sdir / "config/priors/pc_prior.yaml", from_study)
    assert load_config(study).fits[1].prior == from_study
    # a new name in the study's folder is listed among the available ones
    with pytest.raises(ConfigError, match="available: half_cauchy, inverse_gamma, pc_prior, weakly_informative"):
        load_config(_write(sdir / "other.yaml", _bayes(prior="nope")))


def test_unknown_prior_name_is_one_sentence_listing_the_available_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_config(_bayes(prior="pc_prio"))
    assert str(err.value) == f"fits[1].prior: unknown prior preset 'pc_prio'; available: {PRIORS}."


def test_malformed_preset_names_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = _write(tmp_path / "config/priors/broken.yaml", "sd: {family: half_normal\n")
    with pytest.raises(ConfigError) as err:
        load_config(_bayes(prior="broken"))
    msg = str(err.value)
    assert msg.startswith(f"Preset file '{bad}' is not valid YAML at line") and "\n" not in msg
    _write(bad, "- just\n- a list\n")
    with pytest.raises(ConfigError, match=r"^Preset file '.*broken.yaml' must be a non-empty YAML mapping"):
        load_config(_bayes(prior="broken"))


def test_sampler_preset_fills_unset_keys_and_the_fit_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fit = load_config(_bayes(sampler_preset="careful", draws=30, options={"cores": 1})).fits[1]
    careful = _packaged("samplers/careful.yaml")
    assert (fit.draws, fit.tune, fit.chains) == (30, careful["tune"], careful["chains"])
    assert fit.options == {"target_accept": careful["target_accept"], "cores": 1}
    quick = load_config(_bayes(sampler_preset="quick", options={"target_accept": 0.9})).fits[1]
    assert quick.options == {"target_accept": 0.9} and quick.draws == _packaged("samplers/quick.yaml")["draws"]
    assert quick.sampler is None  # `sampler` (nutpie | pymc) is untouched by sampler presets


def test_sampler_preset_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^fits\[0\]\.sampler_preset: only pymc fits take 'sampler_preset', "
                                          r"not backend reml\.$"):
        load_config(dict(BASE, fits=[{"backend": "reml", "sampler_preset": "quick"}]))
    with pytest.raises(ConfigError, match=r"^fits\[1\]\.sampler_preset: unknown sampler preset 'slow'; "
                                          r"available: careful, quick\.$"):
        load_config(_bayes(sampler_preset="slow"))
    with pytest.raises(ConfigError, match=r"^fits\[1\]\.sampler_preset: sampler: quadrature integrates the posterior "
                                          r"exactly and takes no NUTS settings; remove sampler_preset: quick or use "
                                          r"sampler: nutpie\.$"):
        load_config(_bayes(sampler_preset="quick", sampler="quadrature"))
    _write(tmp_path / "config/samplers/odd.yaml", {"draws": 10, "warmup": 5})
    with pytest.raises(ConfigError, match=r"^Preset file '.*odd.yaml': unknown key 'warmup'"):
        load_config(_bayes(sampler_preset="odd"))


def test_cluster_errors_and_hash(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^cluster: unknown cluster preset 'pbs'; available: local, slurm\.$"):
        load_config(dict(BASE, cluster="pbs"))
    with pytest.raises(ConfigError, match=r"^cluster: a local cluster needs 'workers', an integer ≥ 1, got 0\.$"):
        load_config(dict(BASE, cluster={"kind": "local", "workers": 0}))
    cfg = load_config(dict(BASE, cluster="slurm"))
    assert cfg.cluster == {"name": "slurm", **_packaged("clusters/slurm.yaml")}
    assert cfg.config_hash == load_config(BASE).config_hash  # where it runs is not part of the hash


def test_studies_without_presets_hash_as_before():
    """Pinned hashes of the repository's studies from before config groups existed (--resume still works)."""
    # the quickstart as it was then (the shipped one has changed since)
    assert load_config(REPO / "tests/data/quickstart_2026-11.yaml").config_hash == \
        "a8a05d68ba19ac405d92657971ded84333f3fb5cb78b7df8721b2d314ec03283"
    assert load_config(REPO / "studies/oneway_boundary.yaml").config_hash == \
        "7bb9f3e495ed3af0ff5c5532985914d7fe3a070b8bd318015cf98f1d60d82c06"


# ------------------------------------------------------------------------------------------ clusters
def test_cluster_local_gives_the_rows_of_two_workers(tmp_path, monkeypatch, rows_of):
    monkeypatch.chdir(tmp_path)
    study = _write(tmp_path / "study.yaml", dict(BASE, cluster="local"))
    run_study(study, tmp_path / "c", progress=False)
    run_study(BASE, tmp_path / "w", workers=2, progress=False)
    assert json.loads((tmp_path / "c/manifest.json").read_text())["executor"] == "local:2"
    a, b = rows_of(tmp_path / "c", KEYS), rows_of(tmp_path / "w", KEYS)
    assert len(a) > 0 and a["ok"].all()
    pd.testing.assert_frame_equal(a, b)


def test_cluster_slurm_without_dask_jobqueue_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # as if not installed
    with pytest.raises(ConfigError) as err:
        run_study(dict(BASE, cluster="slurm"), tmp_path / "o", progress=False)
    assert str(err.value) == ("cluster: a slurm cluster needs dask-jobqueue, which is not installed; "
                              "run `pip install dask-jobqueue`.")
    assert not (tmp_path / "o").exists()  # refused before anything was written
    run_study(dict(BASE, cluster="slurm"), tmp_path / "w", workers=1, progress=False)  # the flag wins


def test_cluster_slurm_passes_the_preset_to_slurmcluster(tmp_path, monkeypatch):
    """The SLURMCluster gets every key but kind/name/jobs, is scaled to `jobs` and closed; the flags win."""
    from compare_mm.study.clusters import study_cluster

    calls = []

    class Fake:
        scheduler_address = "tcp://fake:8786"

        def __init__(self, **kw):
            calls.append(("init", kw))

        def scale(self, jobs):
            calls.append(("scale", jobs))

        def close(self):
            calls.append(("close",))

    monkeypatch.setitem(sys.modules, "dask_jobqueue", type(sys)("dask_jobqueue"))
    sys.modules["dask_jobqueue"].SLURMCluster = Fake
    preset = {"name": "slurm", **_packaged("clusters/slurm.yaml")}
    with study_cluster(preset, None, None) as target:
        assert target == (None, "tcp://fake:8786")
    kwargs = {k: v for k, v in preset.items() if k not in ("kind", "name", "jobs")}
    assert calls == [("init", kwargs), ("scale", preset["jobs"]), ("close",)]
    with study_cluster(preset, 3, None) as target:
        assert target == (3, None) and len(calls) == 3


@pytest.mark.slow
def test_a_pymc_fit_with_preset_prior_and_sampler_runs(tmp_path, monkeypatch, rows_of):
    monkeypatch.chdir(tmp_path)
    study = dict(BASE, replicates=2, grid={"groups": [4], "per_group": [3], "sigma_a2": [0.3]},
                 fits=[{"name": "b", "backend": "pymc", "prior": "pc_prior", "sampler_preset": "quick",
                        "draws": 40, "tune": 40, "options": {"cores": 1}}])
    run_study(study, tmp_path / "o", progress=False)
    rows = rows_of(tmp_path / "o", KEYS)
    assert len(rows) > 0 and rows["ok"].all() and set(rows.fit) == {"b", "F-test"}
