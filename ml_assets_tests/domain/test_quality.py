import numpy as np
import pandas as pd
import pytest

from ml_assets.domain.contract import PARTITION_COLUMN
from ml_assets.domain.quality import (
    any_present,
    date_not_partition_day,
    duplicate_keys,
    feature_profile,
    mann_whitney_auc,
    population_stability,
    range_violations,
    row_count_anomalies,
    sample_positions,
    slice_auc,
    univariate_auc,
)
from ml_assets.domain.tables import NUMERIC_FEATURES


def test_row_count_band_judges_against_the_trailing_days():
    history = {f"2013-01-{d:02d}": 900 for d in range(1, 15)}
    counts = {"2013-01-15": 880, "2013-01-16": 300, "2013-01-17": 1500}
    anomalies = row_count_anomalies(counts, history)
    assert [a["day"] for a in anomalies] == ["2013-01-16", "2013-01-17"]
    assert anomalies[0]["band"] == [450, 1350]


def test_row_count_band_needs_three_earlier_days():
    assert row_count_anomalies({"2013-01-03": 5}, {"2013-01-01": 900, "2013-01-02": 900}) == []
    # Days of the same run count as history for the days after them.
    run = {"2013-01-01": 900, "2013-01-02": 910, "2013-01-03": 890, "2013-01-04": 100}
    assert [a["day"] for a in row_count_anomalies(run, {})] == ["2013-01-04"]


@pytest.mark.parametrize("history_days", [0, 150])
def test_row_count_band_is_the_median_of_the_window_latest_earlier_days(history_days):
    rng = np.random.default_rng(7)
    days = pd.date_range("2013-01-01", periods=400).strftime("%Y-%m-%d")
    # Gaps (days never landed) and varied counts, so that which days form the window matters.
    known = {day: int(n) for day, n in zip(days, rng.integers(100, 1000, len(days)), strict=True)}
    known = {day: n for day, n in known.items() if rng.random() > 0.2}
    history = dict(list(known.items())[:history_days])
    counts = dict(list(known.items())[history_days:])
    expected = []
    for day, rows in counts.items():
        earlier = [n for d, n in known.items() if d < day][-10:]
        if len(earlier) >= 3 and not 0.7 <= rows / float(np.median(earlier)) <= 1.3:
            expected.append(day)
    anomalies = row_count_anomalies(counts, history, window=10, tolerance=0.3)
    assert [a["day"] for a in anomalies] == expected
    assert 20 < len(expected) < len(counts) - 20


def test_row_count_band_forgets_days_older_than_its_window():
    history = {f"2013-01-{d:02d}": 100 for d in range(1, 15)}
    history |= {f"2013-01-{d:02d}": 900 for d in range(15, 29)}
    assert row_count_anomalies({"2013-01-29": 900}, history) == []
    assert [a["day"] for a in row_count_anomalies({"2013-01-29": 100}, history)] == ["2013-01-29"]
    # Over all 28 days the median is 500: both are outside 250..750.
    assert [a["day"] for a in row_count_anomalies({"2013-01-29": 900}, history, window=28)] == ["2013-01-29"]


def frame_with(rng, n=4000, shift=0.0) -> pd.DataFrame:
    frame = pd.DataFrame({c: rng.normal(size=n) for c in NUMERIC_FEATURES})
    frame["origin_mean_dep_delay"] += shift
    frame["label"] = (rng.random(n) < 0.3).astype("int8")
    return frame


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    profile = feature_profile(frame_with(rng))
    same = population_stability(profile, frame_with(rng))
    shifted = population_stability(profile, frame_with(rng, shift=1.5))
    assert max(same.values()) < 0.05
    assert shifted["origin_mean_dep_delay"] > 0.5
    assert max(v for k, v in shifted.items() if k != "origin_mean_dep_delay") < 0.05


