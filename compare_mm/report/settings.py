"""Settings of the report, read from ``config/report.yaml``.

Lookup: ``./config/report.yaml`` (current working directory), else the packaged copy
``compare_mm/config/presets/report.yaml`` (identical to the repository's ``config/report.yaml``).  Keys:
``dpi`` (PNG resolution), ``font_size`` (base font size; the other font sizes of :func:`setup_rc` keep
their ratio to it) and ``figures`` (which figures are drawn, in order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..errors import ConfigError
from ..study.presets import find_file, read_yaml_file

_FONT_KEYS = ("axes.titlesize", "axes.labelsize", "legend.fontsize", "xtick.labelsize", "ytick.labelsize")
_KEYS = ("dpi", "font_size", "figures")


@dataclass(frozen=True)
class ReportSettings:
    """What ``config/report.yaml`` says."""

    dpi: float
    font_size: float
    figures: tuple[str, ...]

    def rc(self, base: dict[str, Any]) -> dict[str, Any]:
        """``base`` (the report's rc settings) with this resolution and font size."""
        out = dict(base)
        factor = self.font_size / float(base["font.size"])
        out["savefig.dpi"] = self.dpi
        out["font.size"] = self.font_size
        for key in _FONT_KEYS:
            if key in out:
                out[key] = float(out[key]) * factor
        return out

    def select(self, figures: Sequence[tuple[str, Callable]]) -> list[tuple[str, Callable]]:
        """The (name, maker) pairs of ``figures`` this file asks for, in its order."""
        makers = dict(figures)
        return [(name, makers[name]) for name in self.figures]


def _positive(path: Any, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"Report settings '{path}': {key} must be a positive number, got {value!r}.")
    return float(value)


def report_settings(known: Sequence[str]) -> ReportSettings:
    """Read and validate the report settings; ``known`` are the report's figure names.

    Raises
    ------
    ConfigError
        One sentence naming the file and the key.
    """
    path = find_file("report.yaml")
    data = read_yaml_file(path, "Report settings") if path is not None else None
    if not isinstance(data, dict):
        raise ConfigError(f"Report settings '{path}' must be a YAML mapping with keys {', '.join(_KEYS)}.")
    bad = [k for k in data if k not in _KEYS]
    if bad:
        raise ConfigError(f"Report settings '{path}': unknown key '{bad[0]}'; valid keys are {', '.join(_KEYS)}.")
    figures = data.get("figures", list(known))
    if not isinstance(figures, list) or any(f not in known for f in figures):
        wrong = figures if not isinstance(figures, list) else next(f for f in figures if f not in known)
        raise ConfigError(f"Report settings '{path}': unknown figure {wrong!r}; choose from {', '.join(known)}.")
    return ReportSettings(dpi=_positive(path, "dpi", data.get("dpi", 130)),
                          font_size=_positive(path, "font_size", data.get("font_size", 9.5)),
                          figures=tuple(dict.fromkeys(figures)))


__all__ = ["ReportSettings", "report_settings"]
