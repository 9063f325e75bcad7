"""Model report figures as PNG bytes: ROC curve, calibration curve, feature importances."""

from __future__ import annotations

import io

import numpy as np


def _png(figure) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return buffer.getvalue()


def _figure(width: float = 4.5, height: float = 3.6):
    import matplotlib

    matplotlib.use("Agg")  # steps run without a display
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def roc_curve_png(labels: np.ndarray, probabilities: np.ndarray, auc: float) -> bytes:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, probabilities)
    figure, axis = _figure()
    axis.plot(fpr, tpr, label=f"ROC AUC {auc:.3f}")
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey")
    axis.set(xlabel="false positive rate", ylabel="true positive rate", title="Holdout ROC curve")
    axis.legend(loc="lower right")
    return _png(figure)


def calibration_png(labels: np.ndarray, probabilities: np.ndarray, brier: float) -> bytes:
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(labels, probabilities, n_bins=10, strategy="quantile")
    figure, axis = _figure()
    axis.plot(predicted, observed, marker="o", label=f"Brier {brier:.3f}")
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey")
    axis.set(xlabel="predicted probability", ylabel="observed delay rate", title="Holdout calibration")
    axis.legend(loc="upper left")
    return _png(figure)


def importances_png(importances: dict[str, float], top: int = 15) -> bytes:
    ranked = sorted(importances.items(), key=lambda kv: kv[1])[-top:]
    figure, axis = _figure(5.5, 4.5)
    axis.barh([name for name, _ in ranked], [value for _, value in ranked])
    axis.set(xlabel="drop in holdout ROC AUC when shuffled", title="Permutation importance")
    return _png(figure)