def test_a_profile_bins_its_own_rows_as_psi_bins_later_ones():
    rng = np.random.default_rng(4)
    frame = frame_with(rng, n=3000)
    frame["temp"] = rng.integers(0, 5, size=len(frame)).astype("float64")  # ties on the edges
    frame.loc[::7, "temp"] = np.nan
    frame["dewp"] = pd.array(rng.integers(0, 40, size=len(frame)), dtype="Int64")  # nullable integers
    frame.loc[::5, "dewp"] = pd.NA
    profile = feature_profile(frame)
    # Against itself, every feature's drift is nil: its shares are the bins PSI counts later rows in.
    assert max(population_stability(profile, frame).values()) == pytest.approx(0.0, abs=1e-12)
    assert profile["temp"]["edges"] == [0.0, 1.0, 2.0, 3.0, 4.0]
    temp = frame["temp"].to_numpy()
    expected = [np.mean(temp < 0), *(np.mean(temp == v) for v in range(5)), np.mean(np.isnan(temp))]
    assert profile["temp"]["shares"] == pytest.approx(expected)
    assert profile["dewp"]["shares"][-1] == pytest.approx(frame["dewp"].isna().mean())


def test_psi_counts_missing_values_as_their_own_bin():
    rng = np.random.default_rng(1)
    reference = frame_with(rng)
    profile = feature_profile(reference)
    later = frame_with(rng)
    later.loc[: len(later) // 2, "temp"] = np.nan
    assert population_stability(profile, later)["temp"] > 0.3


def test_univariate_auc_flags_a_feature_that_is_the_label():
    rng = np.random.default_rng(2)
    frame = frame_with(rng)
    frame["origin_pending"] = frame["label"] * 10.0  # a leak: the label itself
    scores = univariate_auc(frame)
    assert scores["origin_pending"] == pytest.approx(1.0)
    assert scores["temp"] < 0.6
    assert univariate_auc(frame.assign(label=0)) == {}


def test_a_seeded_sample_scores_as_every_row_does_and_still_catches_a_leak():
    rng = np.random.default_rng(3)
    frame = frame_with(rng, n=60_000)
    frame["temp"] += frame["label"] * 0.5  # a real but modest signal, AUC ~0.64
    frame["origin_pending"] = frame["label"] * 10.0 + rng.normal(size=len(frame))  # a leak, AUC ~1
    frame.loc[::7, "temp"] = np.nan
    picked = sample_positions(len(frame), 10_000, seed=1)
    assert len(picked) == len(np.unique(picked)) == 10_000
    assert (np.diff(picked) > 0).all()
    assert np.array_equal(picked, sample_positions(len(frame), 10_000, seed=1))
    assert not np.array_equal(picked, sample_positions(len(frame), 10_000, seed=2))
    assert sample_positions(len(frame), 60_000, seed=1) is None
    assert sample_positions(len(frame), 0, seed=1) is None
    every_row, sampled = univariate_auc(frame), univariate_auc(frame, positions=picked)
    assert every_row["temp"] == pytest.approx(0.64, abs=0.02)
    assert {c: round(a, 2) for c, a in sampled.items()} == pytest.approx(every_row, abs=0.02)
    assert sampled["origin_pending"] > 0.99
    assert univariate_auc(frame, positions=np.arange(100)) == univariate_auc(frame.iloc[:100])


def test_slice_auc_skips_single_label_slices():
    labels = np.array([0, 1, 0, 1, 1, 1])
    scores = np.array([0.1, 0.9, 0.2, 0.8, 0.5, 0.6])
    slices = np.array(["JFK", "JFK", "EWR", "EWR", "LGA", "LGA"])
    assert slice_auc(labels, scores, slices) == {"EWR": 1.0, "JFK": 1.0}


def test_duplicate_keys_counts_repeats():
    frame = pd.DataFrame(
        {
            "flight_date": ["d"] * 3,
            "carrier": ["AA"] * 3,
            "flight": [1, 1, 2],
            "origin": ["JFK"] * 3,
            "sched_dep_time": [600] * 3,
        }
    )
    assert duplicate_keys(frame) == 1


def test_mann_whitney_auc_equals_scikit_learns_roc_auc_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 5000)
    scores = np.round(rng.normal(size=5000) + labels * 0.4, 1)  # rounded: many ties
    assert mann_whitney_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert mann_whitney_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert mann_whitney_auc(np.array([0, 1, 0, 1]), np.full(4, 2.0)) == 0.5  # all tied
    unsorted = rng.normal(size=20_000)  # every score distinct, in no order
    many = (rng.random(20_000) < 0.2 + 0.1 * (unsorted > 0)).astype("int8")
    assert mann_whitney_auc(many, unsorted) == pytest.approx(roc_auc_score(many, unsorted), abs=1e-12)


