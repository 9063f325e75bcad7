"""Asset checks: specs declared beside their assets, results built from in-memory figures.

The checks run inside the asset's step (check_specs), so they see the data just produced without
reading it back, and a blocking failure stops downstream assets in the same run. Every result
carries the figures and thresholds it was judged on.
"""

import dagster as dg

from ml_assets.assets.metadata import records_table

RAW_DATA = dg.AssetKey("raw_data")
VALIDATED_DATA = dg.AssetKey("validated_data")
FEATURES = dg.AssetKey("features")
TRAINED_MODEL = dg.AssetKey("trained_model")
PRODUCTION_MODEL = dg.AssetKey("production_model")
MODEL_MONITORING = dg.AssetKey("model_monitoring")

QUARANTINE_WARN_SHARE = 0.01
QUARANTINE_ERROR_SHARE = 0.20
LEAKAGE_AUC = 0.95
DRIFT_PSI_WARN = 0.2
WEATHER_JOINED_WARN = 0.9
BRIER_MARGIN = 0.005
SLICE_AUC_MARGIN = 0.02
REPRODUCE_TOLERANCE = 1e-9


def _spec(name: str, asset: dg.AssetKey, description: str, blocking: bool = False) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=asset, description=description, blocking=blocking)


def _schema_spec(asset: dg.AssetKey) -> dg.AssetCheckSpec:
    return _spec(
        "column_schema_unchanged",
        asset,
        "Columns and dtypes as in the asset's previous materialization (WARN on a change).",
    )


RAW_DATA_CHECKS = [
    _spec("files_parse", RAW_DATA, "Every landing file of the run parses under the landing contract."),
    _spec("required_columns_present", RAW_DATA, "Every landing file has the contract's required columns."),
    _spec("row_count_in_band", RAW_DATA, "Each day's rows within ±50% of the trailing 14 days' median."),
    _spec("no_duplicate_files", RAW_DATA, "No two landing files of the run have the same bytes."),
    _schema_spec(RAW_DATA),
]
VALIDATED_DATA_CHECKS = [
    _spec("has_rows", VALIDATED_DATA, "At least one valid row.", blocking=True),
    _spec(
        "required_columns_not_null",
        VALIDATED_DATA,
        "Null rate of every required column of valid rows is zero.",
        blocking=True,
    ),
    _spec(
        "value_ranges",
        VALIDATED_DATA,
        "Valid rows: distance, scheduled hours and minutes in range, date is the partition's day.",
        blocking=True,
    ),
    _spec(
        "unique_flight_key",
        VALIDATED_DATA,
        "(date, carrier, flight, origin, sched_dep_time) is unique.",
        blocking=True,
    ),
    _spec(
        "rows_reconcile",
        VALIDATED_DATA,
        "raw rows = valid rows + quarantined rows, for every partition.",
        blocking=True,
    ),
    _spec(
        "quarantine_share",
        VALIDATED_DATA,
        "Quarantined share per day: WARN above 1%, ERROR (blocking) above 20%.",
        blocking=True,
    ),
    _schema_spec(VALIDATED_DATA),
]
FEATURES_CHECKS = [
    _spec(
        "no_leakage",
        FEATURES,
        "No outcome column, and no feature alone scores ROC AUC >= 0.95 against the label.",
        blocking=True,
    ),
    _spec("drift_psi", FEATURES, "PSI of each feature against the champion's training data: WARN over 0.2."),
    _spec(
        "weather_joined",
        FEATURES,
        "At least 90% of flights have their origin's weather (WARN): a day's weather file missing or short.",
    ),
    _schema_spec(FEATURES),
]
TRAINED_MODEL_CHECKS = [
    _spec(
        "holdout_roc_auc_floor",
        TRAINED_MODEL,
        "Holdout ROC AUC is at least the floor; a weaker model cannot become champion.",
        blocking=True,
    ),
    _spec("calibration_vs_champion", TRAINED_MODEL, "Holdout Brier within 0.005 of the champion's."),
    _spec(
        "origin_slices_vs_champion",
        TRAINED_MODEL,
        "ROC AUC per origin airport within 0.02 of the champion's on the same holdout.",
    ),
]
PRODUCTION_MODEL_CHECKS = [
    _spec(
        "champion_reproduces",
        PRODUCTION_MODEL,
        "The champion's artifact loads and scores its logged holdout sample identically.",
    )
]


