"""Atomic local file writes: a reader sees the old version or the new one, never half of one."""

from __future__ import annotations

import ctypes
import functools
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ml_assets.pools import map_threads

# A writer renames its temp file within seconds of making it; one untouched for an hour was left by a
# process killed mid-write (SIGKILL, out of memory, a lost node), and the next write there removes it.
ABANDONED_TEMP_SECONDS = 3600.0
_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")  # mkstemp's eight random characters
# Beside the files, hidden as the temps are: its modification time is the folder's last sweep.
SWEPT_MARKER = ".swept"


def _temp_beside(path: Path) -> tuple[int, str]:
    """A new hidden temp file in `path`'s folder (made if missing): its descriptor and name.
    Readers skip it (`.<name>.<random>.tmp`) until it is renamed to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)


def sweep_abandoned_temps(folder: Path, older_than: float = ABANDONED_TEMP_SECONDS) -> list[str]:
    """Remove the temp files `_temp_beside` made in `folder` that nothing has written to for
    `older_than` seconds (a killed writer's); their names. A write in flight is never that old.

    A folder swept less than `older_than` ago (its `SWEPT_MARKER`'s time) is not listed again: a
    temp abandoned since is removed by the first write after that, within twice `older_than` of
    its last write. Listing it on every write cost a one-day run a scan of every day file of four
    tables (0.02-0.03 s at 16 years of history, the one part of such a run that grew with it)."""
    marker = folder / SWEPT_MARKER
    now = time.time()
    try:
        if marker.stat().st_mtime > now - older_than:
            return []
    except (FileNotFoundError, NotADirectoryError):  # never swept, or no folder yet
        pass
    cutoff = now - older_than
    removed: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):  # nothing written there yet (the write says why)
        return removed
    for entry in entries:
        if not _TEMP_NAME.fullmatch(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
                removed.append(entry.name)
        except FileNotFoundError:  # renamed or removed meanwhile
            continue
    marker.touch()
    return sorted(removed)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    """Linux's syncfs(2) from the C library, or None where there is none."""
    if sys.platform != "linux":
        return None
    return getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)


def sync_filesystems(directories: Sequence[Path]) -> None:
    """Everything written to the filesystems holding `directories` reaches the disk (syncfs(2),
    once per filesystem). Raises OSError on a writeback error (reported since Linux 5.8)."""
    syncfs = _syncfs()
    assert syncfs is not None, "sync_filesystems needs Linux's syncfs"
    by_device = {os.stat(directory).st_dev: directory for directory in directories}
    for directory in by_device.values():
        fd = os.open(directory, os.O_RDONLY)
        try:
            if syncfs(fd) != 0:
                error = ctypes.get_errno()
                raise OSError(error, f"syncfs: {os.strerror(error)}", str(directory))
        finally:
            os.close(fd)


def write_files_atomic(files: Sequence[tuple[Path, bytes]], threads: int = 1) -> list[Path]:
    """Each file as `write_bytes_atomic` writes it (a reader sees the old version or the new one),
    all of them on disk on return; written on `threads` threads.

    On Linux a batch is made durable with one filesystem sync before the files are renamed into
    place and one after, instead of an fsync per file; the renames are then durable too (an fsync
    per file leaves them to the filesystem's next commit). A year's backfill writes 1,460 day
    files: the 1,460 files alone 0.47-0.51 s with an fsync each, 0.27-0.39 s with the two syncs;
    the backfill 0.16 s faster (median of seven alternating pairs, 6.40-6.94 s against 6.48-7.23 s).
    The sync covers the whole filesystem, so other processes' pending writes to it are waited for
    too. Elsewhere, or for one file, each file is fsync'd on its own. A failure, or an interrupt,
    before the renames leaves every file as it was and no temp file.

    First the temp files a killed writer left in the destination folders are removed
    (`sweep_abandoned_temps`); returns their paths."""
    swept = [
        folder / name
        for folder in sorted({path.parent for path, _ in files})
        for name in sweep_abandoned_temps(folder)
    ]
    if len(files) <= 1 or _syncfs() is None:
        for _ in map_threads(lambda file: write_bytes_atomic(*file), files, threads):
            pass
        return swept
    written: list[tuple[str, Path]] = []  # (temp file, its destination), appended as created

    def write_temp(file: tuple[Path, bytes]) -> None:
        path, data = file
        fd, tmp = _temp_beside(path)
        written.append((tmp, path))  # before the write: a failed write's temp is removed too
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)

    try:
        for _ in map_threads(write_temp, files, threads):
            pass
        # Every new version on disk before any replaces an old one.
        sync_filesystems([path.parent for _, path in written])
        while written:
            tmp, path = written[-1]
            os.replace(tmp, path)
            written.pop()
    finally:
        for tmp, _ in written:
            Path(tmp).unlink(missing_ok=True)
    sync_filesystems([path.parent for path, _ in files])
    return swept
