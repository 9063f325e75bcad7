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
