"""The training step's MLflow helpers agree with what MLflow itself would record."""

import numpy as np
import pandas as pd
from mlflow.types.utils import _infer_schema

from ml_assets.assets.training import dataset_schema


def test_dataset_schema_matches_mlflows_own_inference():
    frame = pd.DataFrame(
        {
            "carrier": ["UA", "AA", "B6"],
            "distance": [1400.0, 733.0, 1089.0],
            "plane_age": [3.0, np.nan, 12.0],
            "label": np.array([1, 0, 0], dtype="int8"),
            "flights": np.array([5, 6, 7], dtype="int64"),
            "weekend": [True, False, True],
        }
    )
    assert dataset_schema(frame) == _infer_schema(frame)
    assert [c.required for c in dataset_schema(frame).inputs] == [True, True, False, True, True, True]
