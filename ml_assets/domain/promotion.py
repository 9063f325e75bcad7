"""The champion decision: a challenger replaces the champion only when it is clearly better."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Model-version tags: the decision ("promoted" or "kept_champion"; a rollback re-tags the version it
# restores "promoted") and the Dagster run whose decision they record. Rollback finds earlier
# champions by the first.
DECISION_TAG = "promotion_decision"
DECISION_RUN_TAG = "promotion_dagster_run_id"


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    challenger_auc: float
    champion_auc: float | None
    margin: float


def decide_promotion(
    challenger_auc: float,
    champion_auc: float | None,
    margin: float,
    challenger_passed_gate: bool,
) -> PromotionDecision:
    """Promote when there is no champion, or the challenger beats it by at least `margin` ROC AUC.

    Both scores must come from the same holdout rows; a challenger that failed its quality gate
    is never promoted.
    """
    if not challenger_passed_gate:
        return PromotionDecision(
            False, "challenger failed its quality gate", challenger_auc, champion_auc, margin
        )
    if champion_auc is None:
        return PromotionDecision(True, "no champion yet", challenger_auc, None, margin)
    gain = challenger_auc - champion_auc
    if gain >= margin:
        return PromotionDecision(
            True,
            f"challenger beats champion by {gain:+.4f} (margin {margin})",
            challenger_auc,
            champion_auc,
            margin,
        )
    return PromotionDecision(
        False, f"challenger gains {gain:+.4f}, under margin {margin}", challenger_auc, champion_auc, margin
    )


def promoted_by_this_run(version_tags: Mapping[str, str], run_id: str) -> bool:
    """For a challenger found already holding 'champion': True when an earlier attempt of run `run_id`
    moved the alias there, so this attempt finishes that decision instead of judging it again.

    The decision tags then name this run, or are missing because the attempt stopped between
    moving the alias and recording why; tags naming another run mean that run promoted it.
    """
    return version_tags.get(DECISION_RUN_TAG, run_id) == run_id


def previous_champion(promoted_versions: list[str], current: str | None) -> str | None:
    """The latest version promoted before `current` (versions compare as numbers), or None."""
    if current is None:
        return None
    earlier = [v for v in promoted_versions if int(v) < int(current)]
    return max(earlier, key=int) if earlier else None
