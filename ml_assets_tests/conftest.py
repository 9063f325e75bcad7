"""Shared fixtures: small real slices of the 2013 NYC flights, landed in temporary dirs."""

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import dagster as dg
import pandas as pd
import pytest

from ml_assets.demo import load_demo_flights, seed
from ml_assets.domain.contract import FLIGHT_COLUMNS
from ml_assets.resources.compute import Compute
from ml_assets.resources.io_manager import ParquetIOManager, concat_parquet
from ml_assets.resources.landing import LocalLandingZone
from ml_assets.resources.mlflow import MlflowTracking

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)


@pytest.fixture(scope="session")
def demo_flights() -> pd.DataFrame:
    """The package's flights as strings, with a `_date` column (as landed by the demo)."""
    return load_demo_flights()


@pytest.fixture
def day_csv(demo_flights):
    """Bytes of one real day's landing file."""

    def make(day: str = "2013-01-15") -> bytes:
        rows = demo_flights[demo_flights["_date"] == day]
        return rows[list(FLIGHT_COLUMNS)].to_csv(index=False).encode()

    return make


class CountsReads(ParquetIOManager):
    """The local IO manager, recording each file it reads back (path under its base_dir) in `reads`."""

    reads: ClassVar[list[str]] = []

    def read(self, relative: str) -> bytes:
        CountsReads.reads.append(relative)
        return super().read(relative)


def make_resources(root: Path, landing_dir: Path, tracking_uri: str | None = None) -> dict:
    mlflow_dir = root / "mlflow"
    mlflow_dir.mkdir(parents=True, exist_ok=True)
    return {
        "landing": LocalLandingZone(landing_dir=str(landing_dir)),
        "io_manager": ParquetIOManager(base_dir=str(root / "warehouse")),
        "compute": Compute(threads=2),
        "mlflow": MlflowTracking(
            tracking_uri=tracking_uri or f"sqlite:///{mlflow_dir / 'mlflow.db'}",
            artifact_location=str(mlflow_dir / "artifacts"),
        ),
    }


@pytest.fixture(scope="module")
def landed_month(tmp_path_factory) -> Path:
    """January 2013 landed as 31 daily files plus weather and planes."""
    landing = tmp_path_factory.mktemp("landing")
    seed(landing, "2013-01-01", 31)
    return landing


def registry_client(uri: str):
    """A client bound to one store for tracking *and* registry: mlflow keeps a process-wide registry
    URI, so a client given only a tracking URI can read another test's registry."""
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def stored_days(io_manager: ParquetIOManager, asset: str, days: list[str]) -> pd.DataFrame:
    """A daily table's stored days as one frame, read back as a downstream step loads them
    (`concat_parquet`: Arrow-backed strings, as the assets built them)."""
    return concat_parquet([io_manager.read(f"{asset}/{day}.parquet") for day in days])


def materialize_range(assets: list, days: list[str], **kwargs):
    """Materialize `assets` over the partition range days[0]..days[-1] as one run."""
    tags = {"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]}
    return dg.materialize(assets, tags=tags, **kwargs)


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory) -> Iterator[str]:
    """A real S3 HTTP endpoint (moto's server mode) on loopback, shared by the session's tests."""
    from ml_assets_tests.integration.servers import moto_s3_server

    with moto_s3_server(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url
