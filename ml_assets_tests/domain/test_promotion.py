import pytest

from ml_assets.domain.promotion import decide_promotion


@pytest.mark.parametrize(
    ("challenger", "champion", "gate", "promote"),
    [
        (0.70, None, True, True),
        (0.75, 0.74, True, True),
        (0.741, 0.74, True, False),  # gain under the 0.002 margin
        (0.70, 0.74, True, False),
        (0.90, None, False, False),  # failed quality gate never promotes
    ],
)
def test_decision(challenger, champion, gate, promote):
    decision = decide_promotion(challenger, champion, margin=0.002, challenger_passed_gate=gate)
    assert decision.promote is promote
    assert decision.challenger_auc == challenger
    assert decision.champion_auc == champion
    assert decision.reason


def test_previous_champion_is_the_latest_promoted_before_the_current():
    from ml_assets.domain.promotion import previous_champion

    assert previous_champion(["1", "3", "10"], "10") == "3"
    assert previous_champion(["1", "3", "10"], "3") == "1"
    assert previous_champion(["1"], "1") is None
    assert previous_champion([], None) is None


@pytest.mark.parametrize(
    ("tags", "finishes"),
    [
        ({"promotion_decision": "promoted", "promotion_dagster_run_id": "run-a"}, True),
        ({}, True),  # the earlier attempt moved the alias and stopped before recording why
        ({"promotion_decision": "promoted", "promotion_dagster_run_id": "run-b"}, False),
    ],
)
def test_only_this_runs_own_earlier_attempt_is_finished(tags, finishes):
    from ml_assets.domain.promotion import promoted_by_this_run

    assert promoted_by_this_run(tags, "run-a") is finishes
