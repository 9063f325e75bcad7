"""How the champion does on days whose outcomes are now known."""

import numpy as np
import pandas as pd


def live_quality(labelled: pd.DataFrame, label: str, probability: str) -> dict[str, float]:
    """ROC AUC, Brier and the predicted vs observed delay rate; NaN where a day mix has one class."""
    from sklearn.metrics import brier_score_loss, roc_auc_score

    labels = labelled[label].to_numpy()
    scores = labelled[probability].to_numpy()
    if len(labels) == 0 or len(np.unique(labels)) < 2:
        return {
            "roc_auc": float("nan"),
            "brier": float("nan"),
            "predicted_rate": float("nan"),
            "observed_rate": float("nan"),
        }
    return {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "brier": float(brier_score_loss(labels, scores)),
        "predicted_rate": float(scores.mean()),
        "observed_rate": float(labels.mean()),
    }
