"""One run per output folder: an exclusive lock on ``DIR/.lock`` held for the whole run.

The lock is ``flock(2)`` on an open file: the kernel releases it when the process ends, however it ends
(SIGKILL, a crash), so a stale lock never blocks a later run.  The lock file's text (the holder's pid and
start time) is informative only.  Forked children (local Dask workers started by ``fork``) close their
copy of the descriptor at once, so the lock lives exactly as long as the process that took it.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Iterator

from ..errors import ConfigError, EnvironmentFailure

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: runs are not locked
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"
_HELD: set[int] = set()


def _close_in_child() -> None:
    for fd in list(_HELD):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


def check_out_dir(out_dir: Path, option: str = "--out") -> None:
    """Refuse, before anything is written, an output path that is a file or lies under one."""
    out = Path(out_dir)
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                what = "is a file" if path == out else f"lies under '{path}', which is a file"
                raise ConfigError(f"{option}: '{out}' {what}, not a directory; choose a directory.")
            return


def make_out_dir(out_dir: Path, option: str = "--out") -> None:
    """``mkdir -p`` with a one-line error for a path that is a file or cannot be written."""
    out = Path(out_dir)
    check_out_dir(out, option)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentFailure(f"{option}: cannot create '{out}' ({exc.strerror}).") from None


@contextlib.contextmanager
def locked_out_dir(out_dir: Path) -> Iterator[None]:
    """Create ``out_dir`` if needed and hold its lock for the block.

    Raises
    ------
    ConfigError
        If another process holds the lock (another ``compare-mm run`` into the same folder), or the path
        is a file.
    EnvironmentFailure
        If the folder cannot be created or written (permissions, a read-only mount).
    """
    out = Path(out_dir)
    make_out_dir(out)
    if fcntl is None:  # pragma: no cover
        yield
        return
    try:
        fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise EnvironmentFailure(f"--out: cannot write to '{out}' ({exc.strerror}).") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
        os.close(fd)
        raise ConfigError(f"--out: '{out}' is in use by another run ({holder}); wait for it to finish or "
                          f"choose another directory.") from None
    _HELD.add(fd)
    try:
        with contextlib.suppress(OSError):  # informative only: a full disk must not stop the lock
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}, started {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
                      .encode(), 0)
        yield
    finally:
        _HELD.discard(fd)
        os.close(fd)  # releases the lock


__all__ = ["LOCK_NAME", "check_out_dir", "locked_out_dir", "make_out_dir"]
