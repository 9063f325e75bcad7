"""The bad-file corpus through the real ingest assets: each case gets its exact, recorded outcome,
the bad file is left untouched, and the good day beside it still reaches `features`."""

import hashlib
import os
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ml_assets.definitions import defs
from ml_assets.demo import seed
from ml_assets.domain.parsing import parse_landed
from ml_assets.partitions import landing_days
from ml_assets.resources.landing import LocalLandingZone
from ml_assets_tests.conftest import make_resources, materialize_range

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "bad_files"
GOOD_DAY, BAD_DAY = "2013-01-01", "2013-01-02"
INGEST = ["raw_data", "validated_data", "quarantine", "features"]

# case -> (file rule, or None when the file parses; quarantine reasons; checks expected to fail)
CASES = {
    "empty.csv": ("empty_file", {"file_rejected": 1}, {"files_parse", "has_rows", "quarantine_share"}),
    "header_only.csv": ("header_only", {"file_rejected": 1}, {"files_parse", "has_rows", "quarantine_share"}),
    "truncated.csv": ("truncated", {"file_rejected": 1}, {"files_parse", "has_rows", "quarantine_share"}),
    "semicolon.csv": (
        "wrong_delimiter",
        {"file_rejected": 1},
        {"files_parse", "has_rows", "quarantine_share"},
    ),
    "latin1.csv": ("not_utf8", {"file_rejected": 1}, {"files_parse", "has_rows", "quarantine_share"}),
    "missing_column.csv": (
        "missing_columns",
        {"file_rejected": 1},
        {"files_parse", "required_columns_present", "has_rows", "quarantine_share"},
    ),
    "extra_columns.csv": (None, {}, set()),
    "wrong_type.csv": (None, {"type_error": 1}, {"quarantine_share"}),
    "wrong_date.csv": (None, {"date_mismatch": 5}, {"quarantine_share"}),
    "duplicate_rows.csv": (None, {"duplicate_key": 3}, {"quarantine_share"}),
}
BLOCKING_FAILURES = {"has_rows"}  # with quarantine_share over 20%: features must not follow


@pytest.fixture(scope="module")
def tracking_root(tmp_path_factory):
    return tmp_path_factory.mktemp("mlflow")


def ingest(tmp_path: Path, tracking_root: Path, bad: bytes) -> dict:
    """Land the good day and the bad file, then run each day's ingest as the sensor does: one run per file."""
    landing = tmp_path / "landing"
    seed(landing, GOOD_DAY, 2)  # both days' weather too: only the flights file is under test
    bad_path = landing / f"flights_{BAD_DAY}.csv"
    bad_path.write_bytes(bad)
    before = hashlib.sha256(bad_path.read_bytes()).hexdigest()
    resources = make_resources(tmp_path, landing, tracking_uri=f"sqlite:///{tracking_root / 'mlflow.db'}")
    assets = [a for a in defs().assets if isinstance(a, dg.AssetsDefinition)]
    results = {}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(landing_days.name, [GOOD_DAY, BAD_DAY])
        for day in (GOOD_DAY, BAD_DAY):
            results[day] = dg.materialize(
                assets,
                selection=INGEST,
                partition_key=day,
                instance=instance,
                resources=resources,
                raise_on_error=False,
            )
    assert hashlib.sha256(bad_path.read_bytes()).hexdigest() == before, "the bad file was changed"
    return {"results": results, "warehouse": tmp_path / "warehouse", "bad_path": bad_path}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_outcome(case, tmp_path, tracking_root):
    rule, reasons, failing = CASES[case]
    run = ingest(tmp_path, tracking_root, (CORPUS / case).read_bytes())
    good, bad = run["results"][GOOD_DAY], run["results"][BAD_DAY]
    warehouse = run["warehouse"]

    # The good day is untouched by its neighbour.
    assert good.success
    assert len(pd.read_parquet(warehouse / "features" / f"{GOOD_DAY}.parquet")) == 842

    outcomes = {e.check_name: e for e in bad.get_asset_check_evaluations()}
    assert {name for name, e in outcomes.items() if not e.passed} == failing
    quarantine = pd.read_parquet(warehouse / "quarantine" / f"{BAD_DAY}.parquet")
    assert quarantine["reason"].value_counts().to_dict() == reasons
    assert set(quarantine["_source_file"]) <= {str(run["bad_path"])}
    if rule is not None:
        # The refusal names the file and the rule, in the check and in the quarantine record.
        description = outcomes["files_parse"].description
        assert str(run["bad_path"]) in description
        assert f"rule {rule}" in description
        assert quarantine.loc[0, "detail"].startswith(f"{rule}: ")
        assert quarantine.loc[0, "_source_row"] == 0
    raw = pd.read_parquet(warehouse / "raw_data" / f"{BAD_DAY}.parquet")
    valid = pd.read_parquet(warehouse / "validated_data" / f"{BAD_DAY}.parquet")
    assert len(raw) == len(valid) + len(quarantine)
    features_written = (warehouse / "features" / f"{BAD_DAY}.parquet").exists()
    blocked = bool(failing & BLOCKING_FAILURES) or any(
        outcomes[n].severity == dg.AssetCheckSeverity.ERROR and not outcomes[n].passed
        for n in ("quarantine_share",)
    )
    assert features_written is not blocked
    assert bad.success is not blocked


