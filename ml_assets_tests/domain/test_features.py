import io

import numpy as np
import pandas as pd
import pytest

from ml_assets.demo import demo_data_dir
from ml_assets.domain.contract import OUTCOME_COLUMNS, FileRule
from ml_assets.domain.features import (
    build_features,
    congestion_features,
    leaked_columns,
    prepare_weather,
    read_reference_table,
    read_weather_files,
    split_weather_by_day,
    write_congestion_features,
)
from ml_assets.domain.parsing import LandingFileError, parse_landing_file, rejection_rows
from ml_assets.domain.tables import (
    CONGESTION_FEATURES,
    FEATURE_COLUMNS,
    FEATURE_SOURCE_COLUMNS,
    WEATHER_FEATURES,
)
from ml_assets.domain.validation import validate_flights


@pytest.fixture(scope="module")
def reference():
    weather = read_weather_files([("weather.csv", (demo_data_dir() / "weather.csv").read_bytes())])
    return weather, read_reference_table(
        "planes", (demo_data_dir() / "planes.csv").read_bytes(), "planes.csv"
    )


def test_reference_tables_read_as_pandas_reads_them(reference):
    weather, planes = reference
    for table, name in ((weather, "weather.csv"), (planes, "planes.csv")):
        expected = pd.read_csv(demo_data_dir() / name)[list(table.columns)]
        measured = [c for c in expected.columns if c in WEATHER_FEATURES]
        expected = expected.astype(dict.fromkeys(measured, "float64"))
        pd.testing.assert_frame_equal(table, expected)
    assert len(weather) == 26_115


def test_a_reference_file_without_a_required_column_names_the_file_and_the_column():
    data = b"origin,year,month,day,hour,temp\nEWR,2013,1,1,1,39.0\n"
    rule = r"s3://b/landing/weather.csv: required columns missing: dewp, humid"
    with pytest.raises(ValueError, match=rule):
        read_reference_table("weather", data, "s3://b/landing/weather.csv")


def test_daily_weather_files_read_as_the_whole_file(reference):
    from ml_assets.demo import load_demo_weather

    weather, _ = reference
    by_day = load_demo_weather()
    files = [(f"weather_{day}.csv", data) for day, data in sorted(by_day.items())]
    keys = ["origin", "year", "month", "day", "hour"]

    def in_order(frame):  # the shipped file runs airport by airport, the daily files day by day
        return frame.sort_values(keys, kind="stable").reset_index(drop=True)

    pd.testing.assert_frame_equal(in_order(read_weather_files(files)), in_order(weather))
    # A file written with its columns in another order (and no final newline) joins the rest.
    frame = pd.read_csv(io.BytesIO(by_day["2013-01-02"]), dtype=str, keep_default_na=False)
    reordered = frame[list(reversed(frame.columns))].to_csv(index=False).encode().rstrip(b"\n")
    mixed = read_weather_files([("a.csv", by_day["2013-01-01"]), ("b.csv", reordered)])
    expected = weather[(weather["month"] == 1) & weather["day"].isin([1, 2])].reset_index(drop=True)
    pd.testing.assert_frame_equal(in_order(mixed), in_order(expected))
    # No file at all: an empty table of the same columns, and build_features copes with it.
    empty = read_weather_files([])
    pd.testing.assert_frame_equal(empty, weather.iloc[:0])


def test_a_bad_weather_file_among_many_is_named():
    header = (
        b"origin,year,month,day,hour,temp,dewp,humid,wind_dir,wind_speed,wind_gust,precip,pressure,visib\n"
    )
    good = header + b"EWR,2013,1,1,1,39,26,59,270,10,NA,0,1012,10\n"
    ragged = header + b"EWR,2013,1,2,1,39,26\n"
    with pytest.raises(ValueError, match=r"^landing/weather_2013-01-02.csv: not a readable CSV"):
        read_weather_files(
            [("landing/weather_2013-01-01.csv", good), ("landing/weather_2013-01-02.csv", ragged)]
        )
    no_dewp = b"origin,year,month,day,hour,temp\nEWR,2013,1,3,1,39\n"
    with pytest.raises(ValueError, match=r"^landing/weather_2013-01-03.csv: required columns missing: dewp"):
        read_weather_files(
            [("landing/weather_2013-01-01.csv", good), ("landing/weather_2013-01-03.csv", no_dewp)]
        )


