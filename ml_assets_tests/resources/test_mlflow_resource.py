import multiprocessing

from ml_assets.resources.mlflow import MlflowTracking, is_unreachable


def first_use(uri: str) -> None:
    MlflowTracking(tracking_uri=uri).client().search_registered_models()


def test_parallel_first_use_of_an_embedded_store(tmp_path):
    """Four runs touching a new sqlite store at once (as parallel ingest runs do) all succeed."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    processes = [
        multiprocessing.get_context("spawn").Process(target=first_use, args=(uri,)) for _ in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0, 0, 0]


def test_unreachable_is_recognised_through_the_cause_chain():
    import requests

    outer = RuntimeError("API request failed")
    outer.__cause__ = requests.exceptions.ConnectionError("refused")
    assert is_unreachable(outer)
    assert not is_unreachable(ValueError("bad input"))
