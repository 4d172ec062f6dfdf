"""S3-compatible object store for the cache tier: the same interface as ``FileStore``.

- Atomic: one object is one ``PutObject`` (S3 never shows a half-written object). The body's
  MD5 travels as ``Content-MD5`` (the server refuses a corrupted upload) and the returned ETag
  is compared with it; the SHA-256 and a random generation token (new on every write) are
  kept as object metadata.
- Keys follow the file store's rules (``instance_key`` from validated UIDs; no empty, ``.``
  or ``..`` parts, no leading ``/``), under an optional prefix.
- Credentials come from a file (``credentials_file``: JSON ``{"access_key_id": …,
  "secret_access_key": …}`` or an AWS ``credentials`` INI file) or from the standard AWS
  environment variables; they are ``SecretStr`` and never logged or repr'd.

The methods are blocking like ``FileStore``'s; async callers use ``asyncio.to_thread``.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr

from dicomvault.store.filestore import StoredObject, StoreError


class S3Settings(BaseModel):
    """S3-compatible object storage (AWS S3, MinIO, Ceph RGW, …)."""

    endpoint_url: str | None = Field(None, description="e.g. http://minio:9000; None for AWS.")
    bucket: str = Field("dicomvault-cache", description="Bucket holding the objects.")
    prefix: str = Field("", description="Key prefix inside the bucket (no leading '/').")
    region: str = Field("us-east-1", description="Region name.")
    access_key_id: SecretStr | None = Field(None, description="Access key (prefer the file).")
    secret_access_key: SecretStr | None = Field(None, description="Secret key (prefer the file).")
    credentials_file: Path | None = Field(
        None, description="JSON {access_key_id, secret_access_key} or an AWS credentials INI "
                          "file (profile 'default'); a mounted Kubernetes Secret.")
    path_style: bool = Field(True, description="Path-style addressing (MinIO, moto).")
    create_bucket: bool = Field(False, description="Create the bucket if it is missing.")
    timeout_s: float = Field(30.0, gt=0, description="Connect / read timeout.")

    def credentials(self) -> tuple[str | None, str | None]:
        """(access key, secret) from the file, else the fields, else None (AWS env chain)."""
        if self.credentials_file is not None:
            text = self.credentials_file.read_text()
            try:
                data = json.loads(text)
                return data["access_key_id"], data["secret_access_key"]
            except (ValueError, KeyError):
                ini = configparser.ConfigParser()
                ini.read_string(text)
                section = ini["default"]
                return section["aws_access_key_id"], section["aws_secret_access_key"]
        if self.access_key_id is not None and self.secret_access_key is not None:
            return self.access_key_id.get_secret_value(), self.secret_access_key.get_secret_value()
        return None, None


def validate_key(key: str) -> str:
    """The file store's key rules, so that both back ends accept exactly the same keys."""
    if not key or key.startswith("/") or "\\" in key or any(
        part in ("", ".", "..") for part in key.split("/")
    ):
        raise StoreError(f"illegal key {key!r}")
    return key


class S3Store:
    def __init__(self, settings: S3Settings, client=None) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = settings.prefix.strip("/") + "/" if settings.prefix.strip("/") else ""
        self._client = client or self._make_client(settings)
        if settings.create_bucket:
            self._ensure_bucket()

    def __repr__(self) -> str:  # never show credentials
        return f"S3Store(endpoint={self.settings.endpoint_url!r}, bucket={self.bucket!r})"

    @staticmethod
    def _make_client(settings: S3Settings):
        import boto3
        from botocore.config import Config

        key, secret = settings.credentials()
        return boto3.session.Session().client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=settings.region,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=Config(
                s3={"addressing_style": "path" if settings.path_style else "auto"},
                connect_timeout=settings.timeout_s, read_timeout=settings.timeout_s,
                retries={"max_attempts": 3, "mode": "standard"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def _ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError:
            try:
                self._client.create_bucket(Bucket=self.bucket)
            except ClientError as exc:
                raise StoreError(f"cannot create bucket {self.bucket}: {_code(exc)}") from exc

    def _k(self, key: str) -> str:
        return self.prefix + validate_key(key)

    # --- the FileStore interface ----------------------------------------------------------
    def put(self, key: str, data: bytes, sha256: str | None = None) -> StoredObject:
        """Upload ``data`` in one PUT; durable and verified (ETag = MD5) when this returns."""
        from botocore.exceptions import BotoCoreError, ClientError

        full = self._k(key)
        md5 = hashlib.md5(data, usedforsecurity=False)
        sha = sha256 or hashlib.sha256(data).hexdigest()
        generation = uuid.uuid4().hex
        try:
            r = self._client.put_object(
                Bucket=self.bucket, Key=full, Body=data,
                ContentMD5=base64.b64encode(md5.digest()).decode(),
                ContentType="application/dicom",
                Metadata={"sha256": sha, "generation": generation},
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"cannot write {key}: {_code(exc)}") from exc
        etag = str(r.get("ETag", "")).strip('"')
        if etag != md5.hexdigest():
            raise StoreError(f"cannot write {key}: ETag {etag!r} does not match the MD5 sent")
        return StoredObject(key, len(data), sha, generation)

    def get(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            r = self._client.get_object(Bucket=self.bucket, Key=self._k(key))
            return r["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"cannot read {key}: {_code(exc)}") from exc

    def _head(self, key: str) -> dict | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self._client.head_object(Bucket=self.bucket, Key=self._k(key))
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StoreError(f"cannot look up {key}: {_code(exc)}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"cannot look up {key}: {exc!r}") from exc

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def generation(self, key: str) -> str | None:
        """The token ``put`` stored with the object (ETag + Last-Modified for objects written
        by something else); None when there is no object."""
        head = self._head(key)
        if head is None:
            return None
        token = (head.get("Metadata") or {}).get("generation")
        if token:
            return str(token)
        etag = str(head.get("ETag", "")).strip('"')
        return f"{etag}-{head.get('LastModified', '')}"

    def stat(self, key: str) -> StoredObject:
        """Size and SHA-256 computed from the stored bytes (a read-back, as FileStore does)."""
        data = self.get(key)
        return StoredObject(key, len(data), hashlib.sha256(data).hexdigest())

    def delete(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        if not self.exists(key):
            return False
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._k(key))
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"cannot delete {key}: {_code(exc)}") from exc
        return True

    def keys(self, modified_after: float = 0.0, prefix: str = "") -> Iterator[tuple[str, float]]:
        """(key, last-modified as a POSIX time) of every object, optionally only newer ones
        and only those whose key starts with ``prefix`` (e.g. ``"<study uid>/"``)."""
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            for obj in page.get("Contents", []):
                mtime = obj["LastModified"].timestamp()
                if mtime > modified_after:
                    yield obj["Key"][len(self.prefix):], mtime


def _code(exc: Exception) -> str:
    resp = getattr(exc, "response", None)
    if isinstance(resp, dict):
        return str(resp.get("Error", {}).get("Code", "")) or repr(exc)
    return repr(exc)
