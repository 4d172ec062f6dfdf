"""S3Store against a real S3 protocol server (moto_server on loopback)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from dicomvault.store import FileStore, S3Settings, S3Store, StoreError, instance_key
from tests.peers import s3 as s3_peers

moto_url = s3_peers.moto_url  # fixture


@pytest.fixture
def s3_settings(moto_url: str, tmp_path: Path) -> S3Settings:
    creds = tmp_path / "s3.json"
    creds.write_text(json.dumps({"access_key_id": "testing", "secret_access_key": "testing"}))
    return S3Settings(endpoint_url=moto_url, bucket=f"cache-{tmp_path.name[-8:].lower()}",
                      prefix="cache", credentials_file=creds, create_bucket=True)


KEY = instance_key("1.2.3", "1.2.3.4", "1.2.3.4.5")


def test_round_trip_with_the_file_store_interface(s3_settings: S3Settings) -> None:
    store = S3Store(s3_settings)
    data = b"DICM" * 1000
    stored = store.put(KEY, data)
    assert stored.size == len(data) and stored.sha256 == hashlib.sha256(data).hexdigest()
    assert store.exists(KEY) and store.get(KEY) == data
    assert store.stat(KEY) == stored
    assert [k for k, _ in store.keys()] == [KEY]
    # Overwriting is one atomic PUT: readers see the old or the new object, never a mix.
    store.put(KEY, b"new")
    assert store.get(KEY) == b"new"
    assert store.delete(KEY) is True and store.delete(KEY) is False
    assert not store.exists(KEY) and list(store.keys()) == []


def test_keys_are_validated_like_the_file_store(s3_settings: S3Settings, tmp_path: Path) -> None:
    s3, fs = S3Store(s3_settings), FileStore(tmp_path / "fs")
    for bad in ("", "/abs/key.dcm", "a/../b.dcm", "a//b.dcm", "a\\b.dcm", "./a.dcm"):
        with pytest.raises(StoreError):
            s3.put(bad, b"x")
        with pytest.raises(StoreError):
            fs.put(bad, b"x")


def test_keys_filter_by_modification_time(s3_settings: S3Settings) -> None:
    store = S3Store(s3_settings)
    store.put("1.2/1.3/1.4.dcm", b"a")
    (_, mtime), = list(store.keys())
    assert list(store.keys(modified_after=mtime + 1)) == []
    assert [k for k, _ in store.keys(modified_after=mtime - 5)] == ["1.2/1.3/1.4.dcm"]


def test_credentials_are_never_shown(s3_settings: S3Settings) -> None:
    settings = S3Settings(**{**s3_settings.model_dump(), "credentials_file": None,
                             "access_key_id": "AKIDSECRET1", "secret_access_key": "VERYSECRET2"})
    store = S3Store(settings)
    text = repr(store) + repr(settings) + str(settings.model_dump())
    assert "VERYSECRET2" not in text and "AKIDSECRET1" not in text
    store.put(KEY, b"ok")  # and they work
    assert store.get(KEY) == b"ok"


def test_bad_credentials_or_bucket_fail_loudly(s3_settings: S3Settings) -> None:
    store = S3Store(s3_settings.model_copy(update={"bucket": "no-such-bucket",
                                                   "create_bucket": False}))
    with pytest.raises(StoreError):
        store.put(KEY, b"x")
    with pytest.raises(StoreError):
        store.get(KEY)


@pytest.mark.parametrize("backend", ["s3", "fs"])
def test_generation_changes_with_every_write_and_open_cache_picks_the_back_end(
        backend: str, s3_settings: S3Settings, tmp_path: Path) -> None:
    from dicomvault.settings import CacheSettings
    from dicomvault.store import CacheStore, open_cache

    store = open_cache(CacheSettings(backend=backend, root=tmp_path / "fs", s3=s3_settings))
    assert isinstance(store, S3Store if backend == "s3" else FileStore)
    assert isinstance(store, CacheStore)
    assert store.generation(KEY) is None
    first = store.put(KEY, b"same bytes")
    assert first.generation and store.generation(KEY) == first.generation
    # The same bytes written again (after an eviction, say) are a new generation.
    store.delete(KEY)
    second = store.put(KEY, b"same bytes")
    assert second.generation != first.generation
    assert store.generation(KEY) == second.generation and second == first
    # keys() can be narrowed to one study's folder.
    store.put(instance_key("1.2.9", "1.2.9.1", "1.2.9.1.1"), b"other study")
    assert [k for k, _ in store.keys(prefix="1.2.3/")] == [KEY]
