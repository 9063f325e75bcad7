"""Headless operations for `make materialize`.

python -m ml_assets.operations register      register a partition per complete landing file
python -m ml_assets.operations materialize   register, then materialize the whole graph in one run
python -m ml_assets.operations split-weather FILE [--to DIR]
                                             land a many-day weather CSV as weather_YYYY-MM-DD.csv files
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import dagster as dg

from ml_assets.domain.contract import weather_file_for_day
from ml_assets.partitions import landing_days
from ml_assets.resources.environment import environment_name, local_paths, resources_for
from ml_assets.resources.landing import LandingZone


def register_landed_days(instance: dg.DagsterInstance, landing: LandingZone) -> list[str]:
    """Add a partition for each complete, well-named landing file not yet registered; returns them."""
    known = set(instance.get_dynamic_partitions(landing_days.name))
    new = sorted({f.day for f in landing.list_files() if f.day and f.day not in known})
    if new:
        instance.add_dynamic_partitions(landing_days.name, new)
    return new


def materialize_command(partitions: list[str], extra: list[str] | None = None) -> list[str]:
    """The dagster CLI call that materializes every asset over all partitions as a single run."""
    dagster = shutil.which("dagster") or os.path.join(os.path.dirname(sys.executable), "dagster")
    command = [dagster, "asset", "materialize", "-m", "ml_assets.definitions", "--select", "*"]
    return [*command, "--partition-range", f"{partitions[0]}...{partitions[-1]}", *(extra or [])]


def land_weather_by_day(source: Path, landing_dir: Path) -> dict[str, list[str]]:
    """Land a many-day weather CSV as one `weather_YYYY-MM-DD.csv` per day (each `.tmp`, then renamed).

    A day whose file already holds the same bytes is left alone: a rewrite would move its mtime, and
    the weather sensor would re-run that day's features for nothing. A bad source lands nothing."""
    from ml_assets.demo import land
    from ml_assets.domain.features import split_weather_by_day

    by_day = split_weather_by_day(source.read_bytes(), str(source))
    landing_dir.mkdir(parents=True, exist_ok=True)
    outcome: dict[str, list[str]] = {"landed": [], "unchanged": []}
    for day, data in sorted(by_day.items()):
        path = landing_dir / weather_file_for_day(day)
        if path.is_file() and path.read_bytes() == data:
            outcome["unchanged"].append(day)
            continue
        land(path, data)
        outcome["landed"].append(day)
    return outcome


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ml_assets.operations", description=__doc__)
    parser.add_argument("command", choices=["register", "materialize", "split-weather"])
    args, extra = parser.parse_known_args(argv)
    if args.command == "split-weather":
        split = argparse.ArgumentParser(prog="python -m ml_assets.operations split-weather")
        split.add_argument("file", type=Path, help="a weather CSV with rows of any number of days")
        split.add_argument("--to", type=Path, default=None, help="landing dir (default: the local one)")
        options = split.parse_args(extra)
        try:
            outcome = land_weather_by_day(options.file, options.to or Path(local_paths()["landing_dir"]))
        except (OSError, ValueError) as error:
            sys.exit(str(error))
        print(f"landed {len(outcome['landed'])} weather days; {len(outcome['unchanged'])} already landed")
        return
    instance = dg.DagsterInstance.get()
    # The environment's own landing zone, its EnvVar settings resolved as a run would resolve them.
    landing = resources_for(environment_name())["landing"].process_config_and_initialize()
    new = register_landed_days(instance, landing)
    partitions = instance.get_dynamic_partitions(landing_days.name)
    print(f"registered {len(new)} new landing days; {len(partitions)} in all")
    if args.command == "materialize":
        if not partitions:
            sys.exit(f"no landing files in {landing.location('')}: run `python -m ml_assets.demo seed` first")
        command = materialize_command(partitions, extra)
        print(" ".join(command), flush=True)
        os.execv(command[0], command)


if __name__ == "__main__":
    main()
