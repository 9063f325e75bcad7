"""The landing zone: where daily flight files and reference tables arrive.

`LandingZone` is the interface the assets and the sensor use; `LocalLandingZone` reads a directory,
`ml_assets.resources.s3.S3LandingZone` an S3 prefix. Each keeps its own sensor cursor, because what
"new since the last tick" can cheaply mean differs: modification time on a disk, key order in S3.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from pydantic import Field

from ml_assets.domain.contract import (
    day_from_file_name,
    day_from_weather_file_name,
    file_name_for_day,
    weather_file_for_day,
)

LANDING_FILE_PREFIX = "flights_"
WEATHER_FILE_PREFIX = "weather_"
_DAY_FROM_NAME = {LANDING_FILE_PREFIX: day_from_file_name, WEATHER_FILE_PREFIX: day_from_weather_file_name}
# A file still being written (`*.tmp`, then renamed) or hidden is never read.
IN_PROGRESS_SUFFIX = ".tmp"


@dataclass(frozen=True)
class LandedFile:
    name: str
    day: str | None  # None when the name breaks the contract
    size_bytes: int
    modified_ns: int


def is_landing_file(name: str, prefix: str = LANDING_FILE_PREFIX) -> bool:
    return name.startswith(prefix) and not name.endswith(IN_PROGRESS_SUFFIX) and not name.startswith(".")


def landed_file(
    name: str, size_bytes: int, modified_ns: int, prefix: str = LANDING_FILE_PREFIX
) -> LandedFile:
    return LandedFile(name, _DAY_FROM_NAME[prefix](name), size_bytes, modified_ns)


class LandingZone(dg.ConfigurableResource):
    """What the assets and the landing sensor need of a landing zone."""

    max_file_bytes: int = Field(
        default=64 * 1024 * 1024,
        description="A day's file larger than this is refused unread (a day of NYC flights is ~100 KB).",
    )
    read_threads: int = Field(
        default=4,
        ge=1,
        description="Files of a range read at once (S3 requests wait on the network); 1 for one at a time.",
    )
    parse_processes: int = Field(
        default=1,
        ge=1,
        description="Worker processes raw_data parses a range's files on (forked, on Linux, while the "
        "step's process runs no other Python thread); 1 parses them in the step's own process.",
    )

    def location(self, name: str) -> str:
        """Where a file is, as a user would look for it (a path or an s3:// URL)."""
        raise NotImplementedError

    def list_files(self, prefix: str = LANDING_FILE_PREFIX) -> list[LandedFile]:
        """Every complete landing file (flights, or weather with `WEATHER_FILE_PREFIX`), sorted by name."""
        raise NotImplementedError

    def new_files(
        self, cursor: str | None, prefix: str = LANDING_FILE_PREFIX
    ) -> tuple[list[LandedFile], str | None]:
        """Files landed since `cursor` (oldest first) and the cursor covering them."""
        raise NotImplementedError

    def size_of_day(self, day: str) -> int | None:
        """Bytes of a day's file, or None when it has not landed."""
        raise NotImplementedError

    def sha256_of_day(self, day: str) -> str:
        raise NotImplementedError

    def read_day(self, day: str) -> bytes:
        raise NotImplementedError

    def read_weather(self, day: str) -> bytes | None:
        """The day's weather file (`weather_YYYY-MM-DD.csv`), or None when it has not landed."""
        raise NotImplementedError

    def read_reference(self, name: str) -> bytes:
        """A reference table (planes.csv) beside the daily files."""
        raise NotImplementedError


@dataclass(frozen=True)
class LandingCursor:
    """High-water mark of local files already seen: (modification time, name)."""

    modified_ns: int = 0
    name: str = ""

    @classmethod
    def parse(cls, raw: str | None) -> LandingCursor:
        return cls(**json.loads(raw)) if raw else cls()

    def dump(self) -> str:
        return json.dumps({"modified_ns": self.modified_ns, "name": self.name})

    def is_new(self, landed: LandedFile) -> bool:
        return self.is_before(landed.modified_ns, landed.name)

    def is_before(self, modified_ns: int, name: str) -> bool:
        return (modified_ns, name) > (self.modified_ns, self.name)


def files_after(files: list[LandedFile], cursor: LandingCursor) -> tuple[list[LandedFile], LandingCursor]:
    """Files past the cursor, oldest first, and the cursor that covers them."""
    fresh = sorted((f for f in files if cursor.is_new(f)), key=lambda f: (f.modified_ns, f.name))
    if not fresh:
        return [], cursor
    return fresh, LandingCursor(fresh[-1].modified_ns, fresh[-1].name)


class LocalLandingZone(LandingZone):
    """Landing files in a local directory; `*.tmp` files are still being written and never read."""

    landing_dir: str = Field(
        description="Directory holding flights_YYYY-MM-DD.csv, weather_YYYY-MM-DD.csv and planes.csv."
    )

    def _root(self) -> Path:
        return Path(self.landing_dir)

    def location(self, name: str) -> str:
        return str(self._root() / name)

    def _scan(self, prefix: str, after: LandingCursor) -> list[LandedFile]:
        root = self._root()
        if not root.is_dir():
            return []
        files = []
        with os.scandir(root) as entries:
            for entry in entries:
                if entry.is_file() and is_landing_file(entry.name, prefix):
                    stat = entry.stat()
                    # Seen files are dropped before their names are parsed: a tick's cost is the
                    # stat of each entry, not the bookkeeping of the history.
                    if after.is_before(stat.st_mtime_ns, entry.name):
                        files.append(landed_file(entry.name, stat.st_size, stat.st_mtime_ns, prefix))
        return files

    def list_files(self, prefix: str = LANDING_FILE_PREFIX) -> list[LandedFile]:
        return sorted(self._scan(prefix, LandingCursor()), key=lambda f: f.name)

    def new_files(
        self, cursor: str | None, prefix: str = LANDING_FILE_PREFIX
    ) -> tuple[list[LandedFile], str | None]:
        # A directory listing is one syscall per entry plus a stat; mtime order also catches a
        # day re-landed under its old name.
        after = LandingCursor.parse(cursor)
        fresh, next_cursor = files_after(self._scan(prefix, after), after)
        return fresh, next_cursor.dump() if fresh else cursor

    def size_of_day(self, day: str) -> int | None:
        path = self._root() / file_name_for_day(day)
        return path.stat().st_size if path.is_file() else None

    def sha256_of_day(self, day: str) -> str:
        digest = hashlib.sha256()
        with (self._root() / file_name_for_day(day)).open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    def read_day(self, day: str) -> bytes:
        return (self._root() / file_name_for_day(day)).read_bytes()

    def read_weather(self, day: str) -> bytes | None:
        path = self._root() / weather_file_for_day(day)
        return path.read_bytes() if path.is_file() else None

    def read_reference(self, name: str) -> bytes:
        return (self._root() / name).read_bytes()