_WEATHER_HEADER = (
    b"origin,year,month,day,hour,temp,dewp,humid,wind_dir,wind_speed,wind_gust,precip,pressure,visib\n"
)


def test_a_many_day_weather_file_splits_into_its_days_text_as_given():
    rows = [
        b"JFK,2013,3,2,0,41.0,NA,60.5,270,10.357,NA,0,1012.5,10",
        b"EWR,2013,3,1,23,39.9,26.1,59.37,,9.2,NA,0.01,1012,10",
        b"LGA,2013,3,2,5,40,26,59,260,8,NA,0,1013,10",
    ]
    by_day = split_weather_by_day(_WEATHER_HEADER + b"\n".join(rows) + b"\n", "weather.csv")
    assert sorted(by_day) == ["2013-03-01", "2013-03-02"]
    assert by_day["2013-03-01"] == _WEATHER_HEADER + rows[1] + b"\n"
    assert by_day["2013-03-02"] == _WEATHER_HEADER + rows[0] + b"\n" + rows[2] + b"\n"
    # Each day's file reads as the same readings the whole file gives for that day.
    whole = read_weather_files([("weather.csv", _WEATHER_HEADER + b"\n".join(rows) + b"\n")])
    day_two = read_weather_files([("weather_2013-03-02.csv", by_day["2013-03-02"])])
    pd.testing.assert_frame_equal(day_two, whole[whole["day"] == 2].reset_index(drop=True))


@pytest.mark.parametrize(
    ("row", "rule"),
    [
        (b"EWR,2013,2,30,1,39,26,59,270,10,NA,0,1012,10", r"row 3: year, month, day must form a date"),
        (b"EWR,2013,13,1,1,39,26,59,270,10,NA,0,1012,10", r"row 3: .*\('2013', '13', '1'\)"),
        (b"EWR,2013,1,2,1,39,26", r"not a readable CSV"),
    ],
)
def test_a_weather_file_that_cannot_be_split_names_the_file_and_the_rule(row, rule):
    good = b"EWR,2013,1,1,1,39,26,59,270,10,NA,0,1012,10\n"
    with pytest.raises(ValueError, match=r"^feeds/weather_2013.csv: " + rule):
        split_weather_by_day(_WEATHER_HEADER + good + row + b"\n", "feeds/weather_2013.csv")


def test_a_days_features_read_only_that_days_weather(reference, valid_day):
    weather, planes = reference
    # Another year of readings (every value different) beside the day's own changes nothing.
    other_year = weather.assign(year=weather["year"] + 1, temp=weather["temp"] + 40.0)
    with_history = pd.concat([weather, other_year], ignore_index=True)
    pd.testing.assert_frame_equal(
        build_features(valid_day, with_history, planes), build_features(valid_day, weather, planes)
    )
    day = prepare_weather(with_history, np.array(["2013-01-15", "2013-01-15"], dtype=object))
    everything = prepare_weather(with_history)
    assert set(day["flight_date"]) == {"2013-01-15"}
    pd.testing.assert_frame_equal(day, everything[everything["flight_date"] == "2013-01-15"])
    assert len(day) == 3 * 24  # three airports, hourly
    # A day with no readings at all gets its weather features as missing, not an error.
    no_weather = build_features(valid_day, weather[weather["day"] != 15], planes)
    assert no_weather["temp"].isna().all()
    assert no_weather["seats"].notna().any()
    # No weather file landed at all: the same, from the empty table of no files.
    pd.testing.assert_frame_equal(build_features(valid_day, read_weather_files([]), planes), no_weather)


@pytest.fixture
def valid_day(day_csv):
    return validate_flights(parse_landing_file(day_csv("2013-01-15"), "f.csv", "2013-01-15").rows).valid