def test_range_violations_count_each_rule_and_dates_off_their_landing_day():
    rows = pd.DataFrame(
        {
            "year": pd.array([2013, 2013, 2013, 2013, None, 2013], dtype="Int64"),
            "month": pd.array([1, 1, 2, 1, 1, 12], dtype="Int64"),
            "day": pd.array([1, 2, 1, 1, 1, 31], dtype="Int64"),
            "distance": [100.0, 100.0, 100.0, 0.0, 100.0, 20_000.0],
            "sched_dep_time": pd.array([530, 2460, 1275, 900, 900, 900], dtype="Int64"),
            PARTITION_COLUMN: pd.array(
                ["2013-01-01", "2013-01-02", "2013-01-01", "2013-01-01", "2013-01-01", "2013-12-31"],
                dtype="string",
            ),
        }
    )
    assert range_violations(rows) == {
        "distance": 2,  # 0 and 20,000 miles
        "sched_dep_hour": 0,  # 24:60 is hour 24, allowed by the contract
        "sched_dep_minute": 2,  # :60 and :75
        "date_is_partition_day": 2,  # 2013-02-01 landed on 2013-01-01; a row without a year
    }


def test_dates_off_their_landing_day_match_comparing_formatted_dates(landed_month):
    from ml_assets.domain.contract import file_name_for_day
    from ml_assets.domain.parsing import parse_landing_file
    from ml_assets.domain.validation import flight_dates, validate_flights

    days = ["2013-01-02", "2013-01-03"]
    rows = pd.concat(
        [parse_landing_file((landed_month / file_name_for_day(d)).read_bytes(), d, d).rows for d in days],
        ignore_index=True,
    )
    valid = validate_flights(rows).valid
    assert date_not_partition_day(valid) == 0
    # Move every other row's landing day: each moved row is off its day, and a bad key matches none.
    moved = valid.assign(**{PARTITION_COLUMN: valid[PARTITION_COLUMN].astype(object)})
    moved.loc[::2, PARTITION_COLUMN] = "2013-01-03"
    moved.loc[1:7:2, PARTITION_COLUMN] = "not-a-day"
    moved.loc[9, PARTITION_COLUMN] = None
    moved[PARTITION_COLUMN] = moved[PARTITION_COLUMN].astype("string")
    by_text = int((flight_dates(moved) != moved[PARTITION_COLUMN]).fillna(True).sum())
    assert date_not_partition_day(moved) == by_text > len(valid) // 4
    no_days = valid.assign(**{PARTITION_COLUMN: pd.array([None] * len(valid), dtype="string")})
    assert date_not_partition_day(no_days) == len(valid)
    assert date_not_partition_day(valid.head(0)) == 0


def test_any_present_is_a_row_with_any_value_in_the_columns():
    frame = pd.DataFrame(
        {"a": [1.0, np.nan, np.nan, np.nan], "b": [np.nan, 2.0, np.nan, np.nan], "c": [0.0, 0.0, 0.0, np.nan]}
    )
    assert any_present(frame, ("a", "b")).tolist() == [True, True, False, False]
    assert any_present(frame, ("a", "b", "c")).tolist() == [True, True, True, False]
    assert any_present(frame.head(0), ("a",)).tolist() == []
