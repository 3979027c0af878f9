"""Check that two source trees rebuild a finished study's outputs identically: ``compare-mm summarise`` and
``compare-mm report`` run with each tree on its own copy of the same stored rows, then ``summary.csv``,
``tables/``, ``report.md``, ``report.html`` and every figure are compared byte for byte.

Usage: ``python benchmarks/check_rebuild.py DIR BEFORE_TREE AFTER_TREE`` (each tree is put first on
PYTHONPATH); exit status 1 and the differing files listed when anything differs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

OUTPUTS = ("summary.csv", "report.md", "report.html", "tables", "figures")


def _rebuild(src: Path, dst: Path, tree: Path) -> None:
    shutil.copytree(src, dst)
    for name in OUTPUTS:  # nothing left over from an earlier build
        p = dst / name
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=str(tree))
    for cmd in ("summarise", "report"):
        subprocess.run([sys.executable, "-m", "compare_mm", cmd, str(dst)], check=True, env=env,
                       stdout=subprocess.DEVNULL)


def _files(root: Path) -> dict[str, bytes]:
    out = {}
    for name in OUTPUTS:
        p = root / name
        for f in ([p] if p.is_file() else sorted(p.rglob("*")) if p.is_dir() else []):
            if f.is_file():
                out[str(f.relative_to(root))] = f.read_bytes()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", type=Path)
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "before", Path(tmp) / "after"
        _rebuild(args.dir, a, args.before)
        _rebuild(args.dir, b, args.after)
        fa, fb = _files(a), _files(b)
    bad = sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k))
    for k in bad:
        print(f"differs: {k}")
    print(f"{len(fa.keys() | fb.keys()) - len(bad)} files identical, {len(bad)} differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
