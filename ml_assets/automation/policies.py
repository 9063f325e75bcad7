"""Freshness policies and automation conditions: what keeps each asset fresh, in one place."""

import os
from dataclasses import dataclass
from datetime import timedelta

import dagster as dg

REFERENCE_TABLES = dg.AssetSelection.assets("weather", "planes")
# Tag on the landing sensor's runs: each already takes its day from raw_data to features.
LANDING_FILE_TAG = "ml_assets/landing_file"


@dataclass(frozen=True)
class AutomationSettings:
    """Windows and cron a user would choose; each overridable by an environment variable."""

    retrain_cron: str = "0 3 * * 1"  # weekly, Monday 03:00 UTC
    features_warn: timedelta = timedelta(hours=26)
    features_fail: timedelta = timedelta(hours=50)
    model_warn: timedelta = timedelta(days=7)
    model_fail: timedelta = timedelta(days=8)
    # How often the automation sensor evaluates the conditions; each link of a chain of requests
    # (new challenger, its explanation, each day's predictions, monitoring) waits for the next tick.
    automation_interval_seconds: int = 30

    @classmethod
    def from_env(cls) -> "AutomationSettings":
        """Read when Dagster loads the code location, never at import."""

        def minutes(name: str, default: timedelta) -> timedelta:
            value = os.environ.get(name)
            return timedelta(minutes=float(value)) if value else default

        defaults = cls()
        return cls(
            retrain_cron=os.environ.get("ML_ASSETS_RETRAIN_CRON", defaults.retrain_cron),
            features_warn=minutes("ML_ASSETS_FEATURES_WARN_MINUTES", defaults.features_warn),
            features_fail=minutes("ML_ASSETS_FEATURES_FAIL_MINUTES", defaults.features_fail),
            model_warn=minutes("ML_ASSETS_MODEL_WARN_MINUTES", defaults.model_warn),
            model_fail=minutes("ML_ASSETS_MODEL_FAIL_MINUTES", defaults.model_fail),
            automation_interval_seconds=int(
                os.environ.get("ML_ASSETS_AUTOMATION_INTERVAL_SECONDS", defaults.automation_interval_seconds)
            ),
        )


def follows_new_data() -> dg.AutomationCondition:
    """Follow an upstream update made outside the landing sensor's runs (those already carry the
    day through validated_data and features in one run), once upstream blocking checks passed.

    "Outside" is judged by the run that last updated the dependency, not by the updates since the
    previous tick: that window could miss an update stored mid-tick and treat a sensor run's raw_data
    as made elsewhere (seen once: a duplicate validated_data run beside the sensor's own)."""
    updated_elsewhere = dg.AutomationCondition.newly_updated() & ~dg.AutomationCondition.executed_with_tags(
        tag_keys={LANDING_FILE_TAG}
    )
    return (
        dg.AutomationCondition.any_deps_match(updated_elsewhere).since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing().ignore(REFERENCE_TABLES)
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
    ).with_label("follows new data once upstream blocking checks pass")


def refresh_when_stale() -> dg.AutomationCondition:
    """Once per staleness episode: the moment freshness turns WARN or FAIL is remembered until a run
    is requested or the asset updates, and no request is made while a run of it is in progress.
    The freshness state lags a finished run, so a condition on the state itself would ask twice."""
    stale = dg.AutomationCondition.freshness_warned() | dg.AutomationCondition.freshness_failed()
    return (
        stale.newly_true().since_last_handled()
        & ~dg.AutomationCondition.in_progress()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.any_deps_missing().ignore(REFERENCE_TABLES)
    ).with_label("retrain once per staleness episode")


def follows_new_challenger() -> dg.AutomationCondition:
    """Re-run the champion decision when a new challenger lands, only if its blocking checks passed;
    new feature partitions alone do not re-decide."""
    challenger = dg.AssetSelection.assets("trained_model")
    return (
        dg.AutomationCondition.any_deps_updated().allow(challenger).since_last_handled()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & dg.AutomationCondition.all_deps_blocking_checks_passed().allow(challenger)
    ).with_label("follows a new challenger that passed its blocking checks")


def explains_new_challenger() -> dg.AutomationCondition:
    """Explain each new challenger once, passed or failed its checks (a failed one is the one to read);
    new feature partitions alone do not."""
    challenger = dg.AssetSelection.assets("trained_model")
    return (
        dg.AutomationCondition.any_deps_updated().allow(challenger).since_last_handled()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("explains each new challenger")


def serves_the_champion() -> dg.AutomationCondition:
    """Score a day as soon as its features land (by any run) and again when the champion changes."""
    return (
        dg.AutomationCondition.any_deps_updated().since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
    ).with_label("scores new days with the current champion")


def conditions() -> dict[str, dg.AutomationCondition]:
    return {
        "predictions": serves_the_champion(),
        "model_monitoring": serves_the_champion(),
        "validated_data": follows_new_data(),
        "quarantine": follows_new_data(),
        "features": follows_new_data(),
        "trained_model": refresh_when_stale(),
        "production_model": follows_new_challenger(),
        "feature_importance": explains_new_challenger(),
    }


def freshness_policies(settings: AutomationSettings) -> dict[str, dg.FreshnessPolicy]:
    model = dg.FreshnessPolicy.time_window(fail_window=settings.model_fail, warn_window=settings.model_warn)
    return {
        "features": dg.FreshnessPolicy.time_window(
            fail_window=settings.features_fail, warn_window=settings.features_warn
        ),
        "trained_model": model,
        "production_model": model,
    }


def apply_automation(definitions: dg.Definitions, settings: AutomationSettings) -> dg.Definitions:
    """Attach each asset's condition and freshness policy (settings are read at load time)."""
    by_key = conditions()
    policies = freshness_policies(settings)

    def attach(spec: dg.AssetSpec) -> dg.AssetSpec:
        name = spec.key.to_user_string()
        return spec.replace_attributes(
            automation_condition=by_key.get(name, spec.automation_condition),
            freshness_policy=policies.get(name, spec.freshness_policy),
        )

    return definitions.map_asset_specs(func=attach)


def automation_sensor(settings: AutomationSettings) -> dg.AutomationConditionSensorDefinition:
    # Dagster's default automation sensor starts STOPPED: this one runs on a fresh `dagster dev`.
    return dg.AutomationConditionSensorDefinition(
        "automation",
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=settings.automation_interval_seconds,
        description="Evaluates the assets' automation conditions (new data, staleness, new challenger).",
    )


def retrain_schedule(settings: AutomationSettings, job) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="retrain_schedule",
        job=job,
        cron_schedule=settings.retrain_cron,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Retrain the challenger and re-run the champion decision on a fixed cadence.",
    )
