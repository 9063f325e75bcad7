"""The tables the pipeline writes: their columns and pandas dtypes, in order.

Plain names and strings, no pandas: the asset definitions declare their `dagster/column_schema`
from these when the code location loads, so the UI shows each table's columns before (and whatever)
any run records. A graph test pins every table a run writes to its declaration.
"""

from ml_assets.domain.contract import (
    FILE_ERROR,
    FLIGHT_COLUMNS,
    INTEGER_COLUMNS,
    LABEL,
    PARSE_ERRORS,
    PARTITION_COLUMN,
    SOURCE_FILE,
    SOURCE_ROW,
    STRING_COLUMNS,
)

KEY_COLUMNS = ("flight_date", "carrier", "flight", "origin", "sched_dep_time", "tailnum")
CATEGORICAL_FEATURES = ("carrier", "origin", "dest")
WEATHER_FEATURES = (
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
)
PLANE_FEATURES = ("plane_age", "seats", "engines")
SCHEDULE_FEATURES = (
    "month",
    "day_of_week",
    "sched_dep_minute",
    "sched_arr_minute",
    "sched_block_minutes",
    "distance",
)
CONGESTION_FEATURES = (
    "origin_departed",
    "origin_mean_dep_delay",
    "origin_share_delayed",
    "origin_last_hour_departed",
    "origin_last_hour_mean_dep_delay",
    "origin_pending",
    "origin_scheduled_next_2h",
    "carrier_origin_mean_dep_delay",
    "carrier_origin_departed",
    "all_origins_mean_dep_delay",
    "tail_last_dep_delay",
    "dest_landed",
    "dest_landed_mean_arr_delay",
    "dest_landed_mean_en_route_delay",
    "carrier_mean_dep_delay",
)
NUMERIC_FEATURES = SCHEDULE_FEATURES + PLANE_FEATURES + WEATHER_FEATURES + CONGESTION_FEATURES
FEATURE_COLUMNS = CATEGORICAL_FEATURES + NUMERIC_FEATURES
# The feature table's first columns, carried over from the validated table as they are: the
# partition, the flight's key and the categoricals.
FEATURE_LEADING_COLUMNS = tuple(dict.fromkeys((PARTITION_COLUMN, *KEY_COLUMNS, *CATEGORICAL_FEATURES)))
# The validated columns the features are built from: the features step loads only these (the rest
# of a handed-over validated table is freed: ~50 MB of the year's 101 MB).
FEATURE_SOURCE_COLUMNS = (
    *FEATURE_LEADING_COLUMNS,
    "sched_arr_time",
    "distance",
    "dep_delay",
    "arr_delay",
    "air_time",
    LABEL,
)

# Text columns are held as Arrow-backed strings, declared (and recorded) by pandas' name for the
# type, "string". Arrow hands them to Parquet and back without a Python object per cell: on the
# year, encoding a flight table's days took 0.26 s against 0.45 s with Python-held strings, and
# validating it 0.57 s against 0.8 s (parsing, on the workers, costs ~0.1 s more). The year's
# backfill in 8 A/B pairs: median 8.44 -> 7.98 s. Read back as such by the IO manager (`to_pandas`).
TEXT = "string[pyarrow]"

QUARANTINE_REASON = "reason"
QUARANTINE_DETAIL = "detail"


def _flight_dtype(column: str) -> str:
    if column in INTEGER_COLUMNS:
        return "Int64"  # nullable: a bad cell is quarantined, not a reason to refuse the file
    return "string" if column in STRING_COLUMNS else "float64"


# A landing file as parsed: the contract's columns, then where each row came from.
RAW_TYPES = {
    **{column: _flight_dtype(column) for column in FLIGHT_COLUMNS},
    PARSE_ERRORS: "string",
    SOURCE_FILE: "string",
    SOURCE_ROW: "int64",
    PARTITION_COLUMN: "string",
    FILE_ERROR: "string",
}
VALIDATED_TYPES = {**RAW_TYPES, "flight_date": "string", LABEL: "int8"}
QUARANTINE_TYPES = {**RAW_TYPES, QUARANTINE_REASON: "string", QUARANTINE_DETAIL: "string"}
FEATURE_TYPES = {
    PARTITION_COLUMN: "string",
    "flight_date": "string",
    "carrier": "string",
    "flight": "int64",
    "origin": "string",
    "sched_dep_time": "int64",
    "tailnum": "string",
    "dest": "string",
    **dict.fromkeys(NUMERIC_FEATURES, "float64"),
    LABEL: "int8",
}
