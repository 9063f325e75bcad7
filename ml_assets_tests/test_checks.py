import dagster as dg

from ml_assets import checks


def share(day: str, raw: int, quarantined: int) -> dict:
    return {
        "day": day,
        "raw": raw,
        "valid": raw - quarantined,
        "quarantined": quarantined,
        "share": quarantined / raw,
    }


def test_quarantine_share_warns_over_1_percent_and_errors_over_20():
    clean = checks.quarantine_share([share("d1", 1000, 10)])
    assert clean.passed is True
    warn = checks.quarantine_share([share("d1", 1000, 10), share("d2", 1000, 50)])
    assert (warn.passed, warn.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert warn.description == "d2: 5.0% quarantined"
    error = checks.quarantine_share([share("d1", 1000, 300)])
    assert (error.passed, error.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert error.metadata["worst_share"].value == 0.3


def test_leakage_names_outcome_columns_and_suspicious_features():
    result = checks.no_leakage(["arr_delay"], {"origin_pending": 0.97, "temp": 0.55}, 5000)
    assert result.passed is False
    assert result.description == "outcome column arr_delay, origin_pending alone AUC 0.970"
    assert result.metadata["rows_scored"].value == 5000
    assert checks.no_leakage([], {"temp": 0.55}, 5000).passed is True


def test_weather_joined_warns_below_ninety_percent():
    short = checks.weather_joined(0.85, 1000, ["2013-01-02"], 3)
    assert (short.passed, short.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert short.description == "85.0% of 1000 flights have weather; 1 of 3 days lack a file"
    assert checks.weather_joined(0.9, 1000, [], 3).passed is True
    assert checks.weather_joined(0.0, 0, [], 1).passed is True  # no flights, nothing to join


def test_champion_comparisons_pass_without_a_champion():
    assert checks.calibration_vs_champion(0.2, None).passed is True
    assert checks.origin_slices_vs_champion({"JFK": 0.7}, None).passed is True
    worse = checks.origin_slices_vs_champion({"JFK": 0.70, "EWR": 0.74}, {"JFK": 0.75, "EWR": 0.74})
    assert worse.passed is False
    assert worse.description == "JFK: 0.700 vs champion 0.750"


def test_duplicate_files_name_both_files():
    files = [
        {"file": "a.csv", "sha256": "x"},
        {"file": "b.csv", "sha256": "x"},
        {"file": "c.csv", "sha256": "y"},
    ]
    result = checks.raw_duplicate_files(files)
    assert result.passed is False
    assert result.description == "b.csv has the same bytes as a.csv"


def test_champion_reproduces_needs_a_champion_and_exact_scores():
    assert checks.champion_reproduces(None, 0, None).passed is False
    assert checks.champion_reproduces(0.0, 200, "3").passed is True
    assert checks.champion_reproduces(1e-3, 200, "3").passed is False


def test_column_schema_unchanged_names_added_removed_and_retyped_columns():
    before = {"landing_day": "object", "dep_delay": "float64", "carrier": "object"}
    same = checks.column_schema_unchanged(checks.FEATURES, before, dict(before))
    assert same.passed is True
    assert same.metadata["compared_with"].value == "previous materialization"
    first = checks.column_schema_unchanged(checks.FEATURES, None, before)
    assert first.passed is True
    assert first.metadata["compared_with"].value == "nothing (first materialization)"
    after = {"landing_day": "object", "dep_delay": "Int64", "seats": "float64"}
    changed = checks.column_schema_unchanged(checks.FEATURES, before, after)
    assert (changed.passed, changed.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert changed.metadata["added"].value == ["seats"]
    assert changed.metadata["removed"].value == ["carrier"]
    assert changed.metadata["type_changes"].value == {"dep_delay": "float64 -> Int64"}
    assert changed.description == "added: seats; removed: carrier; dep_delay: float64 -> Int64"
