"""Page geometry of report figures: readable in a 1,100 px browser column and on a printed page.

Every figure is drawn :data:`FIG_WIDTH_IN` wide (the printable width of Letter and A4 with the print CSS's
margins), so the fonts of :func:`compare_mm.report.style.setup_rc` (≥ 9 pt) print at their size; the PNG is
written at :data:`DPI` (≤ :data:`MAX_WIDTH_PX` pixels wide, the HTML column), and the HTML shows it at
:data:`SCREEN_PX_PER_IN` CSS px per figure inch on screen and at its physical size in print (the figure
inch size is in the PNG's pHYs chunk; :func:`png_info` reads it back).  Grids wrap at
:data:`MAX_COLS` panels a row, and a figure taller than :data:`MAX_HEIGHT_IN` (about one 1366 × 768 laptop
screen, and well under a printed page) is split into parts (``NAME.png``, ``NAME-2.png``, …).
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Sequence, TypeVar

T = TypeVar("T")

#: drawn width of every figure, inches (Letter 8.5 in and A4 8.27 in minus the print CSS's 0.6 in margins)
FIG_WIDTH_IN = 7.0
#: tallest figure (part), inches: ~670 CSS px on screen, leaving a 768 px laptop screen room to scroll
MAX_HEIGHT_IN = 5.6
#: the HTML column, CSS px; no figure is written wider
MAX_WIDTH_PX = 1100
#: PNG resolution (``dpi`` of config/report.yaml): FIG_WIDTH_IN × DPI ≈ MAX_WIDTH_PX
DPI = 157
#: on-screen scale of figures in the HTML (CSS px per figure inch); print uses the physical size
SCREEN_PX_PER_IN = 120
#: panels per row of a facet grid
MAX_COLS = 3
#: room under the panels for the figure legend (one row of entries), inches
LEGEND_IN = 0.55


def grid_shape(n: int, max_cols: int = MAX_COLS) -> tuple[int, int]:
    """(rows, cols) of a wrapped facet grid of ``n`` panels, at most ``max_cols`` a row."""
    n = max(n, 1)
    rows = math.ceil(n / max_cols)
    cols = math.ceil(n / rows)  # balanced: 4 panels as 2 × 2, not 3 + 1
    return rows, cols


#: width one condition needs along a panel's x axis (its label turned 90°, its dodged points apart), inches
COND_IN = 0.22
#: width of a panel's y axis (tick labels and label), inches
YAXIS_IN = 0.8


def columns_for(n_conditions: int, n_panels: int, max_cols: int = MAX_COLS) -> int:
    """Panels a row of condition panels: as many as leave each of ``n_conditions`` :data:`COND_IN` along
    every panel's x axis (a 16-condition grid gets one panel a row, 4 conditions three), at most
    ``max_cols`` and ``n_panels``, at least one."""
    fit = int(FIG_WIDTH_IN // (max(n_conditions, 1) * COND_IN + YAXIS_IN))
    return max(1, min(max_cols, n_panels, fit))


def condition_grid(n_conditions: int, n_panels: int) -> tuple[int, int]:
    """(rows, cols) of a wrapped grid of ``n_panels`` condition panels (:func:`columns_for`, balanced)."""
    return grid_shape(n_panels, columns_for(n_conditions, n_panels))


def panel_height(cols: int) -> float:
    """Height of one panel in a grid of ``cols`` columns at :data:`FIG_WIDTH_IN` (aspect ~ 4:3, capped)."""
    return min(2.4, max(1.7, FIG_WIDTH_IN / cols * 0.72))


def tick_rotation(n_ticks: int) -> tuple[int, str]:
    """(rotation, horizontal alignment) of condition labels along an x axis of ``n_ticks`` conditions in a
    panel about half the figure wide."""
    if n_ticks <= 3:
        return 0, "center"
    if n_ticks <= 8:
        return 35, "right"
    return 90, "center"


def rows_per_part(row_height: float, n_rows: int, fixed: float) -> int:
    """How many panel rows of ``row_height`` fit with ``fixed`` inches (legend, tick labels) in
    :data:`MAX_HEIGHT_IN`; at least one."""
    fit = int((MAX_HEIGHT_IN - fixed) // row_height)
    return max(1, min(n_rows, fit))


def split_even(items: Sequence[T], per_part: int) -> list[list[T]]:
    """``items`` in consecutive parts of at most ``per_part``, as even in size as possible."""
    items = list(items)
    if not items:
        return [[]]
    parts = math.ceil(len(items) / max(1, per_part))
    size = math.ceil(len(items) / parts)
    return [items[i:i + size] for i in range(0, len(items), size)]


def part_path(path: Path, index: int) -> Path:
    """File of part ``index`` (0-based) of a figure: ``NAME.png``, ``NAME-2.png``, …"""
    return path if index == 0 else path.with_name(f"{path.stem}-{index + 1}{path.suffix}")


def figure_name(path: Path) -> str:
    """The figure a PNG belongs to: ``NAME`` for ``NAME.png`` and for its parts ``NAME-2.png``, …"""
    import re

    return re.sub(r"-\d+$", "", Path(path).stem)


def png_info(path: Path) -> tuple[int, int, float | None]:
    """(width px, height px, pixels per inch or None) of a PNG, from its IHDR and pHYs chunks."""
    data = Path(path).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG file")
    width, height = struct.unpack(">II", data[16:24])
    ppi = None
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"pHYs":
            px, _py, unit = struct.unpack(">IIB", data[pos + 8:pos + 17])
            if unit == 1:  # pixels per metre
                ppi = px * 0.0254
            break
        if kind == b"IDAT":
            break
        pos += 12 + length
    return width, height, ppi


__all__ = ["COND_IN", "DPI", "FIG_WIDTH_IN", "YAXIS_IN", "columns_for", "condition_grid", "LEGEND_IN", "MAX_COLS", "MAX_HEIGHT_IN", "MAX_WIDTH_PX", "SCREEN_PX_PER_IN",
           "figure_name", "grid_shape", "panel_height", "part_path", "png_info", "rows_per_part", "split_even", "tick_rotation"]
