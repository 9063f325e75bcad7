"""The S3 landing zone and Parquet IO manager against a real S3 HTTP endpoint (moto server)."""

import hashlib
import uuid

import dagster as dg
import pandas as pd
import pytest
from dagster_aws.s3 import S3Resource

from ml_assets.resources.io_manager import ALLOW_MISSING_PARTITIONS
from ml_assets.resources.landing import WEATHER_FILE_PREFIX
from ml_assets.resources.s3 import S3LandingZone, S3ParquetIOManager
from ml_assets_tests.integration.servers import S3_CREDENTIALS, s3_client
from ml_assets_tests.resources.test_io_manager import _range_input_context, _range_output_context, frame


@pytest.fixture
def bucket(s3_endpoint):
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3_client(s3_endpoint).create_bucket(Bucket=name)
    return name


def s3(endpoint: str) -> S3Resource:
    return S3Resource(
        endpoint_url=endpoint,
        region_name=S3_CREDENTIALS["AWS_DEFAULT_REGION"],
        aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def count_listed_keys(zone: S3LandingZone) -> list[int]:
    """Keys in each ListObjectsV2 response the zone's client receives, as sent over HTTP."""
    seen: list[int] = []
    zone.client().meta.events.register(
        "after-call.s3.ListObjectsV2", lambda parsed, **_: seen.append(len(parsed.get("Contents", [])))
    )
    return seen


def test_landing_zone_lists_after_its_cursor_and_reads_files(s3_endpoint, bucket):
    client = s3_client(s3_endpoint)
    days = [f"2013-01-{d:02d}" for d in range(1, 6)]
    for day in days[:3]:
        client.put_object(Bucket=bucket, Key=f"in/flights_{day}.csv", Body=f"day {day}".encode())
    client.put_object(Bucket=bucket, Key="in/flights_2013-01-09.csv.tmp", Body=b"half")
    client.put_object(Bucket=bucket, Key="in/weather_2013-01-01.csv", Body=b"w")
    client.put_object(Bucket=bucket, Key="in/planes.csv", Body=b"p")
    client.put_object(Bucket=bucket, Key="in/older/flights_2012-12-31.csv", Body=b"nested")
    zone = S3LandingZone(s3=s3(s3_endpoint), bucket=bucket, prefix="in")
    listed = count_listed_keys(zone)

    fresh, cursor = zone.new_files(None)
    assert [f.day for f in fresh] == days[:3]
    assert fresh[0].size_bytes == len(b"day 2013-01-01")
    assert fresh[0].modified_ns > 0
    # A tick with nothing new asks S3 for the keys after the cursor, and gets none back.
    assert zone.new_files(cursor) == ([], cursor)
    for day in days[3:]:
        client.put_object(Bucket=bucket, Key=f"in/flights_{day}.csv", Body=f"day {day}".encode())
    fresh, cursor = zone.new_files(cursor)
    assert [f.day for f in fresh] == days[3:]
    # What came over the wire: the first listing, then only keys after the cursor. The in-progress
    # `.tmp` key sorts after the cursor and comes back each time (the cursor never passes it, or its
    # renamed file, which sorts just before it, would be skipped).
    assert listed == [3 + 1, 0 + 1, 2 + 1]

    assert [f.day for f in zone.list_files()] == days
    assert zone.read_day(days[0]) == b"day 2013-01-01"
    assert zone.read_weather(days[0]) == b"w"
    assert zone.read_weather(days[1]) is None  # not landed: the day's weather features are missing
    assert zone.read_reference("planes.csv") == b"p"
    assert zone.size_of_day(days[4]) == len(b"day 2013-01-05")
    assert zone.size_of_day("2013-02-01") is None
    assert zone.sha256_of_day(days[1]) == hashlib.sha256(b"day 2013-01-02").hexdigest()
    assert zone.location("flights_2013-01-01.csv") == f"s3://{bucket}/in/flights_2013-01-01.csv"

    # Weather files have their own listing and cursor (the weather sensor's).
    weather, weather_cursor = zone.new_files(None, WEATHER_FILE_PREFIX)
    assert [(f.name, f.day) for f in weather] == [("weather_2013-01-01.csv", "2013-01-01")]
    client.put_object(Bucket=bucket, Key="in/weather_2013-01-03.csv", Body=b"w3")
    (late,), _ = zone.new_files(weather_cursor, WEATHER_FILE_PREFIX)
    assert (late.day, late.size_bytes) == ("2013-01-03", 2)


def test_parquet_io_manager_round_trips_partitions_and_records_over_http(s3_endpoint, bucket):
    manager = S3ParquetIOManager(s3=s3(s3_endpoint), bucket=bucket, prefix="wh")
    key = dg.AssetKey("table")
    days = ["2013-01-01", "2013-01-02", "2013-01-03"]
    manager.handle_output(_range_output_context(key, days), frame(days))
    keys = sorted(o["Key"] for o in s3_client(s3_endpoint).list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == [f"wh/table/{d}.parquet" for d in days]
    # Re-materializing one day replaces that object only.
    manager.handle_output(_range_output_context(key, days[1:2]), frame(days[1:2], rows_per_day=5))
    loaded = manager.load_input(_range_input_context(key, days))
    assert loaded.groupby("landing_day").size().to_dict() == {days[0]: 2, days[1]: 5, days[2]: 2}

    manager.handle_output(dg.build_output_context(asset_key=dg.AssetKey("model")), {"version": "3"})
    assert manager.load_input(dg.build_input_context(asset_key=dg.AssetKey("model"))) == {"version": "3"}
    manager.handle_output(dg.build_output_context(asset_key=dg.AssetKey("flat")), pd.DataFrame({"a": [1]}))
    assert manager.load_input(dg.build_input_context(asset_key=dg.AssetKey("flat")))["a"].tolist() == [1]


def test_missing_partition_objects_fail_unless_allowed(s3_endpoint, bucket):
    manager = S3ParquetIOManager(s3=s3(s3_endpoint), bucket=bucket, prefix="wh")
    key = dg.AssetKey("table")
    days = ["2013-01-01", "2013-01-02", "2013-01-03"]
    manager.handle_output(_range_output_context(key, days[:1]), frame(days[:1]))
    # Dagster hands over the range's keys in no fixed order: either missing day may be named.
    with pytest.raises(FileNotFoundError, match=rf"s3://{bucket}/wh/table/2013-01-0[23]\.parquet"):
        manager.load_input(_range_input_context(key, days))
    allowed = dg.build_input_context(
        asset_key=key,
        asset_partitions_def=_range_input_context(key, days).asset_partitions_def,
        asset_partition_key_range=dg.PartitionKeyRange(days[0], days[-1]),
        definition_metadata={ALLOW_MISSING_PARTITIONS: True},
    )
    assert manager.load_input(allowed)["landing_day"].unique().tolist() == [days[0]]
