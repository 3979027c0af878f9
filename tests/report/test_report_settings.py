"""config/report.yaml: the packaged settings reproduce the report's rc; a local file overrides them."""

from __future__ import annotations

import pytest
import yaml

from compare_mm.errors import ConfigError
from compare_mm.report import FIGURES
from compare_mm.report.settings import report_settings
from compare_mm.report.style import setup_rc

NAMES = [name for name, _ in FIGURES]


def test_packaged_settings_leave_the_report_as_it_was(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = report_settings(NAMES)
    assert settings.rc(setup_rc()) == setup_rc()
    assert [name for name, _ in settings.select(FIGURES)] == NAMES


def test_local_report_yaml_overrides_dpi_font_and_figures(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config/report.yaml").write_text(yaml.safe_dump({"dpi": 200, "font_size": 19.0,
                                                                 "figures": ["bias_rmse", "boundary_rate"]}))
    settings = report_settings(NAMES)
    rc = settings.rc(setup_rc())
    assert rc["savefig.dpi"] == 200 and rc["font.size"] == 19.0 and rc["axes.titlesize"] == 20.0
    assert [name for name, _ in settings.select(FIGURES)] == ["bias_rmse", "boundary_rate"]
    (tmp_path / "config/report.yaml").write_text(yaml.safe_dump({"figures": ["coverage"]}))
    with pytest.raises(ConfigError, match=r"^Report settings '.*report.yaml': unknown figure 'coverage'; choose"):
        report_settings(NAMES)
    (tmp_path / "config/report.yaml").write_text("dpi: [1\n")
    with pytest.raises(ConfigError, match=r"^Report settings '.*report.yaml' is not valid YAML at line"):
        report_settings(NAMES)