def test_text_columns_stay_arrow_backed_from_parse_to_features(reference, day_csv):
    """Every text column of every table, a refused file's placeholder row included, is TEXT: an
    `object` or Python-held `string` column anywhere would convert each cell on the way to Parquet."""
    day = "2013-01-15"
    parsed = parse_landing_file(day_csv(day), "f.csv", day).rows
    refused = rejection_rows(LandingFileError("g.csv", FileRule.EMPTY_FILE, "the file has no content"), day)
    raw = pd.concat([parsed, refused], ignore_index=True)
    result = validate_flights(raw)
    features = build_features(result.valid, *reference)
    tables = {"raw": raw, "valid": result.valid, "quarantine": result.quarantine, "features": features}
    for name, table in tables.items():
        text = [c for c, t in table.dtypes.items() if t.kind == "O"]
        assert len(text) >= 6, name
        assert {c: table[c].dtype for c in text} == dict.fromkeys(text, pd.StringDtype("pyarrow")), name
    assert len(result.quarantine) == 1  # the placeholder; every row of the real day is valid
    assert len(features) == len(parsed) == 894


def flights(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    base = {
        "flight_date": ["2013-01-15"] * n,
        "origin": ["JFK"] * n,
        "carrier": ["AA"] * n,
        "dest": ["MIA"] * n,
        "tailnum": [f"N{i}" for i in range(n)],
        "arr_delay": [np.nan] * n,
        "air_time": [np.nan] * n,
    }
    base.update(columns)
    return pd.DataFrame(base)


def test_congestion_counts_only_departures_before_the_cutoff():
    # Target flight at 12:00 has cutoff 10:00. Departures at 08:00 (+0), 09:50 (+50 late), 10:00.
    frame = flights(
        sched_dep_time=[800, 900, 1000, 1200],
        dep_delay=[0.0, 50.0, 0.0, 0.0],
    )
    out = congestion_features(frame)
    target = out.iloc[3]
    assert target["origin_departed"] == 2  # 10:00 is not strictly before the cutoff
    assert target["origin_mean_dep_delay"] == pytest.approx(25.0)
    assert target["origin_share_delayed"] == pytest.approx(0.5)
    assert target["origin_last_hour_departed"] == 1  # only the 09:50 departure in 09:00-10:00
    assert target["origin_pending"] == 0
    assert target["origin_scheduled_next_2h"] == 1  # the 10:00 flight
    # The first flight of the day has nothing before its cutoff.
    assert out.iloc[0]["origin_departed"] == 0
    assert np.isnan(out.iloc[0]["origin_mean_dep_delay"])


def test_cancelled_flight_before_cutoff_counts_as_pending():
    frame = flights(sched_dep_time=[700, 1200], dep_delay=[np.nan, 0.0])
    out = congestion_features(frame)
    assert out.iloc[1]["origin_pending"] == 1
    assert out.iloc[1]["origin_departed"] == 0


def test_other_airports_and_days_do_not_mix():
    frame = flights(sched_dep_time=[800, 1200], dep_delay=[30.0, 0.0])
    frame.loc[0, "origin"] = "EWR"
    assert congestion_features(frame).iloc[1]["origin_departed"] == 0
    frame.loc[0, "origin"] = "JFK"
    frame.loc[0, "flight_date"] = "2013-01-14"
    assert congestion_features(frame).iloc[1]["origin_departed"] == 0


def several_days(n_days: int = 7, per_day: int = 60, seed: int = 3) -> pd.DataFrame:
    """Flights over `n_days` dates, day by day, with delays, cancellations, two origins and carriers."""
    rng = np.random.default_rng(seed)
    n = n_days * per_day
    return flights(
        flight_date=np.repeat(pd.date_range("2013-01-01", periods=n_days).strftime("%Y-%m-%d"), per_day),
        origin=rng.choice(["JFK", "EWR"], n),
        carrier=rng.choice(["AA", "UA"], n),
        dest=rng.choice(["MIA", "BOS"], n),
        tailnum=rng.choice(["N1", "N2", "N3", None], n),
        sched_dep_time=rng.integers(5, 23, n) * 100 + rng.integers(0, 60, n),
        dep_delay=np.where(rng.random(n) < 0.05, np.nan, rng.normal(10, 30, n).round()),
        arr_delay=rng.normal(5, 30, n).round(),
        air_time=rng.integers(40, 200, n).astype("float64"),
    )


UNWRITTEN = -123456.5  # no feature's value


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("chunk_days", [1, 3, 6])
def test_congestion_over_chunks_of_days_equals_all_days_at_once(chunk_days, threads):
    frame = several_days()

    def computed(frame: pd.DataFrame, chunk_days: int, threads: int = 1) -> np.ndarray:
        block = np.full((len(CONGESTION_FEATURES), len(frame)), UNWRITTEN)
        into = dict(zip(CONGESTION_FEATURES, block, strict=True))
        write_congestion_features(frame, into, chunk_days, threads=threads)
        return block

    whole = computed(frame, 1000)
    assert np.array_equal(computed(frame, chunk_days, threads), whole, equal_nan=True)
    assert not (whole == UNWRITTEN).any()  # every value written
    assert np.nanmax(whole[CONGESTION_FEATURES.index("origin_departed")]) > 10
    # Rows not day by day (a date's rows apart) are computed together, not cut into chunks.
    shuffled = frame.iloc[np.random.default_rng(5).permutation(len(frame))].reset_index(drop=True)
    assert np.array_equal(computed(shuffled, chunk_days, threads), computed(shuffled, 1000), equal_nan=True)


def test_features_have_no_outcome_columns(valid_day, reference):
    table = build_features(valid_day, *reference)
    assert leaked_columns(table.columns) == []
    assert not set(OUTCOME_COLUMNS) & set(table.columns)
    assert len(table) == len(valid_day)
    assert set(FEATURE_COLUMNS) <= set(table.columns)
    assert table["temp"].notna().mean() > 0.95  # weather joined for nearly every flight
    assert table["seats"].notna().mean() > 0.8  # planes joined where the tail is known


def test_a_flights_own_outcome_never_moves_its_own_features(valid_day, reference):
    """Behavioural leak test: rewrite each flight's own outcome; its feature row must not change."""
    before = build_features(valid_day, *reference)
    rng = np.random.default_rng(7)
    for i in rng.choice(len(valid_day), size=25, replace=False):
        changed = valid_day.copy()
        changed.loc[i, ["dep_delay", "arr_delay", "air_time"]] = [400.0, 420.0, 55.0]
        after = build_features(changed, *reference)
        pd.testing.assert_series_equal(
            before.loc[i, list(FEATURE_COLUMNS)], after.loc[i, list(FEATURE_COLUMNS)], check_names=False
        )


def test_the_features_step_loads_exactly_the_columns_build_features_reads(valid_day, reference):
    """The features asset's input names FEATURE_SOURCE_COLUMNS (the IO manager loads only those):
    they give the same table, and each of them is needed."""
    source = valid_day[list(FEATURE_SOURCE_COLUMNS)]
    pd.testing.assert_frame_equal(build_features(source, *reference), build_features(valid_day, *reference))
    for column in FEATURE_SOURCE_COLUMNS:
        with pytest.raises(KeyError):
            build_features(source.drop(columns=column), *reference)


def test_a_flight_without_a_tail_number_joins_no_plane(valid_day, reference):
    """A null tail number matches nothing, also a planes row whose own tail number is null."""
    weather, planes = reference
    orphan = pd.DataFrame({"tailnum": [None], "year": [1999.0], "seats": [999.0], "engines": [9.0]})
    with_orphan = pd.concat([planes, orphan], ignore_index=True)
    flights_ = valid_day.assign(tailnum=valid_day["tailnum"].where(valid_day.index % 2 == 0))
    table = build_features(flights_, weather, with_orphan)
    assert table["seats"][flights_["tailnum"].isna()].isna().all()
    assert 999.0 not in set(table["seats"])
    known = flights_["tailnum"].notna()
    assert table["seats"][known].notna().mean() > 0.8
    pd.testing.assert_frame_equal(table, build_features(flights_, weather, planes))
