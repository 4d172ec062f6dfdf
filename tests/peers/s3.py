"""The S3 peer of the cache-tier tests (libs, gateway, archiver): moto's S3 server (``moto_server``) on loopback, a
bucket per test, and the gateway settings / environment that put the cache tier there."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.config import Config

from dicomvault.bus.broker import free_port


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One moto_server process on a free loopback port; stopped at the end of the session."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")  # noqa: SIM115
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/moto-api/", timeout=1.0)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start (see {log.name})") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@dataclass
class Bucket:
    """A bucket on the S3 server, its key prefix and a credentials file for the services."""

    url: str
    name: str
    prefix: str
    credentials_file: Path

    def client(self):
        return boto3.session.Session().client(
            "s3", endpoint_url=self.url, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
            config=Config(s3={"addressing_style": "path"}))

    def objects(self) -> dict[str, bytes]:
        """Key (without the prefix) -> bytes of every object under the prefix."""
        s3 = self.client()
        out = {}
        for obj in s3.list_objects_v2(Bucket=self.name, Prefix=self.prefix + "/").get(
                "Contents", []):
            body = s3.get_object(Bucket=self.name, Key=obj["Key"])["Body"].read()
            out[obj["Key"].removeprefix(self.prefix + "/")] = body
        return out

    def delete(self, key: str) -> None:
        self.client().delete_object(Bucket=self.name, Key=f"{self.prefix}/{key}")

    def settings(self) -> dict:
        """The ``cache`` section (CacheSettings) for this bucket."""
        return {"backend": "s3", "s3": {"endpoint_url": self.url, "bucket": self.name,
                                        "prefix": self.prefix,
                                        "credentials_file": self.credentials_file,
                                        "timeout_s": 5.0}}

    def env(self) -> dict[str, str]:
        """The same as DICOMVAULT_CACHE__* variables (what the Helm chart renders)."""
        return {"DICOMVAULT_CACHE__BACKEND": "s3",
                "DICOMVAULT_CACHE__S3__ENDPOINT_URL": self.url,
                "DICOMVAULT_CACHE__S3__BUCKET": self.name,
                "DICOMVAULT_CACHE__S3__PREFIX": self.prefix,
                "DICOMVAULT_CACHE__S3__CREDENTIALS_FILE": str(self.credentials_file),
                "DICOMVAULT_CACHE__S3__TIMEOUT_S": "5"}


@pytest.fixture
def bucket(moto_url: str, tmp_path: Path) -> Bucket:
    """A fresh bucket (made here, not by the services) and a JSON credentials file."""
    creds = tmp_path / "s3-credentials.json"
    creds.write_text(json.dumps({"access_key_id": "testing", "secret_access_key": "testing"}))
    b = Bucket(moto_url, f"cache-{uuid.uuid4().hex[:10]}", "vault", creds)
    b.client().create_bucket(Bucket=b.name)
    return b