def test_extra_columns_are_recorded(tmp_path, tracking_root):
    run = ingest(tmp_path, tracking_root, (CORPUS / "extra_columns.csv").read_bytes())
    (raw,) = [
        e
        for e in run["results"][BAD_DAY].get_asset_materialization_events()
        if e.asset_key.path == ["raw_data"]
    ]
    metadata = raw.materialization.metadata
    assert metadata["extra_columns"].value == "gate, terminal"
    assert metadata["dagster/row_count"].value == 30


def test_same_file_landed_under_two_names(tmp_path, tracking_root):
    landing = tmp_path / "source"
    seed(landing, GOOD_DAY, 1)
    run = ingest(tmp_path, tracking_root, (landing / f"flights_{GOOD_DAY}.csv").read_bytes())
    quarantine = pd.read_parquet(run["warehouse"] / "quarantine" / f"{BAD_DAY}.parquet")
    # Every row of the copy says 2013-01-01 inside the 2013-01-02 file: nothing of it is counted twice.
    assert quarantine["reason"].value_counts().to_dict() == {"date_mismatch": 842}
    assert not (run["warehouse"] / "features" / f"{BAD_DAY}.parquet").exists()


def test_oversized_file_is_refused_unread(tmp_path, tracking_root):
    landing = tmp_path / "landing"
    seed(landing, GOOD_DAY, 1)
    shutil.copy(landing / f"flights_{GOOD_DAY}.csv", tmp_path / "keep.csv")
    big = landing / f"flights_{BAD_DAY}.csv"
    with big.open("wb") as handle:  # 100 MB, sparse: costs no disk and no memory unless read
        handle.truncate(100 * 1024 * 1024)
    resources = make_resources(tmp_path, landing, tracking_uri=f"sqlite:///{tracking_root / 'mlflow.db'}")
    assets = [a for a in defs().assets if isinstance(a, dg.AssetsDefinition)]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(landing_days.name, [BAD_DAY])
        result = dg.materialize(
            assets, selection=["raw_data"], partition_key=BAD_DAY, instance=instance, resources=resources
        )
    (check,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "files_parse"]
    assert check.passed is False
    assert "rule too_large" in check.description
    assert "104,857,600 bytes" in check.description
    assert big.stat().st_size == 100 * 1024 * 1024


def test_quarantine_is_one_queryable_dataset(tmp_path, tracking_root):
    run = ingest(tmp_path, tracking_root, (CORPUS / "wrong_date.csv").read_bytes())
    dataset = pd.read_parquet(run["warehouse"] / "quarantine")
    assert {"landing_day", "_source_file", "_source_row", "reason", "detail"} <= set(dataset.columns)
    mismatched = dataset[dataset["reason"] == "date_mismatch"]
    assert sorted(mismatched["_source_row"]) == [2, 3, 4, 5, 6]
    assert set(mismatched["landing_day"]) == {BAD_DAY}


