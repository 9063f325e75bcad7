"""Leak-free features: only what is known 2 hours before a flight's scheduled departure."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ml_assets.domain.contract import LABEL, OUTCOME_COLUMNS
from ml_assets.domain.tables import (
    CONGESTION_FEATURES,
    FEATURE_LEADING_COLUMNS,
    FEATURE_TYPES,
    NUMERIC_FEATURES,
    TEXT,
    WEATHER_FEATURES,
)
from ml_assets.pools import map_threads

PREDICTION_LEAD_MINUTES = 120
TAXI_IN_MINUTES = 10

_TIME_OFFSET = 2_000  # keeps shifted minutes positive inside one group's composite key
_GROUP_STRIDE = 10_000
# Flight dates whose congestion features are computed together (about 60,000 flights): their sorts
# and searches stay within the CPU's caches (see `write_congestion_features`).
CONGESTION_CHUNK_DAYS = 64


def hhmm_to_minutes(values: pd.Series) -> np.ndarray:
    numbers = values.astype("float64").to_numpy()
    return (numbers // 100) * 60 + numbers % 100


def _group_ids(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return frame.groupby(columns, sort=False, dropna=False).ngroup().to_numpy(dtype="int64")


def _before_cutoff(
    group: np.ndarray,
    event_time: np.ndarray,
    event_value: np.ndarray,
    event_mask: np.ndarray,
    cutoff: np.ndarray,
    *,
    window: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: count, sum and last value of the group's events strictly before the row's cutoff.

    Vectorised as one sorted composite key (group, time) and binary search, so the cost is
    O(n log n) for the whole frame instead of a Python loop per airport-day.
    """
    keys = group * _GROUP_STRIDE + np.clip(event_time, -_TIME_OFFSET + 1, None) + _TIME_OFFSET
    keys = keys[event_mask]
    values = event_value[event_mask]
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    upper_key = group * _GROUP_STRIDE + np.clip(cutoff, -_TIME_OFFSET + 1, None) + _TIME_OFFSET
    upper = np.searchsorted(keys, upper_key, side="left")
    if window is None:
        lower = np.searchsorted(keys, group * _GROUP_STRIDE, side="left")
    else:
        lower_key = upper_key - window
        lower = np.searchsorted(keys, np.maximum(lower_key, group * _GROUP_STRIDE), side="left")
    count = (upper - lower).astype("float64")
    total = cumulative[upper] - cumulative[lower]
    last = np.where(count > 0, values[np.maximum(upper - 1, 0)] if len(values) else np.nan, np.nan)
    return count, total, last


