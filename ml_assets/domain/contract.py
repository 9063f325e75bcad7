"""The landing contract: file names, columns, dtypes, rules and reason codes."""

from __future__ import annotations

import re
from enum import StrEnum

# A landing file is one day of flights: flights_YYYY-MM-DD.csv (writers write *.tmp, then rename).
LANDING_FILE_PATTERN = re.compile(r"^flights_(\d{4}-\d{2}-\d{2})\.csv$")
# Its hourly weather lands as weather_YYYY-MM-DD.csv, before or after the flights.
WEATHER_FILE_PATTERN = re.compile(r"^weather_(\d{4}-\d{2}-\d{2})\.csv$")
PARTITION_COLUMN = "landing_day"

INTEGER_COLUMNS = (
    "year",
    "month",
    "day",
    "sched_dep_time",
    "sched_arr_time",
    "flight",
    "hour",
    "minute",
)
FLOAT_COLUMNS = ("dep_time", "dep_delay", "arr_time", "arr_delay", "air_time", "distance")
STRING_COLUMNS = ("carrier", "tailnum", "origin", "dest", "time_hour")
FLIGHT_COLUMNS = (
    "year",
    "month",
    "day",
    "dep_time",
    "sched_dep_time",
    "dep_delay",
    "arr_time",
    "sched_arr_time",
    "arr_delay",
    "carrier",
    "flight",
    "tailnum",
    "origin",
    "dest",
    "air_time",
    "distance",
    "hour",
    "minute",
    "time_hour",
)
REQUIRED_COLUMNS = (
    "year",
    "month",
    "day",
    "sched_dep_time",
    "sched_arr_time",
    "carrier",
    "flight",
    "origin",
    "dest",
    "distance",
)
# Outcomes of the flight itself: label material, never features.
OUTCOME_COLUMNS = ("dep_time", "dep_delay", "arr_time", "arr_delay", "air_time")
# A flight is identified by its scheduled departure on a day.
FLIGHT_KEY = ("flight_date", "carrier", "flight", "origin", "sched_dep_time")

# Lineage columns added by parsing; they travel with each row to the quarantine.
SOURCE_FILE = "_source_file"
SOURCE_ROW = "_source_row"
PARSE_ERRORS = "_parse_errors"
FILE_ERROR = "_file_error"  # set on the one placeholder row of a refused file

LABEL = "label"
DELAY_THRESHOLD_MINUTES = 15


class FileRule(StrEnum):
    """Why a whole landing file was refused."""

    BAD_FILE_NAME = "bad_file_name"
    MISSING_FILE = "missing_file"
    EMPTY_FILE = "empty_file"
    HEADER_ONLY = "header_only"
    NOT_UTF8 = "not_utf8"
    WRONG_DELIMITER = "wrong_delimiter"
    MISSING_COLUMNS = "missing_columns"
    TRUNCATED = "truncated"
    MALFORMED_CSV = "malformed_csv"
    TOO_LARGE = "too_large"


class RowReason(StrEnum):
    """Why a single row was quarantined."""

    FILE_REJECTED = "file_rejected"
    TYPE_ERROR = "type_error"
    MISSING_REQUIRED = "missing_required"
    OUT_OF_RANGE = "out_of_range"
    DATE_MISMATCH = "date_mismatch"
    DUPLICATE_KEY = "duplicate_key"


def day_from_file_name(name: str) -> str | None:
    """The landing day a file name stands for, or None if the name breaks the contract."""
    match = LANDING_FILE_PATTERN.match(name)
    return match.group(1) if match else None


def day_from_weather_file_name(name: str) -> str | None:
    """The day a weather file name stands for, or None if the name breaks the contract."""
    match = WEATHER_FILE_PATTERN.match(name)
    return match.group(1) if match else None


def file_name_for_day(day: str) -> str:
    return f"flights_{day}.csv"


def weather_file_for_day(day: str) -> str:
    """The day's hourly weather readings, landed beside its flights file (before or after it)."""
    return f"weather_{day}.csv"
