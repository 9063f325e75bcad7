"""S3 storage through dagster-aws: landing files under a prefix, asset tables as Parquet objects.

Imported only when the environment asks for S3, so the local code location never loads boto3.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from dagster_aws.s3 import S3Resource
from pydantic import Field

from ml_assets.domain.contract import file_name_for_day, weather_file_for_day
from ml_assets.resources.io_manager import ParquetTables
from ml_assets.resources.landing import (
    LANDING_FILE_PREFIX,
    LandedFile,
    LandingZone,
    is_landing_file,
    landed_file,
)


@functools.lru_cache(maxsize=16)
def client_for(s3: S3Resource) -> Any:
    """One boto3 client per S3 configuration in a process: building one takes ~50 ms, and a step or
    a sensor tick makes many calls (boto3 clients are thread-safe)."""
    return s3.get_client()


def _key(prefix: str, name: str) -> str:
    return f"{prefix.strip('/')}/{name}" if prefix.strip("/") else name


def _is_missing(error: Exception) -> bool:
    code = getattr(error, "response", {}).get("Error", {}).get("Code")
    return code in {"404", "NoSuchKey", "NotFound"}


class S3LandingZone(LandingZone):
    """Landing files under `s3://bucket/prefix/`; an S3 PUT is atomic, so every listed key is complete.

    The sensor's cursor is the last key seen and each tick lists with `StartAfter` it: the cost of a
    tick follows the new objects, not the history. Daily files are named by day, so they arrive in
    key order; a day re-landed under its old key is not seen by the sensor (materialize it by hand).
    """

    s3: S3Resource
    bucket: str = Field(description="Bucket holding the landing files.")
    prefix: str = Field(default="landing", description="Key prefix of the landing files.")

    def client(self) -> Any:
        return client_for(self.s3)

    def location(self, name: str) -> str:
        return f"s3://{self.bucket}/{_key(self.prefix, name)}"

    def _list(self, start_after: str | None, prefix: str) -> list[LandedFile]:
        paginator = self.client().get_paginator("list_objects_v2")
        root = _key(self.prefix, "")
        kwargs = {"Bucket": self.bucket, "Prefix": root + prefix}
        if start_after:
            kwargs["StartAfter"] = start_after
        files = []
        for page in paginator.paginate(**kwargs):
            for item in page.get("Contents", []):
                name = item["Key"][len(root) :]
                if "/" not in name and is_landing_file(name, prefix):
                    modified_ns = int(item["LastModified"].timestamp() * 1e9)
                    files.append(landed_file(name, item["Size"], modified_ns, prefix))
        return files

    def list_files(self, prefix: str = LANDING_FILE_PREFIX) -> list[LandedFile]:
        return self._list(None, prefix)

    def new_files(
        self, cursor: str | None, prefix: str = LANDING_FILE_PREFIX
    ) -> tuple[list[LandedFile], str | None]:
        last_key = json.loads(cursor)["key"] if cursor else None
        fresh = self._list(last_key, prefix)
        if not fresh:
            return [], cursor
        return fresh, json.dumps({"key": _key(self.prefix, fresh[-1].name)})

    def _get(self, name: str) -> bytes:
        response = self.client().get_object(Bucket=self.bucket, Key=_key(self.prefix, name))
        return response["Body"].read()

    def size_of_day(self, day: str) -> int | None:
        try:
            head = self.client().head_object(
                Bucket=self.bucket, Key=_key(self.prefix, file_name_for_day(day))
            )
        except Exception as error:
            if _is_missing(error):
                return None
            raise
        return head["ContentLength"]

    def sha256_of_day(self, day: str) -> str:
        digest = hashlib.sha256()
        body = self.client().get_object(Bucket=self.bucket, Key=_key(self.prefix, file_name_for_day(day)))[
            "Body"
        ]
        for block in body.iter_chunks(1 << 20):
            digest.update(block)
        return digest.hexdigest()

    def read_day(self, day: str) -> bytes:
        return self._get(file_name_for_day(day))

    def read_weather(self, day: str) -> bytes | None:
        try:
            return self._get(weather_file_for_day(day))
        except Exception as error:
            if _is_missing(error):
                return None
            raise

    def read_reference(self, name: str) -> bytes:
        return self._get(name)


class S3ParquetIOManager(ParquetTables):
    """Asset tables as `s3://bucket/prefix/<asset>/<partition>.parquet` (one PUT each, atomic)."""

    s3: S3Resource
    bucket: str = Field(description="Bucket for asset outputs.")
    prefix: str = Field(default="warehouse", description="Key prefix for asset outputs.")

    def client(self) -> Any:
        return client_for(self.s3)

    def location(self, relative: str) -> str:
        return f"s3://{self.bucket}/{_key(self.prefix, relative)}"

    def write(self, relative: str, data: bytes) -> None:
        self.client().put_object(Bucket=self.bucket, Key=_key(self.prefix, relative), Body=data)

    def read(self, relative: str) -> bytes:
        try:
            response = self.client().get_object(Bucket=self.bucket, Key=_key(self.prefix, relative))
        except Exception as error:
            if _is_missing(error):
                raise FileNotFoundError(self.location(relative)) from error
            raise
        return response["Body"].read()

    def exists(self, relative: str) -> bool:
        try:
            self.client().head_object(Bucket=self.bucket, Key=_key(self.prefix, relative))
        except Exception as error:
            if _is_missing(error):
                return False
            raise
        return True