MONITORING_CHECKS = [
    _spec(
        "champion_live_quality",
        MODEL_MONITORING,
        "The champion's live ROC AUC and Brier within bounds (WARN; degradation retrains).",
    )
]


def _result(
    asset: dg.AssetKey,
    name: str,
    passed: bool,
    metadata: dict,
    description: str | None = None,
    *,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=name,
        passed=passed,
        metadata=metadata,
        description=description,
        severity=severity,
    )


def _describe_files(rows: list[dict]) -> str | None:
    text = "; ".join(f"{r['file']}: rule {r['rule']} ({r['detail']})" for r in rows[:5])
    return (text + (f"; and {len(rows) - 5} more" if len(rows) > 5 else "")) or None


def column_schema_unchanged(
    asset: dg.AssetKey, previous: dict[str, str] | None, current: dict[str, str]
) -> dg.AssetCheckResult:
    """The run's columns against the asset's previous materialization (any run, any day).

    Not Dagster's `build_column_schema_change_checks`: that compares the latest two events, which
    after a range run are two days of the same run (always equal), and needs the full schema on
    every day's event (a tenth of a year's backfill in serialization)."""
    previous = previous or {}
    added = sorted(set(current) - set(previous)) if previous else []
    removed = sorted(set(previous) - set(current))
    retyped = {
        c: f"{previous[c]} -> {current[c]}"
        for c in sorted(set(previous) & set(current))
        if previous[c] != current[c]
    }
    parts = [
        f"added: {', '.join(added)}" if added else "",
        f"removed: {', '.join(removed)}" if removed else "",
        "; ".join(f"{c}: {change}" for c, change in retyped.items()),
    ]
    return _result(
        asset,
        "column_schema_unchanged",
        not (added or removed or retyped),
        {
            "compared_with": "previous materialization" if previous else "nothing (first materialization)",
            "columns": len(current),
            "added": dg.MetadataValue.json(added),
            "removed": dg.MetadataValue.json(removed),
            "type_changes": dg.MetadataValue.json(retyped),
        },
        "; ".join(p for p in parts if p) or None,
        severity=dg.AssetCheckSeverity.WARN,
    )


# Dagster's builders: checks judged from recorded metadata, with no data read back.


def builder_checks() -> list:
    """A label rate that no longer looks like flight delays warns (the 2013 data runs between
    0.1 and 0.5 a day)."""
    return [
        *dg.build_metadata_bounds_checks(
            assets=[FEATURES], metadata_key="label_rate", min_value=0.02, max_value=0.8
        ),
    ]


# raw_data


def raw_files_parse(rejected: list[dict], files: int) -> dg.AssetCheckResult:
    return _result(
        RAW_DATA,
        "files_parse",
        not rejected,
        {"files": files, "files_rejected": len(rejected), "rejections": dg.MetadataValue.json(rejected[:50])},
        _describe_files(rejected),
    )


def raw_required_columns(rejected: list[dict], files: int) -> dg.AssetCheckResult:
    missing = [r for r in rejected if r["rule"] == "missing_columns"]
    return _result(
        RAW_DATA,
        "required_columns_present",
        not missing,
        {"files": files, "files_missing_columns": dg.MetadataValue.json(missing[:50])},
        _describe_files(missing),
    )


def raw_row_count_band(anomalies: list[dict], judged: int, history_days: int) -> dg.AssetCheckResult:
    return _result(
        RAW_DATA,
        "row_count_in_band",
        not anomalies,
        {
            "days_judged": judged,
            "earlier_days_read": history_days,
            "anomalies": dg.MetadataValue.json(anomalies[:50]),
            "tolerance": 0.5,
        },
        "; ".join(f"{a['day']}: {a['rows']} rows, band {a['band']}" for a in anomalies[:5]) or None,
        severity=dg.AssetCheckSeverity.WARN,
    )


def raw_duplicate_files(files: list[dict]) -> dg.AssetCheckResult:
    first_by_hash: dict[str, str] = {}
    duplicates = []
    for f in files:
        if f["sha256"] in first_by_hash:
            duplicates.append({"file": f["file"], "same_bytes_as": first_by_hash[f["sha256"]]})
        else:
            first_by_hash[f["sha256"]] = f["file"]
    return _result(
        RAW_DATA,
        "no_duplicate_files",
        not duplicates,
        {"duplicates": dg.MetadataValue.json(duplicates[:50])},
        "; ".join(f"{d['file']} has the same bytes as {d['same_bytes_as']}" for d in duplicates[:5]) or None,
        severity=dg.AssetCheckSeverity.WARN,
    )


