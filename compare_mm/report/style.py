"""Shared look of every report figure: one colour per fit, mathtext symbols for parameters and keys.

Colours are assigned from a fixed palette in the order fits appear in the study's config, so the same fit
has the same colour in every figure of a report (**contract**).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from typing import Any, Iterable

import matplotlib

matplotlib.use("Agg")  # reports are written headless; never open a window

import matplotlib.pyplot as plt  # noqa: E402

from . import layout  # noqa: E402

#: colour-blind-safe palette (Okabe & Ito 2008), then tab10 for studies with many fits
PALETTE: tuple[str, ...] = (
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
)
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")

#: canonical study parameter → mathtext label
PARAM_LABELS: dict[str, str] = {
    "mu": r"$\mu$",
    "beta0": r"$\beta_0$",
    "beta1": r"$\beta_1$",
    "sigma_a2": r"$\sigma_A^2$",
    "sigma_b2": r"$\sigma_B^2$",
    "sigma_ab2": r"$\sigma_{AB}^2$",
    "trt2": r"$\alpha_2 - \alpha_1$",
    "trt3": r"$\alpha_3 - \alpha_1$",
    "rho": r"$\rho$",
    "sigma_e2": r"$\sigma_\varepsilon^2$",
    "sigma_a": r"$\sigma_A$",
    "sigma_b": r"$\sigma_B$",
    "sigma_e": r"$\sigma_\varepsilon$",
}

#: grid key → short mathtext label used on axes and facet titles
KEY_LABELS: dict[str, str] = {
    "groups": "$a$",
    "per_group": "$n$",
    "sigma_a2": r"$\sigma_A^2$",
    "sigma_b2": r"$\sigma_B^2$",
    "sigma_ab2": r"$\sigma_{AB}^2$",
    "sigma_e2": r"$\sigma_\varepsilon^2$",
    "rho": r"$\rho$",
    "mu": r"$\mu$",
    "beta0": r"$\beta_0$",
    "beta1": r"$\beta_1$",
}

#: plain-text (HTML/Markdown) names of parameters
PARAM_TEXT: dict[str, str] = {
    "mu": "μ", "beta0": "β₀", "beta1": "β₁", "sigma_a2": "σ_A²", "sigma_b2": "σ_B²", "rho": "ρ",
    "sigma_e2": "σ_ε²", "sigma_ab2": "σ_AB²", "trt2": "α₂ − α₁", "trt3": "α₃ − α₁",
}


def param_label(name: str) -> str:
    """Mathtext label of a parameter (falls back to the name itself)."""
    return PARAM_LABELS.get(name, name.replace("_", r"\_"))


def key_label(name: str) -> str:
    """Mathtext label of a grid key (falls back to the key)."""
    return KEY_LABELS.get(name, name.replace("_", " "))


def param_text(name: str) -> str:
    """Unicode label of a parameter for tables."""
    return PARAM_TEXT.get(name, name)


class FitStyle:
    """Colour and marker of every fit, keyed by fit name, fixed for a whole report."""

    def __init__(self, fits: Iterable[str]):
        self.order: list[str] = []
        for f in fits:
            if f not in self.order:
                self.order.append(str(f))
        self._colour = {f: PALETTE[i % len(PALETTE)] for i, f in enumerate(self.order)}
        self._marker = {f: MARKERS[i % len(MARKERS)] for i, f in enumerate(self.order)}

    def colour(self, fit: str) -> str:
        """The fit's colour (a new fit gets the next free colour)."""
        if fit not in self._colour:
            self.order.append(fit)
            i = len(self.order) - 1
            self._colour[fit] = PALETTE[i % len(PALETTE)]
            self._marker[fit] = MARKERS[i % len(MARKERS)]
        return self._colour[fit]

    def marker(self, fit: str) -> str:
        """The fit's marker."""
        self.colour(fit)
        return self._marker[fit]

    def sort(self, fits: Iterable[str]) -> list[str]:
        """Fits in report order."""
        fits = list(dict.fromkeys(str(f) for f in fits))
        for f in fits:
            self.colour(f)
        return [f for f in self.order if f in fits]


def setup_rc() -> dict:
    """Matplotlib rc settings used for every report figure (readable on a laptop and in print)."""
    from .layout import DPI  # the page geometry (layout.py): 7 in wide, ≤ 1,100 px

    return {  # every font ≥ 9 pt at the figure's drawn size, which is its printed size
        "figure.dpi": 110,
        "savefig.dpi": DPI,
        "font.size": 9.5,
        "axes.titlesize": 10,
        "axes.labelsize": 10,
        "legend.fontsize": 9,
        "xtick.labelsize": 9,
        "ytick.labelsize": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.25,
        "mathtext.fontset": "dejavusans",
    }


#: parsed mathtext expressions remembered while a report is drawn
MATHTEXT_CACHE = 1024


