from importlib.metadata import version

import numpy as np
import pandas as pd
import pytest

from ml_assets.domain.contract import LABEL
from ml_assets.domain.tables import CATEGORICAL_FEATURES, FEATURE_COLUMNS, NUMERIC_FEATURES
from ml_assets.domain.training import (
    ModelParams,
    evaluate,
    fit_model,
    model_inputs,
    model_requirements,
    permutation_importances,
    score,
    select_window,
    table_digest,
    time_split,
)


def synthetic_features(days: int = 30, per_day: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = days * per_day
    frame = pd.DataFrame({column: rng.normal(size=n) for column in NUMERIC_FEATURES})
    for column in CATEGORICAL_FEATURES:
        frame[column] = rng.choice(["A", "B", "C"], size=n)
    frame["flight_date"] = np.repeat(pd.date_range("2013-01-01", periods=days).strftime("%Y-%m-%d"), per_day)
    signal = 1.5 * frame["origin_mean_dep_delay"] + (frame["carrier"] == "A")
    frame["label"] = (signal + rng.normal(scale=0.7, size=n) > 0.8).astype("int8")
    return frame


def test_time_split_holds_out_the_last_days():
    frame = synthetic_features(days=10, per_day=5)
    split = time_split(frame, holdout_days=3)
    assert split.holdout_days == ("2013-01-08", "2013-01-10")
    assert split.train_days == ("2013-01-01", "2013-01-07")
    assert split.train["flight_date"].max() < split.holdout["flight_date"].min()
    assert len(split.train) + len(split.holdout) == len(frame)


def test_time_split_slices_dated_rows_and_masks_shuffled_ones():
    frame = synthetic_features(days=10, per_day=5).astype({"flight_date": "string[pyarrow]"})
    ordered = time_split(frame, holdout_days=3)
    # In date order: the same rows as a mask gives, as views of the frame's memory (no copy).
    is_holdout = frame["flight_date"] >= "2013-01-08"
    pd.testing.assert_frame_equal(ordered.train, frame[~is_holdout])
    pd.testing.assert_frame_equal(ordered.holdout, frame[is_holdout])
    assert np.shares_memory(ordered.train["temp"].to_numpy(), frame["temp"].to_numpy())
    # Out of date order: each side still holds exactly its days' rows, in the frame's order.
    shuffled = frame.sample(frac=1.0, random_state=1)
    split = time_split(shuffled, holdout_days=3)
    assert split.holdout_days == ordered.holdout_days
    pd.testing.assert_frame_equal(split.holdout, shuffled[shuffled["flight_date"] >= "2013-01-08"])
    pd.testing.assert_frame_equal(split.train, shuffled[shuffled["flight_date"] < "2013-01-08"])


def test_time_split_keeps_one_training_day_and_refuses_one_day():
    frame = synthetic_features(days=3, per_day=5)
    assert time_split(frame, holdout_days=60).train_days == ("2013-01-01", "2013-01-01")
    assert time_split(frame, holdout_days=60, max_holdout_fraction=0.25).holdout_days == (
        "2013-01-03",
        "2013-01-03",
    )
    year = synthetic_features(days=365, per_day=1)
    assert len(time_split(year, holdout_days=60, max_holdout_fraction=0.25).holdout) == 60
    assert len(time_split(year.head(40), holdout_days=60, max_holdout_fraction=0.25).holdout) == 10
    with pytest.raises(ValueError, match="at least 2 days"):
        time_split(synthetic_features(days=1, per_day=5), holdout_days=1)


def test_window_keeps_the_most_recent_days():
    frame = synthetic_features(days=10, per_day=5)
    assert sorted(select_window(frame, 4)["flight_date"].unique()) == [
        "2013-01-07",
        "2013-01-08",
        "2013-01-09",
        "2013-01-10",
    ]
    assert len(select_window(frame, 0)) == len(frame)


def test_model_learns_signal_and_is_reproducible_from_its_seed():
    split = time_split(synthetic_features(), holdout_days=5)
    params = ModelParams(max_iter=60, seed=3)
    first = score(fit_model(split.train, params), split.holdout)
    second = score(fit_model(split.train, params), split.holdout)
    np.testing.assert_array_equal(first, second)
    metrics = evaluate(split.holdout["label"], first)
    assert metrics["roc_auc"] > 0.85
    assert 0 < metrics["brier"] < 0.25


def test_model_scores_unseen_categories():
    split = time_split(synthetic_features(), holdout_days=5)
    model = fit_model(split.train, ModelParams(max_iter=20))
    unseen = split.holdout.head(3).assign(carrier="ZZ")
    assert np.isfinite(score(model, unseen)).all()


def test_evaluate_refuses_a_single_class():
    with pytest.raises(ValueError, match="single label"):
        evaluate(np.zeros(5), np.full(5, 0.3))


def test_permutation_importances_rank_the_signal_first_and_noise_near_zero():
    split = time_split(synthetic_features(days=40), holdout_days=10)
    model = fit_model(split.train, ModelParams(max_iter=60, seed=3))
    importances = permutation_importances(model, split.holdout, seed=5)
    assert list(importances) == list(FEATURE_COLUMNS)
    ranked = sorted(importances, key=importances.get, reverse=True)
    assert ranked[:2] == ["origin_mean_dep_delay", "carrier"]
    assert importances["origin_mean_dep_delay"] > 0.2
    noise = [v for k, v in importances.items() if k not in ("origin_mean_dep_delay", "carrier")]
    assert max(abs(v) for v in noise) < 0.02
    assert importances == permutation_importances(model, split.holdout, seed=5)  # seeded


def test_permutation_importances_equal_shuffling_the_raw_columns_through_the_whole_pipeline():
    from sklearn.inspection import permutation_importance

    split = time_split(synthetic_features(days=30), holdout_days=10)
    model = fit_model(split.train, ModelParams(max_iter=40, seed=3))
    sample = split.holdout.sample(n=min(4000, len(split.holdout)), random_state=7)
    whole = permutation_importance(
        model, model_inputs(sample), sample[LABEL].to_numpy(), scoring="roc_auc", n_repeats=3, random_state=7
    )
    expected = dict(zip(FEATURE_COLUMNS, whole.importances_mean.tolist(), strict=True))
    assert permutation_importances(model, split.holdout, seed=7) == pytest.approx(expected, abs=1e-12)
    assert expected["carrier"] > 0.05  # a categorical column, shuffled as codes and as strings alike


def test_model_inputs_are_the_signature_columns_as_astype_made_them():
    features = synthetic_features(days=2, per_day=3).assign(extra="ignored")
    features.index = pd.RangeIndex(10, 16)
    text = features.astype(dict.fromkeys(CATEGORICAL_FEATURES, "string[pyarrow]"))
    text.loc[11, "carrier"] = None
    text.loc[12, "temp"] = np.nan
    as_objects = features.astype(dict.fromkeys(CATEGORICAL_FEATURES, object))
    as_objects.loc[13, "origin"] = np.nan
    as_integers = features.assign(temp=pd.array([1, None, 3, 4, 5, 6], dtype="Int64"))
    for frame in (features, text, as_objects, as_integers):
        inputs = model_inputs(frame)
        assert list(inputs.columns) == list(FEATURE_COLUMNS)
        assert list(inputs.index) == list(frame.index)
        assert set(inputs[list(NUMERIC_FEATURES)].dtypes) == {np.dtype("float64")}
        assert set(inputs[list(CATEGORICAL_FEATURES)].dtypes) == {np.dtype(object)}
        # What the model was trained and served on before: astype(str), astype("float64").
        for column in CATEGORICAL_FEATURES:
            assert inputs[column].tolist() == frame[column].astype(str).tolist()
        pd.testing.assert_series_equal(inputs["temp"], frame["temp"].astype("float64"))
    assert model_inputs(text).loc[11, "carrier"] == "<NA>"
    assert np.isnan(model_inputs(as_integers).loc[11, "temp"])
    assert model_inputs(as_objects).loc[13, "origin"] == "nan"
    inputs = model_inputs(text)
    inputs.loc[10, "temp"] = 99.0
    assert text.loc[10, "temp"] != 99.0  # a copy: the features are not written through the inputs


def test_table_digest_sees_every_row_column_and_type():
    frame = model_inputs(synthetic_features(days=100, per_day=120))  # 12,000 rows
    digest = table_digest(frame)
    assert len(digest) == 8
    assert digest == table_digest(frame.copy())
    late = frame.copy()
    late.loc[11_500, "carrier"] = "Z"  # past the 10,000 rows MLflow's own digest reads
    renamed = frame.rename(columns={"carrier": "airline"})
    retyped = frame.astype({"temp": "float32"})
    assert len({digest, table_digest(late), table_digest(renamed), table_digest(retyped)}) == 4


def test_model_params_are_picked_from_a_runs_settings():
    settings = {"learning_rate": 0.1, "max_iter": 7, "seed": 9, "holdout_days": 60, "window_days": 0}
    assert ModelParams.from_settings(settings) == ModelParams(learning_rate=0.1, max_iter=7, seed=9)
    assert ModelParams.from_settings({}) == ModelParams()


def test_model_requirements_pin_the_training_versions():
    requirements = dict(r.split("==") for r in model_requirements())
    assert requirements["scikit-learn"] == version("scikit-learn")
    assert requirements["skops"] == version("skops")
    assert set(requirements) == {"mlflow", "scikit-learn", "skops", "pandas", "numpy", "scipy"}