# validated_data


def has_rows(valid_rows: int) -> dg.AssetCheckResult:
    return _result(VALIDATED_DATA, "has_rows", valid_rows > 0, {"valid_rows": valid_rows})


def required_not_null(null_counts: dict[str, int], rows: int) -> dg.AssetCheckResult:
    rates = {column: n / rows if rows else 0.0 for column, n in null_counts.items()}
    offending = {column: rate for column, rate in rates.items() if rate}
    return _result(
        VALIDATED_DATA,
        "required_columns_not_null",
        not offending,
        {"null_rates": dg.MetadataValue.json(rates)},
        ", ".join(f"{c}: {r:.2%} null" for c, r in offending.items()) or None,
    )


def value_ranges(violations: dict[str, int]) -> dg.AssetCheckResult:
    broken = {rule: n for rule, n in violations.items() if n}
    return _result(
        VALIDATED_DATA,
        "value_ranges",
        not broken,
        {"violations": dg.MetadataValue.json(violations)},
        ", ".join(f"{rule}: {n} rows" for rule, n in broken.items()) or None,
    )


def unique_flight_key(duplicates: int) -> dg.AssetCheckResult:
    return _result(VALIDATED_DATA, "unique_flight_key", duplicates == 0, {"duplicate_keys": duplicates})


def rows_reconcile(per_partition: list[dict]) -> dg.AssetCheckResult:
    broken = [p for p in per_partition if p["raw"] != p["valid"] + p["quarantined"]]
    return _result(
        VALIDATED_DATA,
        "rows_reconcile",
        not broken,
        {
            "partitions": len(per_partition),
            "partitions_not_reconciled": dg.MetadataValue.json(broken[:50]),
            # A range run's per-day counts of the derived tables live here, not on each day's event.
            "rows_by_day": records_table(per_partition),
        },
    )


def quarantine_share(shares: list[dict]) -> dg.AssetCheckResult:
    worst = max(shares, key=lambda s: s["share"], default={"share": 0.0})
    over_warn = [s for s in shares if s["share"] > QUARANTINE_WARN_SHARE]
    over_error = [s for s in shares if s["share"] > QUARANTINE_ERROR_SHARE]
    severity = dg.AssetCheckSeverity.ERROR if over_error else dg.AssetCheckSeverity.WARN
    return _result(
        VALIDATED_DATA,
        "quarantine_share",
        not over_warn,
        {
            "worst_share": float(worst["share"]),
            "warn_above": QUARANTINE_WARN_SHARE,
            "error_above": QUARANTINE_ERROR_SHARE,
            "days_over_warn": dg.MetadataValue.json(over_warn[:50]),
        },
        "; ".join(f"{s['day']}: {s['share']:.1%} quarantined" for s in over_warn[:5]) or None,
        severity=severity,
    )


# features


def no_leakage(
    leaked: list[str], single_feature_auc: dict[str, float], rows_scored: int
) -> dg.AssetCheckResult:
    suspicious = {c: auc for c, auc in single_feature_auc.items() if auc >= LEAKAGE_AUC}
    top = dict(sorted(single_feature_auc.items(), key=lambda kv: -kv[1])[:5])
    return _result(
        FEATURES,
        "no_leakage",
        not leaked and not suspicious,
        {
            "outcome_columns_present": dg.MetadataValue.json(leaked),
            "max_single_feature_auc": max(single_feature_auc.values(), default=0.5),
            "top_single_feature_auc": dg.MetadataValue.json(top),
            "threshold": LEAKAGE_AUC,
            "rows_scored": rows_scored,
        },
        ", ".join(
            [
                *(f"outcome column {c}" for c in leaked),
                *(f"{c} alone AUC {a:.3f}" for c, a in suspicious.items()),
            ]
        )
        or None,
    )


def weather_joined(share: float, rows: int, days_missing: list[str], days: int) -> dg.AssetCheckResult:
    """`share`: flights with any weather reading; `days_missing`: the run's days with no weather file."""
    passed = share >= WEATHER_JOINED_WARN or rows == 0
    return _result(
        FEATURES,
        "weather_joined",
        passed,
        {
            "share_with_weather": share,
            "rows": rows,
            "days_without_weather_file": len(days_missing),
            "first_days_without": dg.MetadataValue.json(days_missing[:10]),
            "days": days,
            "warn_below": WEATHER_JOINED_WARN,
        },
        None
        if passed
        else f"{share:.1%} of {rows} flights have weather; {len(days_missing)} of {days} days lack a file",
        severity=dg.AssetCheckSeverity.WARN,
    )


