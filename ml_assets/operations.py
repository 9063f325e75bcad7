"""Headless operations for `make materialize`.

python -m ml_assets.operations register      register a partition per complete landing file
python -m ml_assets.operations materialize   register, then materialize the whole graph in one run
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

import dagster as dg

from ml_assets.partitions import landing_days
from ml_assets.resources.environment import environment_name, resources_for
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ml_assets.operations", description=__doc__)
    parser.add_argument("command", choices=["register", "materialize"])
    args, extra = parser.parse_known_args(argv)
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
