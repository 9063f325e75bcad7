"""Leak-free model features per landing day."""

from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from ml_assets import checks, kubernetes
from ml_assets.assets.deployment import champion_profile
from ml_assets.assets.ingestion import planes, weather
from ml_assets.assets.metadata import (
    OWNERS,
    WEATHER_SHA256,
    DataFrame,
    column_types,
    declared_schema,
    describe_partitions,
    recorded_column_types,
)
from ml_assets.domain.contract import weather_file_for_day
from ml_assets.domain.tables import FEATURE_COLUMNS, FEATURE_SOURCE_COLUMNS, FEATURE_TYPES, WEATHER_FEATURES
from ml_assets.partitions import landing_days, single_run
from ml_assets.resources.compute import Compute
from ml_assets.resources.io_manager import COLUMNS
from ml_assets.resources.landing import LandingZone

if TYPE_CHECKING:
    import pandas as pd


def weather_for_days(
    context: dg.AssetExecutionContext, landing: LandingZone, days: list[str]
) -> "tuple[pd.DataFrame, list[str], dict[str, dict]]":
    """The run's days of weather, one landed file per day; the days that have none (logged); and each
    read file's sha256 by day (the weather sensor skips a re-land of the bytes the features read)."""
    import hashlib

    from ml_assets.domain.features import read_weather_files
    from ml_assets.pools import map_threads

    # Only these days' files (a new day's cost must not grow with the years landed), read at once.
    landed = dict(zip(days, map_threads(landing.read_weather, days, landing.read_threads), strict=True))
    missing = [day for day, data in landed.items() if data is None]
    if missing:
        context.log.warning(
            f"no weather file landed for {len(missing)} of {len(days)} days "
            f"(first: {landing.location(weather_file_for_day(missing[0]))}); "
            "their weather features are missing"
        )
    files = [
        (landing.location(weather_file_for_day(d)), data) for d, data in landed.items() if data is not None
    ]
    read = {
        day: {WEATHER_SHA256: hashlib.sha256(data).hexdigest()}
        for day, data in landed.items()
        if data is not None
    }
    return read_weather_files(files), missing, read


class FeaturesConfig(dg.Config):
    # Near the check's 0.95 threshold, a single feature's AUC over 100,000 rows has a standard error
    # of ~0.001 (Hanley-McNeil at the year's label rate); scoring the year's 337,000 rows took 0.3 s.
    leakage_sample_rows: int = Field(
        default=100_000,
        description="Rows (a seeded uniform sample) the leakage check scores each feature on; 0 for all.",
    )
    seed: int = Field(default=0, description="Random seed for the leakage check's sample.")


@dg.asset(
    partitions_def=landing_days,
    backfill_policy=single_run,
    ins={
        "validated_data": dg.AssetIn(dagster_type=DataFrame, metadata={COLUMNS: list(FEATURE_SOURCE_COLUMNS)})
    },
    deps=[weather, planes],
    group_name="features",
    owners=OWNERS,
    kinds={"pandas", "parquet"},
    check_specs=checks.FEATURES_CHECKS,
    code_version="1",
    op_tags=kubernetes.FEATURES,
    dagster_type=DataFrame,
    metadata=declared_schema(FEATURE_TYPES),
    description="Features known 2 h before departure (schedule, plane, weather, congestion), label.",
)
def features(
    context: dg.AssetExecutionContext,
    config: FeaturesConfig,
    validated_data,
    landing: LandingZone,
    compute: Compute,
):
    from ml_assets.domain.features import build_features, leaked_columns, read_reference_table
    from ml_assets.domain.quality import any_present, population_stability, sample_positions, univariate_auc

    days = list(context.partition_keys)
    weather_table, weather_missing, weather_read = weather_for_days(context, landing, days)
    planes_table = read_reference_table(
        "planes", landing.read_reference("planes.csv"), landing.location("planes.csv")
    )
    table = build_features(validated_data, weather_table, planes_table, threads=compute.threads)
    previous_columns = recorded_column_types(context, "features")
    yield dg.Output(
        table,
        metadata={
            **describe_partitions(context, table, per_day=weather_read),
            "feature_count": len(FEATURE_COLUMNS),
            "compute_threads": compute.threads,
            "label_rate": float(table["label"].mean()) if len(table) else 0.0,
            "first_flight_date": str(table["flight_date"].min()) if len(table) else "",
            "last_flight_date": str(table["flight_date"].max()) if len(table) else "",
        },
    )
    scored = sample_positions(len(table), config.leakage_sample_rows, config.seed)
    yield checks.no_leakage(
        leaked_columns(table.columns),
        univariate_auc(table, positions=scored),
        len(table) if scored is None else len(scored),
    )
    with_weather = any_present(table, WEATHER_FEATURES)
    yield checks.weather_joined(
        float(with_weather.mean()) if len(table) else 0.0, len(table), weather_missing, len(days)
    )
    yield checks.column_schema_unchanged(checks.FEATURES, previous_columns, column_types(table))
    reference = champion_profile(context.instance)
    if reference is None:
        yield checks.drift_psi(None, None, len(table))
    else:
        profile, version = reference
        psi = population_stability(profile, table)
        yield checks.drift_psi(psi, f"champion version {version}", len(table))
