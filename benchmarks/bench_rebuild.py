"""Speed of rebuilding a finished study's outputs: ``compare-mm summarise DIR`` and ``compare-mm report DIR``,
each timed as a whole process (start-up and imports included), several runs, medians printed.

The target study is ``studies/oneway_boundary.yaml`` (run it once with ``compare-mm run ... --no-report``);
issue 13 asks for summarise ≤ 2 s and report ≤ 8 s on its stored rows.  The report is written into a
copy of DIR so the original folder is left as it was.

Usage: ``python benchmarks/bench_rebuild.py DIR [--runs N]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _time(cmd: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", type=Path)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "study"
        shutil.copytree(args.dir, work)
        exe = [sys.executable, "-m", "compare_mm"]
        for name in ("summarise", "report"):
            times = _time(exe + [name, str(work)], args.runs)
            print(f"{name:9s} median {statistics.median(times):6.2f} s  (min {min(times):.2f}, max {max(times):.2f}, "
                  f"{args.runs} runs)")


if __name__ == "__main__":
    main()