def drift_psi(psi: dict[str, float] | None, reference: str | None, rows: int) -> dg.AssetCheckResult:
    if psi is None:
        return _result(
            FEATURES,
            "drift_psi",
            True,
            {"reference": "none: no champion yet", "rows": rows},
            "no champion training reference yet",
            severity=dg.AssetCheckSeverity.WARN,
        )
    worst = dict(sorted(psi.items(), key=lambda kv: -kv[1])[:5])
    drifted = {c: v for c, v in psi.items() if v > DRIFT_PSI_WARN}
    return _result(
        FEATURES,
        "drift_psi",
        not drifted,
        {
            "reference": str(reference),
            "rows": rows,
            "max_psi": max(psi.values(), default=0.0),
            "worst_features": dg.MetadataValue.json(worst),
            "warn_above": DRIFT_PSI_WARN,
        },
        ", ".join(f"{c}: PSI {v:.2f}" for c, v in list(drifted.items())[:5]) or None,
        severity=dg.AssetCheckSeverity.WARN,
    )


# trained_model


def holdout_auc_floor(roc_auc: float, floor: float) -> dg.AssetCheckResult:
    return _result(
        TRAINED_MODEL,
        "holdout_roc_auc_floor",
        roc_auc >= floor,
        {"holdout_roc_auc": roc_auc, "floor": floor},
        None if roc_auc >= floor else f"holdout ROC AUC {roc_auc:.4f} is under the floor {floor}",
    )


def calibration_vs_champion(brier: float, champion_brier: float | None) -> dg.AssetCheckResult:
    passed = champion_brier is None or brier <= champion_brier + BRIER_MARGIN
    return _result(
        TRAINED_MODEL,
        "calibration_vs_champion",
        passed,
        {
            "holdout_brier": brier,
            "champion_holdout_brier": champion_brier if champion_brier is not None else float("nan"),
            "margin": BRIER_MARGIN,
        },
        None
        if passed
        else f"Brier {brier:.4f} is worse than the champion's {champion_brier:.4f} + {BRIER_MARGIN}",
        severity=dg.AssetCheckSeverity.WARN,
    )


def origin_slices_vs_champion(
    slices: dict[str, float], champion_slices: dict[str, float] | None
) -> dg.AssetCheckResult:
    worse = {
        origin: {"challenger": auc, "champion": champion_slices[origin]}
        for origin, auc in slices.items()
        if champion_slices and origin in champion_slices and auc < champion_slices[origin] - SLICE_AUC_MARGIN
    }
    return _result(
        TRAINED_MODEL,
        "origin_slices_vs_champion",
        not worse,
        {
            "slice_auc": dg.MetadataValue.json(slices),
            "champion_slice_auc": dg.MetadataValue.json(champion_slices or {}),
            "margin": SLICE_AUC_MARGIN,
        },
        ", ".join(f"{o}: {v['challenger']:.3f} vs champion {v['champion']:.3f}" for o, v in worse.items())
        or None,
        severity=dg.AssetCheckSeverity.WARN,
    )


# production_model


def champion_reproduces(
    max_abs_difference: float | None, rows: int, version: str | None
) -> dg.AssetCheckResult:
    passed = max_abs_difference is not None and max_abs_difference <= REPRODUCE_TOLERANCE
    return _result(
        PRODUCTION_MODEL,
        "champion_reproduces",
        passed,
        {
            "champion_version": str(version),
            "sample_rows": rows,
            "max_abs_difference": float("nan") if max_abs_difference is None else max_abs_difference,
            "tolerance": REPRODUCE_TOLERANCE,
        },
        None if passed else "the champion's artifact does not reproduce its logged holdout predictions",
    )


def champion_live_quality(record: dict) -> dg.AssetCheckResult:
    return _result(
        MODEL_MONITORING,
        "champion_live_quality",
        not record["degraded"],
        {
            "live_roc_auc": record["live_roc_auc"],
            "live_brier": record["live_brier"],
            "max_feature_psi": record["max_feature_psi"],
            "labelled_rows": record["labelled_rows"],
        },
        "; ".join(record["reasons"]) or None,
        severity=dg.AssetCheckSeverity.WARN,
    )