@contextlib.contextmanager
def shared_mathtext_parses(size: int = MATHTEXT_CACHE):
    """Inside the block every matplotlib mathtext parser shares one cache of parsed expressions.

    matplotlib caches a parse (``MathTextParser._parse_cached``: expression, dpi, font and rendering flags)
    per parser object, and every Agg renderer has its own parser: a figure laid out at ``figure.dpi``,
    measured at the PNG's resolution and then drawn into the cropped canvas parses each mathtext label
    three times (the condition labels on every x axis are mathtext: 366 parses for 114 distinct ones in the
    boundary study's report).  The parse depends on the parser only through its output type (its other
    state is class-level), so one cache keyed by the output type and the same arguments gives the same
    objects: every figure is drawn exactly as before.  Nothing is changed when matplotlib's parser has
    another form (another version); the original method is restored on leaving."""
    from matplotlib.mathtext import MathTextParser

    cached = MathTextParser.__dict__.get("_parse_cached")
    inner = getattr(cached, "__wrapped__", None)
    expected = ["self", "s", "dpi", "prop", "antialiased", "load_glyph_flags"]
    if inner is None or list(inspect.signature(inner).parameters) != expected \
            or set(vars(MathTextParser("path"))) != {"_output_type"}:
        yield
        return
    parsers: dict[str, Any] = {}

    @functools.lru_cache(size)
    def parse(output_type, s, dpi, prop, antialiased, load_glyph_flags):
        return inner(parsers[output_type], s, dpi, prop, antialiased, load_glyph_flags)

    def _parse_cached(self, s, dpi, prop, antialiased, load_glyph_flags):
        parsers.setdefault(self._output_type, self)
        return parse(self._output_type, s, dpi, prop, antialiased, load_glyph_flags)

    MathTextParser._parse_cached = _parse_cached
    try:
        yield
    finally:
        MathTextParser._parse_cached = cached


def legend_below(fig: "plt.Figure", handles: dict | None, ncol: int) -> None:
    """One figure-level legend under the panels, with room reserved for it (then ``tight_layout``).

    ``handles=None`` collects every labelled artist of every panel, first label wins."""
    if handles is None:
        handles = {}
        for ax in fig.axes:
            for h, label in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(label, h)
    if not handles:
        fig.tight_layout()
        return
    ncol = max(1, min(ncol, len(handles), int(fig.get_figwidth() / 2.1)))  # entries are up to ~2 in wide
    legend = fig.legend(list(handles.values()), list(handles.keys()), loc="lower center", ncol=ncol,
                        frameon=False, bbox_to_anchor=(0.5, 0.0))
    # the room reserved is the legend's drawn height; tight_layout's pad (~0.15 in) and the legend's border
    # pad (~0.07 in) are the gap (an estimate of 0.24 in a row had left 0.3–0.5 in of white space between
    # the tick labels and a four-row legend)
    reserve = legend.get_window_extent(fig.canvas.get_renderer()).height / fig.dpi
    # the callers size their figures for a legend of layout.LEGEND_IN; a taller one grows the figure
    # instead of squeezing the panels (two rows of pair panels had shrunk from 1.45 in to 0.9 in a row and
    # their y labels ran into each other), within the height a figure part may have, and a shorter one
    # shrinks it: the panels keep the height they were sized for, with no white space under them
    height = fig.get_figheight()
    grow = min(reserve - layout.LEGEND_IN, max(0.0, layout.MAX_HEIGHT_IN + 0.6 - height))
    if grow != 0.0:
        height += grow
        fig.set_figheight(height)
    fig.tight_layout(rect=(0, min(0.4, reserve / height), 1, 1))


def save(fig: "plt.Figure", path) -> None:
    """Save a figure as PNG and close it.

    The saved area is the figure's tight bounding box plus a small margin, so no label, legend or marker
    poking out of the layout is cut at the edge; the resolution is lowered if that box is wider than the
    page (or ``dpi`` in config/report.yaml is higher), so the PNG is never wider than :data:`compare_mm.report.layout.MAX_WIDTH_PX`."""
    from .layout import MAX_WIDTH_PX

    pad = 0.06
    try:
        box = fig.get_tightbbox(fig.canvas.get_renderer()).padded(pad)
    except Exception:  # noqa: BLE001 — a backend without a renderer: the nominal size, matplotlib's box
        box = None
    width = box.width if box is not None else fig.get_figwidth() + 2 * pad
    rc_dpi = plt.rcParams["savefig.dpi"]   # matplotlib's default outside the report's rc settings: "figure"
    dpi = min(float(fig.dpi if rc_dpi == "figure" else rc_dpi), (MAX_WIDTH_PX - 2) / max(width, 1e-6))
    # the box just measured is the saved area ("tight" would lay the figure out and measure it once more)
    fig.savefig(path, format="png", dpi=dpi, bbox_inches=box if box is not None else "tight", pad_inches=pad)
    plt.close(fig)
