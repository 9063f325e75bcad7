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


class RetriedTagClient:
    """Fake registry client: the first set of each tag 'was applied' but answered with the
    UNIQUE-constraint error a sqlite-backed server gives a repeated request."""

    def __init__(self):
        self.tags: dict[str, str] = {}
        self.calls = 0

    def set_model_version_tag(self, name, version, key, value):
        from mlflow.exceptions import MlflowException

        self.calls += 1
        if key not in self.tags:
            self.tags[key] = value
            raise MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: model_version_tags")
        self.tags[key] = value

    def get_model_version(self, name, version):
        from types import SimpleNamespace

        return SimpleNamespace(tags=dict(self.tags))


def test_tagging_survives_a_retried_request(monkeypatch):
    fake = RetriedTagClient()
    tracking = MlflowTracking(tracking_uri="http://127.0.0.1:1")
    monkeypatch.setattr(MlflowTracking, "client", lambda self: fake)
    tracking.tag_version("3", {"promotion_decision": "promoted", "promotion_reason": "beats by 0.01"})
    assert fake.tags == {"promotion_decision": "promoted", "promotion_reason": "beats by 0.01"}
    assert fake.calls == 2  # the value was already there: read back, not written again
