"""The file store writes atomically and only under keys built from valid UIDs."""

from __future__ import annotations

import hashlib
import threading

import pytest

from dicomvault.store import FileStore, InvalidUID, StoreError, instance_key, validate_uid


@pytest.mark.parametrize("uid", ["1.2.3", "1.2.840.10008.5.1.4.1.1.2", "0.1", "2.25.1234"])
def test_valid_uids_are_accepted(uid: str) -> None:
    assert validate_uid(uid) == uid


@pytest.mark.parametrize(
    "uid", ["", "../../x", "1..2", "1.02", "1.2.", ".1.2", "1.2.a", "1/2", "1" * 65, "1.2\\3"]
)
def test_invalid_uids_are_refused(uid: str) -> None:
    with pytest.raises(InvalidUID):
        validate_uid(uid)


def test_key_is_study_series_instance() -> None:
    assert instance_key("1.2", "1.2.3", "1.2.3.4") == "1.2/1.2.3/1.2.3.4.dcm"
    with pytest.raises(InvalidUID):
        instance_key("1.2", "../..", "1.2.3.4")


def test_put_get_and_checksum(tmp_path) -> None:
    store = FileStore(tmp_path / "cache")
    obj = store.put("1.2/1.2.3/1.2.3.4.dcm", b"hello")
    assert obj.size == 5 and obj.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert store.get(obj.key) == b"hello"
    # No temporary files are left behind.
    assert [p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()] == ["1.2.3.4.dcm"]
    assert [k for k, _ in store.keys()] == ["1.2/1.2.3/1.2.3.4.dcm"]


@pytest.mark.parametrize("key", ["../x", "/etc/passwd", "a/../../b", "a//b", ""])
def test_keys_cannot_escape_the_root(tmp_path, key: str) -> None:
    store = FileStore(tmp_path / "cache")
    with pytest.raises(StoreError):
        store.put(key, b"x")


def test_delete_prunes_empty_folders(tmp_path) -> None:
    store = FileStore(tmp_path / "cache")
    store.put("1.2/1.2.3/1.2.3.4.dcm", b"x")
    assert store.delete("1.2/1.2.3/1.2.3.4.dcm")
    assert not (tmp_path / "cache" / "1.2").exists()
    assert not store.delete("1.2/1.2.3/1.2.3.4.dcm")


def test_generation_names_the_copy_in_place(tmp_path) -> None:
    store = FileStore(tmp_path / "cache")
    first = store.put("1.2/1.2.3/1.2.3.4.dcm", b"one")
    assert first.generation == store.generation(first.key)
    second = store.put(first.key, b"two")
    assert second.generation == store.generation(first.key) != first.generation


def test_writers_racing_a_pruning_delete_all_land(tmp_path) -> None:
    """A delete prunes the series folder while other threads write into it: every write
    that returned is on disk, whole, and no temporary file is left."""
    store = FileStore(tmp_path / "cache")
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(200):
                store.put(f"1.2/1.2.3/{n}.{i}.dcm", b"x" * 100)
                if i % 2:  # the last file of the folder, often: the folder goes with it
                    store.delete(f"1.2/1.2.3/{n}.{i}.dcm")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    kept = sorted(k for k, _ in store.keys())
    assert kept == sorted(f"1.2/1.2.3/{n}.{i}.dcm" for n in range(4) for i in range(0, 200, 2))
    assert all(store.get(k) == b"x" * 100 for k in kept)
    assert not [p for p in (tmp_path / "cache").rglob(".tmp-*")]
