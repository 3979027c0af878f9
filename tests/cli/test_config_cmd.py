"""``compare-mm config show STUDY.yaml``: the resolved study as YAML; bad studies: one line, exit 2."""

from __future__ import annotations

from importlib import resources

import yaml

from compare_mm.cli import main
from compare_mm.study.config.load import load_config
from compare_mm.study.presets import PACKAGED

STUDY = {"name": "show", "replicates": 3, "model": "oneway",
         "grid": {"groups": [4], "per_group": [3], "sigma_a2": [0.0, 0.5]}, "cluster": "local",
         "fits": [{"name": "reml", "backend": "reml"},
                  {"name": "bayes", "backend": "pymc", "prior": "half_cauchy", "sampler_preset": "quick"}]}


def test_config_show_prints_the_resolved_study(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(STUDY))
    assert main(["config", "show", str(path)]) == 0
    out = capsys.readouterr().out
    shown = yaml.safe_load(out)
    packaged = resources.files("compare_mm").joinpath(PACKAGED)
    assert shown["fits"][1]["prior"] == yaml.safe_load(packaged.joinpath("priors/half_cauchy.yaml").read_text())
    assert "sampler_preset" not in shown["fits"][1] and shown["fits"][1]["draws"] == 300
    assert shown["cluster"] == {"name": "local", "kind": "local", "workers": 2}
    assert shown["fits"][0]["method"] == "REML" and shown["seed"] == 0  # defaults filled
    # the output is itself a study file with the same config hash
    again = tmp_path / "again.yaml"
    again.write_text(out)
    assert load_config(again).config_hash == load_config(path).config_hash


def test_config_show_of_a_bad_study_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(dict(STUDY, fits=[{"backend": "pymc", "prior": "pc_prio"}])))
    assert main(["config", "show", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == ("compare-mm config: error: fits[0].prior: unknown prior preset 'pc_prio'; available: "
                   "half_cauchy, inverse_gamma, pc_prior, weakly_informative.\n")
    assert main(["config", "show", str(tmp_path / "missing.yaml")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_run_with_cluster_slurm_without_dask_jobqueue_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # as if not installed
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(dict(STUDY, cluster="slurm", fits=STUDY["fits"][:1])))
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--quiet", "--no-report"]) == 2
    assert capsys.readouterr().err == ("compare-mm run: error: cluster: a slurm cluster needs dask-jobqueue, "
                                       "which is not installed; run `pip install dask-jobqueue`.\n")