# Where parse_and_record_pid notes each file's parsing process; a forked worker inherits it.
PARSED_BY: list[Path] = []


def parse_and_record_pid(landed):
    (PARSED_BY[-1] / f"{landed[1]}-{os.getpid()}").touch()
    return parse_landed(landed)


def test_a_range_parsed_on_worker_processes_gives_what_one_process_gives(tmp_path, monkeypatch):
    """A month with two bad files, raw_data over the range on two forked workers and in the step's
    own process: the same 31 files to the byte, the same check outcomes, each refusal naming its file."""
    # This process may run MLflow's idle tqdm monitor thread by now, which `can_fork` refuses; the
    # forked workers only parse, so the test decides (a fresh interpreter is tested in
    # test_pools.py, and a real run's process through the CLI in test_kill_mid_write.py).
    forking = {"refusal": None}
    monkeypatch.setattr("ml_assets.pools.fork_refusal", lambda: forking["refusal"])
    monkeypatch.setattr("ml_assets.domain.parsing.parse_landed", parse_and_record_pid)
    landing = tmp_path / "landing"
    days = [p.name[8:18] for p in seed(landing, "2013-01-01", 31)]
    for day, case in (("2013-01-10", "truncated.csv"), ("2013-01-20", "wrong_type.csv")):
        shutil.copy(CORPUS / case, landing / f"flights_{day}.csv")
    assets = [a for a in defs().assets if isinstance(a, dg.AssetsDefinition)]
    outcomes = {}
    for processes in (1, 2):
        root = tmp_path / f"processes-{processes}"
        PARSED_BY.append(root / "parsed_by")
        PARSED_BY[-1].mkdir(parents=True)
        resources = {
            **make_resources(root, landing),
            "landing": LocalLandingZone(landing_dir=str(landing), parse_processes=processes),
        }
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions(landing_days.name, days)
            result = materialize_range(
                assets, days, selection=["raw_data"], instance=instance, resources=resources
            )
        (last,) = [
            e.materialization.metadata
            for e in result.get_asset_materialization_events()
            if e.partition == days[-1]
        ]
        checks = {e.check_name: (e.passed, e.description) for e in result.get_asset_check_evaluations()}
        files = {p.name: p.read_bytes() for p in sorted((root / "warehouse" / "raw_data").iterdir())}
        outcomes[processes] = (last["parse_workers"].value, last["files_rejected"].value, checks, files)
        pids = {int(p.name.rsplit("-", 1)[1]) for p in PARSED_BY[-1].iterdir()}
        assert len(list(PARSED_BY[-1].iterdir())) == 31
        assert len(pids) == processes
        assert (os.getpid() in pids) is (processes == 1)
    assert outcomes[1][0] == 0  # in the step's process
    assert outcomes[2][0] == 2  # 31 days: two batches of 16, one a worker
    assert outcomes[2][1:] == outcomes[1][1:]
    # A process that may not fork (another thread runs) parses in the step, and says so.
    forking["refusal"] = "a test refuses the fork"
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(landing_days.name, days)
        resources = {
            **make_resources(tmp_path / "no-fork", landing),
            "landing": LocalLandingZone(landing_dir=str(landing), parse_processes=2),
        }
        result = materialize_range(
            assets, days, selection=["raw_data"], instance=instance, resources=resources
        )
        logged = [e.user_message for e in instance.all_logs(result.run_id)]
    assert "parsing in the step's process: a test refuses the fork" in logged
    (last,) = [e for e in result.get_asset_materialization_events() if e.partition == days[-1]]
    assert last.materialization.metadata["parse_workers"].value == 0
    written = sorted((tmp_path / "no-fork" / "warehouse" / "raw_data").iterdir())
    assert {p.name: p.read_bytes() for p in written} == outcomes[1][3]
    assert outcomes[2][1] == 1
    passed, description = outcomes[2][2]["files_parse"]
    assert passed is False
    assert f"{landing / 'flights_2013-01-10.csv'}" in description
    assert "rule truncated" in description
    assert len(outcomes[2][3]) == 31