def _mean(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def write_congestion_features(
    flights: pd.DataFrame,
    into: Mapping[str, np.ndarray],
    chunk_days: int = CONGESTION_CHUNK_DAYS,
    threads: int = 1,
) -> None:
    """Same-day congestion at the origin from flights that departed before each flight's cutoff,
    each of `CONGESTION_FEATURES` written into `into[name]` (float64, one value per flight).

    Every feature counts flights of the same flight date, so days apart give the values all days
    together give: rows that come day by day (as the tables hold them) are computed `chunk_days`
    dates at a time, the chunks on `threads` threads. Over all rows at once, the sorts and binary
    searches outgrew the CPU's caches and the cost per flight grew with the range: 2.85 / 3.28 /
    4.79 us a flight for 1 / 4 / 16 years (25.8 s for 16), by 64 days 2.52 / 2.80 / 2.73 us (14.7
    s). NumPy's sorts and searches release the GIL: the year's chunks on two threads 0.86 -> 0.50 s.
    Rows in any other order are computed together."""
    dates, _ = pd.factorize(flights["flight_date"], use_na_sentinel=False)
    if len(dates) == 0 or (np.diff(dates) < 0).any():  # a date's rows apart: not cut into chunks
        _write_congestion_features(flights, into)
        return
    starts = np.searchsorted(dates, np.arange(0, dates[-1] + 1, max(chunk_days, 1)))
    # Each chunk sliced here, so the threads share no pandas object; each writes its own rows.
    chunks = [
        (flights.iloc[start:stop], {name: column[start:stop] for name, column in into.items()})
        for start, stop in itertools.pairwise([*starts.tolist(), len(dates)])
    ]
    for _ in map_threads(lambda chunk: _write_congestion_features(*chunk), chunks, threads):
        pass


def _write_congestion_features(flights: pd.DataFrame, into: Mapping[str, np.ndarray]) -> None:
    """`write_congestion_features` over `flights` at once. Written column by column as each is
    computed, so only a few columns' temporaries are alive at once: collected first and stacked into
    a frame, they had been 126 MB at the year's peak."""
    sched = hhmm_to_minutes(flights["sched_dep_time"])
    delay = flights["dep_delay"].astype("float64").to_numpy()
    departed = ~np.isnan(delay)
    actual = np.where(departed, sched + np.nan_to_num(delay), np.nan)
    cutoff = sched - PREDICTION_LEAD_MINUTES
    delay0 = np.nan_to_num(delay)
    del delay
    ones = np.ones(len(flights))
    everyone = np.ones(len(flights), dtype=bool)

    origin_day = _group_ids(flights, ["flight_date", "origin"])
    n_dep, sum_delay, _ = _before_cutoff(origin_day, actual, delay0, departed, cutoff)
    into["origin_departed"][:] = n_dep
    into["origin_mean_dep_delay"][:] = _mean(sum_delay, n_dep)
    _, n_delayed, _ = _before_cutoff(origin_day, actual, (delay0 >= 15).astype("float64"), departed, cutoff)
    into["origin_share_delayed"][:] = _mean(n_delayed, n_dep)
    n_hour, sum_hour, _ = _before_cutoff(origin_day, actual, delay0, departed, cutoff, window=60)
    into["origin_last_hour_departed"][:] = n_hour
    into["origin_last_hour_mean_dep_delay"][:] = _mean(sum_hour, n_hour)
    del n_delayed, sum_delay, n_hour, sum_hour
    n_sched_before, _, _ = _before_cutoff(origin_day, sched, ones, everyone, cutoff)
    # Flights due out before the cutoff that had not left by then (late or cancelled).
    into["origin_pending"][:] = n_sched_before - n_dep
    n_sched_to_dep, _, _ = _before_cutoff(origin_day, sched, ones, everyone, sched)
    into["origin_scheduled_next_2h"][:] = n_sched_to_dep - n_sched_before
    del n_dep, n_sched_before, n_sched_to_dep, origin_day, ones, everyone

    n_car, sum_car, _ = _before_cutoff(
        _group_ids(flights, ["flight_date", "origin", "carrier"]), actual, delay0, departed, cutoff
    )
    into["carrier_origin_mean_dep_delay"][:] = _mean(sum_car, n_car)
    into["carrier_origin_departed"][:] = n_car
    del n_car, sum_car
    n_all, sum_all, _ = _before_cutoff(_group_ids(flights, ["flight_date"]), actual, delay0, departed, cutoff)
    into["all_origins_mean_dep_delay"][:] = _mean(sum_all, n_all)
    del n_all, sum_all
    has_tail = flights["tailnum"].notna().to_numpy()
    tail_day = _group_ids(flights, ["flight_date", "tailnum"])
    _, _, tail_last = _before_cutoff(tail_day, actual, delay0, departed & has_tail, cutoff)
    into["tail_last_dep_delay"][:] = np.where(has_tail, tail_last, np.nan)
    del tail_day, tail_last, has_tail
    n_carrier, sum_carrier, _ = _before_cutoff(
        _group_ids(flights, ["flight_date", "carrier"]), actual, delay0, departed, cutoff
    )
    into["carrier_mean_dep_delay"][:] = _mean(sum_carrier, n_carrier)
    del n_carrier, sum_carrier

    # Earlier flights to the same destination that had landed by the cutoff: their delays tell
    # of weather and congestion at the destination (time on the origin's clock, plus taxi-in).
    arr_delay = flights["arr_delay"].astype("float64").to_numpy()
    air_time = flights["air_time"].astype("float64").to_numpy()
    landed = departed & ~np.isnan(arr_delay) & ~np.isnan(air_time)
    landed_at = np.where(landed, actual + np.nan_to_num(air_time) + TAXI_IN_MINUTES, np.nan)
    del air_time, actual
    arr0 = np.nan_to_num(arr_delay)
    del arr_delay
    dest_day = _group_ids(flights, ["flight_date", "dest"])
    n_landed, sum_arr, _ = _before_cutoff(dest_day, landed_at, arr0, landed, cutoff)
    into["dest_landed"][:] = n_landed
    into["dest_landed_mean_arr_delay"][:] = _mean(sum_arr, n_landed)
    del sum_arr
    _, sum_en_route, _ = _before_cutoff(dest_day, landed_at, arr0 - delay0, landed, cutoff)
    into["dest_landed_mean_en_route_delay"][:] = _mean(sum_en_route, n_landed)


def congestion_features(flights: pd.DataFrame) -> pd.DataFrame:
    """`CONGESTION_FEATURES` as a frame on `flights`' index (see `write_congestion_features`)."""
    block = np.empty((len(CONGESTION_FEATURES), len(flights)))
    write_congestion_features(flights, dict(zip(CONGESTION_FEATURES, block, strict=True)))
    return pd.DataFrame(block.T, columns=list(CONGESTION_FEATURES), index=flights.index, copy=False)


# The columns the features read from each reference table beside the daily flights files.
REFERENCE_COLUMNS = {
    "weather": ("origin", "year", "month", "day", "hour", *WEATHER_FEATURES),
    "planes": ("tailnum", "year", "seats", "engines"),
}


def _header(data: bytes) -> list[str]:
    import csv

    first_line = data.split(b"\n", 1)[0].decode("utf-8-sig").rstrip("\r")
    return next(csv.reader([first_line]), [])


def read_reference_table(kind: str, data: bytes, source: str) -> pd.DataFrame:
    """The used columns (`REFERENCE_COLUMNS[kind]`) of a reference CSV; a missing one is an error
    naming `source`. Arrow's reader, only the columns used, types given to the parser (against
    pandas' `engine="pyarrow"` and its cast after parsing: 0.15 s against 0.24 s for 39 MB)."""
    import io

    import pyarrow as pa
    from pyarrow import csv

    columns = REFERENCE_COLUMNS[kind]
    missing = [column for column in columns if column not in _header(data)]
    if missing:
        raise ValueError(f"{source}: required columns missing: {', '.join(missing)}")
    options = csv.ConvertOptions(
        include_columns=list(columns),
        column_types={column: pa.float64() for column in WEATHER_FEATURES if column in columns},
        strings_can_be_null=True,  # as pandas reads them: an "NA" origin or tail is missing
    )
    try:
        return csv.read_csv(io.BytesIO(data), convert_options=options).to_pandas()
    except pa.ArrowInvalid as error:
        raise ValueError(f"{source}: not a readable CSV: {error}") from error


def read_weather_files(files: list[tuple[str, bytes]]) -> pd.DataFrame:
    """The weather readings of several landed files (source, bytes), e.g. one per day, as one table.

    Files sharing a header are parsed as one buffer: Arrow's reader costs ~1 ms a call, so a year
    of daily files parses in one call, not 365. An error names the file it is in."""
    if not files:
        keys = {"origin": "object", "year": "int64", "month": "int64", "day": "int64", "hour": "int64"}
        return pd.DataFrame(
            {c: pd.Series(dtype=keys.get(c, "float64")) for c in REFERENCE_COLUMNS["weather"]}
        )
    by_header: dict[tuple[str, ...], list[tuple[str, bytes]]] = {}
    for source, data in files:
        by_header.setdefault(tuple(_header(data)), []).append((source, data))
    tables = []
    for group in by_header.values():
        first_source = group[0][0]
        bodies = [data if data.endswith(b"\n") else data + b"\n" for _, data in group]
        joined = b"".join([bodies[0], *(body.split(b"\n", 1)[1] for body in bodies[1:])])
        try:
            tables.append(read_reference_table("weather", joined, first_source))
        except ValueError:
            for source, data in group:  # find the file at fault, and name it
                read_reference_table("weather", data, source)
            raise
    return tables[0] if len(tables) == 1 else pd.concat(tables, ignore_index=True)


def split_weather_by_day(data: bytes, source: str) -> dict[str, bytes]:
    """A weather CSV covering many days as one CSV per day ('YYYY-MM-DD' -> bytes), rows and text as
    given: what turns an hourly feed (or an old single `weather.csv`) into the landing contract's
    `weather_YYYY-MM-DD.csv` files. A missing column, an unreadable file or a row whose `year`,
    `month`, `day` are not a date is an error naming `source` (and the row), and nothing is split."""
    import io

    read_reference_table("weather", data, source)  # the columns and types features will need
    text = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    day = text["year"] + "-" + text["month"].str.zfill(2) + "-" + text["day"].str.zfill(2)
    parsed = pd.to_datetime(day, format="%Y-%m-%d", errors="coerce")
    bad = parsed.isna() | (parsed.dt.strftime("%Y-%m-%d") != day)
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise ValueError(
            f"{source}: row {row + 2}: year, month, day must form a date "
            f"({text.at[row, 'year']!r}, {text.at[row, 'month']!r}, {text.at[row, 'day']!r})"
        )
    return {d: rows.to_csv(index=False).encode() for d, rows in text.groupby(day)}


def prepare_weather(
    weather: pd.DataFrame, flight_dates: np.ndarray | pd.api.extensions.ExtensionArray | None = None
) -> pd.DataFrame:
    """Hourly origin weather keyed by (origin, flight_date, hour); duplicates keep the first reading.

    With `flight_dates` ('YYYY-MM-DD'), only those days' readings: a day's features cost that day's
    weather, not every year's (the date formatting below is the expensive part)."""
    frame = weather
    if flight_dates is not None:
        days = pd.Series(flight_dates, dtype=TEXT).drop_duplicates()
        wanted = pd.to_numeric(days.str.replace("-", "", regex=False), errors="coerce").dropna()
        day_number = frame["year"] * 10_000 + frame["month"] * 100 + frame["day"]
        frame = frame[day_number.isin(wanted)]
    frame = frame.copy()
    dates = pd.to_datetime(frame[["year", "month", "day"]].astype("int64"), errors="coerce").dt.strftime(
        "%Y-%m-%d"
    )
    frame["flight_date"] = dates
    frame["sched_hour"] = frame["hour"].astype("int64")
    columns = ["origin", "flight_date", "sched_hour", *WEATHER_FEATURES]
    return frame[columns].drop_duplicates(["origin", "flight_date", "sched_hour"])


def prepare_planes(planes: pd.DataFrame) -> pd.DataFrame:
    frame = planes[["tailnum", "year", "seats", "engines"]].rename(columns={"year": "plane_year"})
    return frame.drop_duplicates("tailnum")


def _positions(table: pd.DataFrame, keys: list[str], rows: list) -> np.ndarray:
    """Each row's position in `table` (unique by `keys`), -1 where it has none; a null key matches none."""
    if len(keys) == 1:
        # Arrow's set lookup: pandas' index of text made a Python string per row (60 ms and 21-34 MB
        # against 11 ms and 1 MB for the year's tail numbers).
        import pyarrow as pa
        import pyarrow.compute as pc

        wanted = pa.array(rows[0], from_pandas=True)
        known = pa.array(table[keys[0]], from_pandas=True).cast(wanted.type)
        return pc.fill_null(pc.index_in(wanted, value_set=known, skip_nulls=True), -1).to_numpy()
    return pd.MultiIndex.from_frame(table[keys]).get_indexer(pd.MultiIndex.from_arrays(rows))


def _lookup(table: pd.DataFrame, keys: list[str], rows: list, into: Mapping[str, np.ndarray]) -> None:
    """A left join by position: each row's matching value of `table[column]` written into
    `into[column]` (NaN where none), for each column `into` names.

    One indexer per join instead of DataFrame.merge, which copies every column of the left side;
    written in place, the joined columns are never held beside the block they go to."""
    position = _positions(table, keys, rows)
    for column, target in into.items():
        # No match is position -1: it wraps to the NaN appended last (also when the table is empty).
        values = np.append(table[column].to_numpy(dtype="float64", na_value=np.nan), np.nan)
        np.take(values, position, out=target, mode="wrap")


def build_features(
    flights: pd.DataFrame, weather: pd.DataFrame, planes: pd.DataFrame, threads: int = 1
) -> pd.DataFrame:
    """One row per valid flight: keys, leak-free features and the label; no outcome columns
    (the congestion features computed on `threads` threads).

    The numeric features are written one by one into a single float block that the frame then
    takes without a copy: built from separate columns, pandas stacked them into its block, a second
    copy of them at once (89 MB for the year; without it the backfill's peak fell from 743-748 to
    710-714 MB and this function from 1.19-1.29 to 0.97-1.15 s). Merge-then-copy held four copies.
    The joins and the congestion features write into the block too, as each column is computed:
    returned first, they had been held beside it (the year's peak over the start +203-271 -> +163-181 MB)."""
    numbers = np.empty((len(NUMERIC_FEATURES), len(flights)))
    feature = dict(zip(NUMERIC_FEATURES, numbers, strict=True))  # each a row of the block, a view
    # Each distinct day parsed once (the year's 365, not its 337,000 rows: 8 ms against 45-65 ms and 24 MB).
    day_of_row, days = pd.factorize(flights["flight_date"], use_na_sentinel=False)
    calendar = pd.to_datetime(pd.Series(days, dtype=object)).dt
    sched_dep = hhmm_to_minutes(flights["sched_dep_time"])
    sched_arr = hhmm_to_minutes(flights["sched_arr_time"])
    # The lookups' keys stay Arrow-backed: no Python string per row (40 MB for the year, kept by the
    # allocator after the join).
    _lookup(
        prepare_weather(weather, days),
        ["origin", "flight_date", "sched_hour"],
        [
            flights["origin"].astype(TEXT).array,
            flights["flight_date"].astype(TEXT).array,
            (sched_dep // 60).astype("int64"),
        ],
        {name: feature[name] for name in WEATHER_FEATURES},
    )
    # The plane's year of manufacture goes where its age will be, then becomes the age.
    plane_columns = {
        "plane_year": feature["plane_age"],
        "seats": feature["seats"],
        "engines": feature["engines"],
    }
    _lookup(prepare_planes(planes), ["tailnum"], [flights["tailnum"].astype(TEXT).array], plane_columns)
    feature["month"][:] = calendar.month.to_numpy(dtype="float64", na_value=np.nan)[day_of_row]
    feature["day_of_week"][:] = calendar.dayofweek.to_numpy(dtype="float64", na_value=np.nan)[day_of_row]
    feature["sched_dep_minute"][:] = sched_dep
    feature["sched_arr_minute"][:] = sched_arr
    feature["sched_block_minutes"][:] = (sched_arr - sched_dep) % 1440
    feature["distance"][:] = flights["distance"].to_numpy(dtype="float64")
    year = calendar.year.to_numpy(dtype="float64", na_value=np.nan)[day_of_row]
    np.subtract(year, feature["plane_age"], out=feature["plane_age"])
    del year, day_of_row
    write_congestion_features(flights, feature, threads=threads)
    out = pd.DataFrame(numbers.T, columns=list(NUMERIC_FEATURES), copy=False)
    # Before the numbers, typed as the table declares them.
    for position, name in enumerate(FEATURE_LEADING_COLUMNS):
        declared = FEATURE_TYPES[name]
        out.insert(position, name, flights[name].astype(TEXT if declared == "string" else declared).array)
    out[LABEL] = flights[LABEL].astype("int8").to_numpy()
    return out


def leaked_columns(columns: list[str] | pd.Index) -> list[str]:
    """Outcome columns of the flight itself that must never reach the feature table."""
    return [column for column in columns if column in OUTCOME_COLUMNS]
