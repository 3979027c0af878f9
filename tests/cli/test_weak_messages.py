"""Study files and options that were silently accepted or oddly refused (issue 17, weak messages): each is
now exactly one line on stderr with exit 2, or — for `tests: [all]` — accepted as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from compare_mm import __version__
from compare_mm.cli import main

BASE = ("name: t\nseed: 1\nmodel: oneway\ngrid: {{sigma_a2: [0.5]}}\nfixed: {{groups: 4, per_group: 3}}\n"
        "replicates: {reps}\nfits: [{{name: reml, backend: reml{extra}}}]\n")

CASES = [
    ("replicates-bool", dict(reps="true", extra=""), "replicates: expected an integer, got True."),
    ("options-unknown", dict(reps="3", extra=", options: {bogus: 1}"),
     "fits[0].options: Unknown option 'bogus' for backend 'reml'; known options: level, path."),
    ("interval-hdi-on-reml", dict(reps="3", extra=", interval: hdi"),
     "fits[0].interval: 'hdi' is not an interval of a reml fit; choose from wald, t, profile, bootstrap, exact, mls."),
]


@pytest.mark.parametrize("name,fmt,line", CASES, ids=[c[0] for c in CASES])
def test_study_key_is_one_line(tmp_path, capsys, name, fmt, line):
    f = tmp_path / "s.yaml"
    f.write_text(BASE.format(**fmt))
    assert main(["run", str(f), "--out", str(tmp_path / "o"), "--quiet", "--no-report"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"compare-mm run: error: {line}"]
    assert not (tmp_path / "o").exists()


def test_a_repeated_yaml_key_is_refused_with_both_lines(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(BASE.format(reps="5", extra="") + "replicates: 7\n")
    assert main(["run", str(f), "--out", str(tmp_path / "o"), "--quiet", "--no-report"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "the key 'replicates' appears twice (lines 6 and 8); keep one" in err[0]


def test_tests_all_in_a_list_is_tests_all(tmp_path):
    from compare_mm.study.config.load import load_config

    f = tmp_path / "s.yaml"
    f.write_text(BASE.format(reps="3", extra=", tests: [all]"))
    g = tmp_path / "g.yaml"
    g.write_text(BASE.format(reps="3", extra=", tests: all"))
    assert load_config(f).fits[0].tests == load_config(g).fits[0].tests
    assert "f_test" in load_config(f).fits[0].tests


def test_unknown_backend_lists_all(tmp_path, capsys):
    csv = Path(__file__).parents[2] / "compare_mm" / "data" / "sleepstudy.csv"
    assert main(["fit", "--data", str(csv), "--formula", "Reaction ~ Days + (1 | Subject)", "--backend", "bogus"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "compare-mm fit: error: Unknown backend 'bogus'; choose one of reml, statsmodels, pymc or all (every "
        "backend side by side)."]


def test_version(capsys):
    assert main(["--version"]) == 0      # main() returns argparse's exit codes
    assert capsys.readouterr().out.strip() == f"compare-mm {__version__}"
