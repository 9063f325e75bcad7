"""The landing zone: where daily flight files and reference tables arrive."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from pydantic import Field

from ml_assets.domain.contract import day_from_file_name, file_name_for_day


@dataclass(frozen=True)
class LandedFile:
    name: str
    day: str | None  # None when the name breaks the contract
    size_bytes: int
    modified_ns: int


class LocalLandingZone(dg.ConfigurableResource):
    """Landing files in a local directory; `*.tmp` files are still being written and never read."""

    landing_dir: str = Field(
        description="Directory holding flights_YYYY-MM-DD.csv, weather.csv and planes.csv."
    )
    max_file_bytes: int = Field(
        default=64 * 1024 * 1024,
        description="A day's file larger than this is refused unread (a day of NYC flights is ~100 KB).",
    )

    def _root(self) -> Path:
        return Path(self.landing_dir)

    def location(self, name: str) -> str:
        return str(self._root() / name)

    def list_files(self) -> list[LandedFile]:
        """Complete landing files (no *.tmp, no hidden files), with the day their name stands for."""
        root = self._root()
        if not root.is_dir():
            return []
        files = []
        with os.scandir(root) as entries:
            for entry in entries:
                if not entry.is_file() or entry.name.startswith(".") or entry.name.endswith(".tmp"):
                    continue
                if not entry.name.startswith("flights_"):
                    continue
                stat = entry.stat()
                files.append(
                    LandedFile(entry.name, day_from_file_name(entry.name), stat.st_size, stat.st_mtime_ns)
                )
        return sorted(files, key=lambda f: f.name)

    def size_of_day(self, day: str) -> int | None:
        """Bytes of a day's file, or None when it has not landed."""
        path = self._root() / file_name_for_day(day)
        return path.stat().st_size if path.is_file() else None

    def sha256_of_day(self, day: str) -> str:
        """Content hash of a day's file, read in blocks so a large file costs no memory."""
        digest = hashlib.sha256()
        with (self._root() / file_name_for_day(day)).open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    def read_day(self, day: str) -> bytes:
        return (self._root() / file_name_for_day(day)).read_bytes()

    def read_reference(self, name: str) -> bytes:
        """A reference table (weather.csv, planes.csv) beside the daily files."""
        return (self._root() / name).read_bytes()
