"""Faults and bad input across the command line: each is exactly one line on stderr, exit code 2 (1 when
the machine fails), no traceback, and nothing already stored changes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from compare_mm.cli import main
from compare_mm.study.runner import run_study

STUDY = {"name": "faults", "seed": 4, "replicates": 2, "chunk_size": 2, "model": "oneway",
         "grid": {"groups": [4], "per_group": [3], "sigma_a2": [0.5]},
         "fits": [{"name": "reml", "backend": "reml", "method": "REML"}]}
YAML = ("name: faults\nseed: 4\nreplicates: 2\nchunk_size: 2\nmodel: oneway\n"
        "grid:\n  groups: [4]\n  per_group: [3]\n  sigma_a2: [{sa2}]\nfixed:\n  mu: {mu}\n"
        "fits:\n  - {{name: reml, backend: reml, method: REML}}\n")


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Path:
    """A folder with a finished study, a regular file, study files good and bad, and a CSV."""
    d = tmp_path_factory.mktemp("faults")
    run_study(STUDY, d / "done", progress=False)
    (d / "afile").write_text("not a folder")
    (d / "badman").mkdir()
    (d / "badman" / "manifest.json").write_text('{"name": "faults", "chunks": [')  # a torn manifest
    (d / "good.yaml").write_text(YAML.format(sa2="0.5", mu="0.0"))
    (d / "nan.yaml").write_text(YAML.format(sa2=".nan", mu="0.0"))
    (d / "inf.yaml").write_text(YAML.format(sa2=".inf", mu="0.0"))
    (d / "neginf.yaml").write_text(YAML.format(sa2="0.5", mu="-.inf"))
    (d / "nanlevel.yaml").write_text(YAML.format(sa2="0.5", mu="0.0") + "level: .NaN\n")
    (d / "binary.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    (d / "latin1.yaml").write_bytes(YAML.format(sa2="0.5", mu="0.0").replace("faults", "f\u00e9").encode("latin-1"))
    (d / "nul.yaml").write_bytes(b"name: x\x00\n")
    (d / "huge.yaml").write_text(YAML.format(sa2="0.5", mu="0.0").replace("replicates: 2\nchunk_size: 2",
                                                                          "replicates: 1000000000"))
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(6), 5)
    pd.DataFrame({"g": g, "y": rng.normal(size=30) + 0.3 * g, "x": rng.normal(size=30)}).to_csv(d / "d.csv", index=False)
    return d


def _fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}  # the lock names its holder


FIT = ["fit", "--data", "{d}/d.csv", "--formula", "y ~ x + (1 | g)"]
RUN = ["run", "{d}/good.yaml", "--out", "{d}/done", "--resume", "--quiet", "--no-report"]

CASES = [
    # id, argv ({d}: the fixture folder), exit code, the one line on stderr
    ("out-is-file", ["run", "{d}/good.yaml", "--out", "{d}/afile", "--quiet"], 2,
     "compare-mm run: error: --out: '{d}/afile' is a file, not a directory; choose a directory."),
    ("out-under-file", ["run", "{d}/good.yaml", "--out", "{d}/afile/sub", "--quiet"], 2,
     "compare-mm run: error: --out: '{d}/afile/sub' lies under '{d}/afile', which is a file, not a directory; "
     "choose a directory."),
    ("example-out-is-file", ["example", "sleepstudy", "--no-bayes", "--out", "{d}/afile"], 2,
     "compare-mm example: error: --out: '{d}/afile' is a file, not a directory; choose a directory."),
    ("example-out-under-file", ["example", "sleepstudy", "--no-bayes", "--out", "{d}/afile/x"], 2,
     "compare-mm example: error: --out: '{d}/afile/x' lies under '{d}/afile', which is a file, not a "
     "directory; choose a directory."),
    ("example-seed-negative", ["example", "sleepstudy", "--seed", "-1"], 2,
     "compare-mm example: error: --seed: must be an integer ≥ 0, got -1."),
    ("seed-negative-tests", [*FIT, "--tests", "--seed", "-1"], 2,
     "compare-mm fit: error: argument --seed: must be an integer ≥ 0, got -1; see `compare-mm fit --help`."),
    ("seed-negative-bootstrap", [*FIT, "--bootstrap", "5", "--seed", "-1"], 2,
     "compare-mm fit: error: argument --seed: must be an integer ≥ 0, got -1; see `compare-mm fit --help`."),
    ("seed-not-integer", [*FIT, "--bootstrap", "5", "--seed", "x"], 2,
     "compare-mm fit: error: argument --seed: must be an integer ≥ 0, got 'x'; see `compare-mm fit --help`."),
    ("bootstrap-negative", [*FIT, "--bootstrap", "-2"], 2,
     "compare-mm fit: error: argument --bootstrap: must be an integer ≥ 0, got -2; see `compare-mm fit --help`."),
    ("scheduler-not-url", [*RUN, "--scheduler", "not a url"], 2,
     "compare-mm run: error: --scheduler: 'not a url' is not a Dask scheduler address (missing port number in "
     "address 'not a url'); give one such as tcp://host:8786."),
    ("scheduler-no-port", [*RUN, "--scheduler", "tcp://somehost"], 2,
     "compare-mm run: error: --scheduler: 'tcp://somehost' is not a Dask scheduler address (missing port number "
     "in address 'somehost'); give one such as tcp://host:8786."),
    ("scheduler-bad-port", [*RUN, "--scheduler", "tcp://somehost:port"], 2,
     "compare-mm run: error: --scheduler: 'tcp://somehost:port' is not a Dask scheduler address (invalid literal "
     "for int() with base 10: 'port'); give one such as tcp://host:8786."),
    ("binary-study", ["run", "{d}/binary.yaml", "--out", "{d}/new"], 2,
     "compare-mm run: error: Study file '{d}/binary.yaml' is not UTF-8 text (byte 0x89 at offset 0); save it as "
     "UTF-8 YAML."),
    ("latin1-study", ["run", "{d}/latin1.yaml", "--out", "{d}/new"], 2,
     "compare-mm run: error: Study file '{d}/latin1.yaml' is not UTF-8 text (byte 0xe9 at offset 7); save it as "
     "UTF-8 YAML."),
    ("nul-study", ["run", "{d}/nul.yaml", "--out", "{d}/new"], 2,
     "compare-mm run: error: Study file '{d}/nul.yaml' is not a text file (character #x0000 at offset 7)."),
    ("config-show-binary", ["config", "show", "{d}/binary.yaml"], 2,
     "compare-mm config: error: Study file '{d}/binary.yaml' is not UTF-8 text (byte 0x89 at offset 0); save it "
     "as UTF-8 YAML."),
    ("grid-nan", ["run", "{d}/nan.yaml", "--out", "{d}/new"], 2,
     "compare-mm run: error: grid.sigma_a2[0]: .nan is not a finite number; give a finite value."),
    ("grid-inf", ["run", "{d}/inf.yaml", "--out", "{d}/new"], 2,
     "compare-mm run: error: grid.sigma_a2[0]: .inf is not a finite number; give a finite value."),
    ("mu-neg-inf", ["run", "{d}/neginf.yaml", "--out", "{d}/new"], 2,
     "compare-mm run: error: fixed.mu: -.inf is not a finite number; give a finite value."),
    ("level-nan", ["config", "show", "{d}/nanlevel.yaml"], 2,
     "compare-mm config: error: level: .nan is not a finite number; give a finite value."),
    ("huge-without-yes", ["run", "{d}/huge.yaml", "--out", "{d}/new", "--quiet"], 2,
     "compare-mm run: error: replicates: 1000000000 (1 condition × 1 fit) would store ~8e+09 rows, ~320 GB on "
     "disk and take ~46.3 days by a rough estimate; pass --yes to run it anyway, or lower replicates."),
    ("missing-out", ["run", "{d}/good.yaml"], 2,
     "compare-mm run: error: the following arguments are required: --out; see `compare-mm run --help`."),
    ("unknown-option", ["run", "{d}/good.yaml", "--out", "{d}/new", "--workerz", "2"], 2,
     "compare-mm: error: unrecognized arguments: --workerz 2; see `compare-mm --help`."),
    ("unknown-command", ["runn", "x"], 2,
     "compare-mm: error: argument COMMAND: invalid choice: 'runn' (choose from 'fit', 'example', 'validate', "
     "'run', 'summarise', 'report', 'config'); see `compare-mm --help`."),
    ("bad-choice", [*FIT, "--method", "BAYES"], 2,
     "compare-mm fit: error: argument --method: invalid choice: 'BAYES' (choose from 'REML', 'ML'); see "
     "`compare-mm fit --help`."),
    ("workers-not-int", [*RUN, "--workers", "many"], 2,
     "compare-mm run: error: argument --workers: invalid int value: 'many'; see `compare-mm run --help`."),
    ("workers-zero", [*RUN, "--workers", "0"], 2, "compare-mm run: error: --workers: must be ≥ 1, got 0."),
    ("workers-and-scheduler", [*RUN, "--workers", "2", "--scheduler", "tcp://h:1"], 2,
     "compare-mm run: error: --workers and --scheduler exclude each other; give one of them."),
    ("other-study-into-done", ["run", "{d}/nan.yaml".replace("nan", "good"), "--out", "{d}/done", "--quiet"], 2,
     "compare-mm run: error: --out: '{d}/done' already holds a study; pass --resume to continue it or choose "
     "another directory."),
    ("summarise-missing", ["summarise", "{d}/nowhere"], 2,
     "compare-mm summarise: error: Study directory '{d}/nowhere' does not exist."),
    ("summarise-file", ["summarise", "{d}/afile"], 2,
     "compare-mm summarise: error: Study directory '{d}/afile' is a file; give the --out folder of "
     "`compare-mm run`."),
    ("report-file", ["report", "{d}/afile"], 2,
     "compare-mm report: error: Study directory '{d}/afile' is a file; give the --out folder of `compare-mm run`."),
    ("report-missing", ["report", "{d}/nowhere"], 2,
     "compare-mm report: error: Study directory '{d}/nowhere' does not exist."),
    ("resume-torn-manifest", ["run", "{d}/good.yaml", "--out", "{d}/badman", "--resume", "--quiet"], 2,
     "compare-mm run: error: '{d}/badman/manifest.json' is not valid JSON; it is not a compare_mm manifest."),
    ("summarise-torn-manifest", ["summarise", "{d}/badman"], 2,
     "compare-mm summarise: error: '{d}/badman/manifest.json' is not valid JSON; it is not a compare_mm "
     "manifest."),
]


@pytest.mark.parametrize("argv,code,line", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_fault_is_one_line(place, capsys, argv, code, line):
    before = _fingerprint(place / "done")
    argv = [a.format(d=place) for a in argv]
    assert main(argv) == code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert err.splitlines() == [line.format(d=place)]
    assert _fingerprint(place / "done") == before  # nothing stored changed
    assert not (place / "new").exists()  # refused before anything was written


def test_help_still_prints_the_full_usage(capsys):
    assert main(["run", "--help"]) == 0
    assert "--resume" in capsys.readouterr().out


def test_an_escaping_os_error_is_one_line_exit_1(place, capsys, monkeypatch):
    from compare_mm.cli import summarise_cmd

    def boom(args):
        raise PermissionError(13, "Permission denied", str(place / "done" / "summary.csv"))

    monkeypatch.setattr(summarise_cmd, "run", boom)  # registered when main() builds the parser
    assert main(["summarise", str(place / "done")]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"compare-mm summarise: error: Permission denied: '{place / 'done' / 'summary.csv'}'."]
