"""BlobStore: the same behaviour from a local directory and from S3 (moto on 127.0.0.1, boto3)."""

from __future__ import annotations

import gc
import os
import random
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from app.kit.blob import (
    CHUNK_SIZE,
    BlobInfo,
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    BlobStream,
    InvalidBlobKey,
    InvalidBlobStoreUrl,
    MiB,
    default_blob_url,
    open_blob_store,
    validate_key,
)
from app.kit.blob.local import LocalBlobStore
from app.kit.blob.s3 import S3BlobStore
from tests.conftest import S3Endpoint

STORE_PREFIX = "pre/fix"
NINE_SEGMENTS = "/".join("abcdefghi")
BAD_PREFIXES = ["../x", "/abs", "a//b", "a/./b", "a b", NINE_SEGMENTS, ".hidden", "x" * 129]
BAD_KEYS = [*BAD_PREFIXES, "", "a/"]


class ClientWentAway(Exception):
    """What a caller's chunk iterator raises part-way (an upload cut off)."""


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def failing_after(limit: int, chunk_size: int = 700_001) -> Iterator[bytes]:
    sent = 0
    while sent < limit:
        yield b"\0" * chunk_size
        sent += chunk_size
    raise ClientWentAway


def s3_store(endpoint: S3Endpoint, bucket: str, **sizes: int) -> S3BlobStore:
    return S3BlobStore(
        bucket, STORE_PREFIX, endpoint_url=endpoint.url, region=endpoint.region, **sizes
    )


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    endpoint: S3Endpoint = request.getfixturevalue("s3_endpoint")
    bucket: str = request.getfixturevalue("s3_bucket")
    # Small multipart sizes (the S3 minimum), so that a 12 MiB object takes three parts.
    return s3_store(endpoint, bucket, multipart_threshold=5 * MiB, part_size=5 * MiB)


def leftovers(store: BlobStore) -> list[str]:
    """Everything the backend holds: objects, temp files and pending multipart uploads."""
    if isinstance(store, LocalBlobStore):
        return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())
    assert isinstance(store, S3BlobStore)
    pages = store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket)
    objects = [item["Key"] for page in pages for item in page.get("Contents", [])]
    uploads = store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
    return sorted(objects + [f"pending upload {u['Key']}" for u in uploads])


def put_all(store: BlobStore, sizes: dict[str, int]) -> None:
    for key, size in sizes.items():
        store.put(key, [payload(size)])


class TestRoundTrip:
    @pytest.mark.parametrize(
        ("size", "chunk_size"), [(0, 1), (1, 1), (5000, 333), (3 * MiB + 7, 123_457)]
    )
    def test_put_then_get_returns_the_same_bytes(
        self, store: BlobStore, size: int, chunk_size: int
    ) -> None:
        data = payload(size)
        assert store.put("samples/org-1/obj", chunked(data, chunk_size)) == size
        assert b"".join(store.get("samples/org-1/obj")) == data
        assert store.size("samples/org-1/obj") == size
        assert store.exists("samples/org-1/obj")

    def test_get_streams_chunks_of_at_most_one_mib(self, store: BlobStore) -> None:
        data = payload(3 * MiB + 5)
        store.put("k", [data])
        chunks = list(store.get("k"))
        assert len(chunks) >= 4
        assert max(len(c) for c in chunks) <= CHUNK_SIZE
        assert b"".join(chunks) == data

    def test_a_stream_closed_part_way_ends(self, store: BlobStore) -> None:
        store.put("k", [payload(3 * MiB)])
        stream = store.get("k")
        assert isinstance(stream, BlobStream)
        assert len(next(stream)) == CHUNK_SIZE
        stream.close()
        with pytest.raises(StopIteration):
            next(stream)

    @pytest.mark.parametrize("key", ["x" * 128, "/".join("abcdefgh"), "A.b-c_d/0", "v1.2"])
    def test_keys_at_the_limits_are_accepted(self, store: BlobStore, key: str) -> None:
        store.put(key, [b"data"])
        assert b"".join(store.get(key)) == b"data"
        assert [info.key for info in store.list()] == [key]

    def test_overwrite_replaces_the_object(self, store: BlobStore) -> None:
        store.put("k", [b"first version, longer"])
        store.put("k", [b"second"])
        assert b"".join(store.get("k")) == b"second"
        assert list(store.list()) == [BlobInfo("k", 6)]


class TestLargeObject:
    def test_twelve_mib_in_odd_chunks_goes_through_multipart(self, store: BlobStore) -> None:
        data = payload(12 * MiB + 3, seed=7)
        assert store.put("big", chunked(data, 777_777)) == len(data)
        assert b"".join(store.get("big")) == data
        assert store.size("big") == len(data)
        if isinstance(store, S3BlobStore):
            head = store.client.head_object(Bucket=store.bucket, Key=f"{STORE_PREFIX}/big")
            # A multipart object's ETag ends in "-<number of parts>": 5 + 5 + 2 MiB.
            assert head["ETag"].strip('"').endswith("-3")


class TestMissing:
    def test_get_raises_blob_not_found_before_iterating(self, store: BlobStore) -> None:
        with pytest.raises(BlobNotFound, match="nope") as info:
            store.get("nope")
        assert info.value.status_code == 404
        # A 404 a client may see: it names the key, never where the store is.
        assert store.url not in info.value.message
        assert "file://" not in info.value.message
        assert "s3://" not in info.value.message

    def test_size_is_none_and_exists_false(self, store: BlobStore) -> None:
        assert store.size("nope") is None
        assert not store.exists("nope")

    def test_a_folder_of_keys_is_not_itself_a_blob(self, store: BlobStore) -> None:
        store.put("a/b", [b"x"])
        assert not store.exists("a")
        with pytest.raises(BlobNotFound):
            store.get("a")
        store.delete("a")
        assert store.exists("a/b")


class TestDelete:
    def test_delete_removes_and_is_idempotent(self, store: BlobStore) -> None:
        store.put("k", [b"x"])
        store.delete("k")
        assert not store.exists("k")
        store.delete("k")
        store.delete("never/existed")
        assert leftovers(store) == []

    def test_delete_prefix_removes_exactly_that_prefix(self, store: BlobStore) -> None:
        put_all(store, {"a/1": 1, "a/2": 2, "ab/3": 3, "b/a/4": 4})
        assert store.delete_prefix("a/") == 2
        assert [info.key for info in store.list()] == ["ab/3", "b/a/4"]

    def test_delete_prefix_is_a_string_prefix(self, store: BlobStore) -> None:
        put_all(store, {"org-1/x": 1, "org-10/y": 1, "org-2/z": 1})
        assert store.delete_prefix("org-1") == 2
        assert [info.key for info in store.list()] == ["org-2/z"]

    def test_delete_prefix_of_nothing_and_of_everything(self, store: BlobStore) -> None:
        put_all(store, {"a/1": 1, "b/2": 2, "c": 3})
        assert store.delete_prefix("zzz/") == 0
        assert store.delete_prefix("") == 3
        assert list(store.list()) == []


class TestList:
    SIZES: ClassVar[dict[str, int]] = {
        "top": 0,
        "a/1": 1,
        "a/2": 22,
        "a.b": 5,
        "ab/3": 333,
        "b/c/4": 4444,
    }

    @pytest.mark.parametrize(
        ("prefix", "expected"),
        [
            ("", ["a.b", "a/1", "a/2", "ab/3", "b/c/4", "top"]),
            ("a/", ["a/1", "a/2"]),
            ("a", ["a.b", "a/1", "a/2", "ab/3"]),
            ("b/c/", ["b/c/4"]),
            ("b/c/4", ["b/c/4"]),
            ("zzz", []),
            ("zzz/deeper/", []),
        ],
    )
    def test_exact_keys_and_sizes_in_key_order(
        self, store: BlobStore, prefix: str, expected: list[str]
    ) -> None:
        put_all(store, self.SIZES)
        assert list(store.list(prefix)) == [BlobInfo(key, self.SIZES[key]) for key in expected]


class TestInvalidKeys:
    @pytest.mark.parametrize("key", BAD_KEYS)
    def test_every_key_method_refuses(self, store: BlobStore, key: str) -> None:
        calls: list[Callable[[], Any]] = [
            lambda: store.put(key, [b"x"]),
            lambda: store.get(key),
            lambda: store.size(key),
            lambda: store.exists(key),
            lambda: store.delete(key),
        ]
        for call in calls:
            with pytest.raises(InvalidBlobKey) as info:
                call()
            assert info.value.status_code == 400
        assert leftovers(store) == []

    @pytest.mark.parametrize("prefix", BAD_PREFIXES)
    def test_every_prefix_method_refuses(self, store: BlobStore, prefix: str) -> None:
        store.put("a/b", [b"x"])
        with pytest.raises(InvalidBlobKey):
            store.list(prefix)
        with pytest.raises(InvalidBlobKey):
            store.delete_prefix(prefix)
        assert store.exists("a/b")

    def test_validate_key_returns_a_good_key(self) -> None:
        assert validate_key("samples/org-1/abc.enc") == "samples/org-1/abc.enc"


class TestFailedPut:
    # Below the 5 MiB multipart threshold, and past it (S3: an upload with a part stored).
    @pytest.mark.parametrize("fail_after", [100_000, 11 * MiB])
    def test_a_failing_chunk_iterator_leaves_nothing(
        self, store: BlobStore, fail_after: int
    ) -> None:
        with pytest.raises(ClientWentAway):
            store.put("k", failing_after(fail_after))
        assert not store.exists("k")
        assert leftovers(store) == []

    def test_a_failed_overwrite_keeps_the_old_object(self, store: BlobStore) -> None:
        store.put("k", [b"old"])
        with pytest.raises(ClientWentAway):
            store.put("k", failing_after(7 * MiB))
        assert b"".join(store.get("k")) == b"old"


MOTO_IN_A_CHILD = textwrap.dedent(
    """
    import sys
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    sys.stdin.read()  # serve until the test process closes this pipe (or dies)
    server.stop()
    """
)
OBJECT_SIZE = 64 * MiB


@pytest.fixture(scope="module")
def child_s3_endpoint(s3_endpoint: S3Endpoint) -> Iterator[S3Endpoint]:
    """moto in a child process: moto holds whole objects in memory, and tracemalloc in this
    process must count only what the client side holds."""
    with subprocess.Popen(
        [sys.executable, "-c", MOTO_IN_A_CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdin is not None
        assert child.stdout is not None
        port = int(child.stdout.readline())
        yield S3Endpoint(f"http://127.0.0.1:{port}", s3_endpoint.region)
        child.terminate()  # the stdin pipe ends it too, should this process die first


@pytest.fixture(params=["local", "s3"])
def measured_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    endpoint: S3Endpoint = request.getfixturevalue("child_s3_endpoint")
    endpoint.client("s3").create_bucket(Bucket="measured")
    return s3_store(endpoint, "measured", multipart_threshold=5 * MiB, part_size=5 * MiB)


def traced_peak(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


class TestBoundedMemory:
    def test_a_64_mib_object_streams_both_ways(self, measured_store: BlobStore) -> None:
        block = payload(CHUNK_SIZE)  # the same bytes over and over: the generator holds nothing

        def put() -> None:
            measured_store.put("big", (block for _ in range(OBJECT_SIZE // CHUNK_SIZE)))

        def get() -> None:
            for chunk in measured_store.get("big"):
                assert chunk  # consumed and dropped, as a streaming response does

        # Also makes the S3 client, whose one-off loading of the service model is not per-object.
        assert measured_store.size("big") is None
        put_peak = traced_peak(put)
        get_peak = traced_peak(get)
        assert measured_store.size("big") == OBJECT_SIZE
        # S3 holds up to a part (5 MiB) plus a chunk, and a copy of the part being sent.
        assert put_peak < OBJECT_SIZE // 4, f"put peak {put_peak / MiB:.1f} MiB"
        assert get_peak < OBJECT_SIZE // 16, f"get peak {get_peak / MiB:.1f} MiB"


CRASH_MID_PUT = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from app.kit.blob.local import LocalBlobStore

    def chunks():
        yield b"x" * 1000
        os._exit(9)  # killed between write and rename: no cleanup runs

    LocalBlobStore(Path(sys.argv[1])).put("k", chunks())
    """
)


def open_handles(path: Path) -> int:
    """How many file descriptors of this process are open on path (Linux)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
        except FileNotFoundError:
            continue  # closed meanwhile (the listing's own descriptor, for one)
    return count


class TestLocalOnly:
    def test_files_are_0600_and_folders_0700(self, tmp_path: Path) -> None:
        store = LocalBlobStore(tmp_path / "blobs")
        store.put("a/b", [b"x"])
        assert stat.S_IMODE((store.root / "a" / "b").stat().st_mode) == 0o600
        assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
        assert stat.S_IMODE((store.root / "a").stat().st_mode) == 0o700

    def test_nothing_is_written_outside_the_root(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        system_temp = tmp_path / "system-temp"
        system_temp.mkdir()
        monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
        store = LocalBlobStore(tmp_path / "blobs")
        store.put("a/b", chunked(payload(3 * MiB), 100_000))
        with pytest.raises(ClientWentAway):
            store.put("a/c", failing_after(2 * MiB))
        store.delete("a/b")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["blobs", "system-temp"]
        assert list(system_temp.iterdir()) == []

    def test_a_crash_before_the_rename_leaves_a_stale_temp_file(self, tmp_path: Path) -> None:
        root = tmp_path / "blobs"
        crash = subprocess.run([sys.executable, "-c", CRASH_MID_PUT, str(root)], check=False)
        assert crash.returncode == 9
        store = LocalBlobStore(root)
        [stale] = store.stale_temp_files()
        assert stale.parent == root / ".tmp"
        assert list(store.list()) == []
        assert not store.exists("k")
        assert store.remove_stale_temp_files(older_than_seconds=3600) == 0
        an_hour_ago = time.time() - 3601
        os.utime(stale, (an_hour_ago, an_hour_ago))
        assert store.remove_stale_temp_files(older_than_seconds=3600) == 1
        assert store.stale_temp_files() == []

    def test_a_symlink_out_of_the_root_is_refused(self, tmp_path: Path) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        store = LocalBlobStore(tmp_path / "blobs")
        (store.root / "evil").symlink_to(outside)
        with pytest.raises(InvalidBlobKey, match="outside the store root"):
            store.put("evil/x", [b"x"])
        with pytest.raises(InvalidBlobKey):
            store.list("evil/")
        assert list(outside.iterdir()) == []

    def test_an_unread_download_releases_its_file(self, tmp_path: Path) -> None:
        store = LocalBlobStore(tmp_path / "blobs")
        store.put("k", [b"x"])
        streams = [store.get("k") for _ in range(5)]
        assert open_handles(store.root / "k") == 5
        del streams  # dropped unread, as when a client hangs up before the first byte
        gc.collect()
        assert open_handles(store.root / "k") == 0

    def test_a_key_under_an_existing_blob_fails_cleanly(self, tmp_path: Path) -> None:
        store = LocalBlobStore(tmp_path / "blobs")
        store.put("a", [b"blob a"])
        with pytest.raises(BlobStoreError, match="put of 'a/b'") as info:
            store.put("a/b", [b"x"])
        assert info.value.status_code == 500
        assert b"".join(store.get("a")) == b"blob a"
        assert store.stale_temp_files() == []


class TestS3Only:
    def test_objects_outside_the_store_prefix_are_untouched(
        self, s3_endpoint: S3Endpoint, s3_bucket: str
    ) -> None:
        raw = s3_endpoint.client("s3")
        raw.put_object(Bucket=s3_bucket, Key="other/x", Body=b"not ours")
        raw.put_object(Bucket=s3_bucket, Key="pre/fixture", Body=b"not ours either")
        store = s3_store(s3_endpoint, s3_bucket)
        store.put("k", [b"ours"])
        assert list(store.list()) == [BlobInfo("k", 4)]
        assert store.delete_prefix("") == 1
        keys = [item["Key"] for item in raw.list_objects_v2(Bucket=s3_bucket)["Contents"]]
        assert keys == ["other/x", "pre/fixture"]

    def test_delete_prefix_works_in_batches_past_one_thousand(
        self, s3_endpoint: S3Endpoint, s3_bucket: str
    ) -> None:
        raw = s3_endpoint.client("s3")
        for number in range(1005):
            raw.put_object(Bucket=s3_bucket, Key=f"{STORE_PREFIX}/many/{number:04d}", Body=b"")
        store = s3_store(s3_endpoint, s3_bucket)
        assert store.delete_prefix("many/") == 1005
        assert list(store.list()) == []

    def test_backend_errors_name_operation_location_and_code_not_secrets(
        self, s3_endpoint: S3Endpoint
    ) -> None:
        store = s3_store(s3_endpoint, "mip-no-such-bucket")
        with pytest.raises(BlobStoreError) as info:
            store.put("k", [b"x"])
        message = info.value.message
        assert message == "S3 put of s3://mip-no-such-bucket/pre/fix/k failed: NoSuchBucket"
        assert os.environ["AWS_SECRET_ACCESS_KEY"] not in message
        with pytest.raises(BlobStoreError, match=r"S3 get .* NoSuchBucket"):
            store.get("k")

    def test_client_has_explicit_timeouts_and_retries(self, s3_endpoint: S3Endpoint) -> None:
        config = s3_store(s3_endpoint, "mip-any").client.meta.config
        assert (config.connect_timeout, config.read_timeout) == (5, 30)
        # botocore reads max_attempts=5 as 5 retries: 6 attempts in all.
        assert config.retries == {"mode": "standard", "total_max_attempts": 6}

    @pytest.mark.parametrize(
        ("part_size", "threshold", "refused"),
        [
            (5 * MiB - 1, 8 * MiB, "part_size"),
            (6 * 1024 * MiB, 8 * MiB, "part_size"),
            (8 * MiB, 0, "multipart_threshold"),
        ],
    )
    def test_sizes_s3_would_refuse_are_refused(
        self, part_size: int, threshold: int, refused: str
    ) -> None:
        with pytest.raises(ValueError, match=refused):
            S3BlobStore("mip-any", part_size=part_size, multipart_threshold=threshold)


class TestOpenBlobStore:
    def test_default_url_is_the_blobs_folder_of_the_data_dir(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        url = default_blob_url(Path("var"))
        assert url == (tmp_path / "var" / "blobs").resolve().as_uri()
        store = open_blob_store(url)
        assert isinstance(store, LocalBlobStore)
        assert store.root.is_dir()

    def test_file_url_with_an_absolute_path(self, tmp_path: Path) -> None:
        for url in (tmp_path.as_uri(), f"file:{tmp_path}", f"file://localhost{tmp_path}"):
            store = open_blob_store(url)
            assert isinstance(store, LocalBlobStore)
            assert store.root == tmp_path.resolve()
            assert store.url == tmp_path.resolve().as_uri()

    @pytest.mark.parametrize(
        ("url", "bucket", "prefix", "display"),
        [
            ("s3://mip-blobs", "mip-blobs", "", "s3://mip-blobs"),
            ("s3://mip-blobs/", "mip-blobs", "", "s3://mip-blobs"),
            ("s3://mip-blobs/pre/fix/", "mip-blobs", "pre/fix", "s3://mip-blobs/pre/fix"),
        ],
    )
    def test_s3_url(self, url: str, bucket: str, prefix: str, display: str) -> None:
        store = open_blob_store(url, endpoint_url="http://127.0.0.1:9", region="eu-west-1")
        assert isinstance(store, S3BlobStore)
        assert (store.bucket, store.prefix, store.url) == (bucket, prefix, display)
        assert (store.endpoint_url, store.region) == ("http://127.0.0.1:9", "eu-west-1")

    def test_s3_url_reaches_the_store(self, s3_endpoint: S3Endpoint, s3_bucket: str) -> None:
        store = open_blob_store(
            f"s3://{s3_bucket}/pre/fix", endpoint_url=s3_endpoint.url, region=s3_endpoint.region
        )
        store.put("k", [b"hello"])
        assert b"".join(store.get("k")) == b"hello"

    @pytest.mark.parametrize(
        ("url", "reason"),
        [
            ("file://relative/path", "absolute path"),
            ("file:relative/path", "must be absolute"),
            ("/var/lib/mip", "unsupported .* scheme"),
            ("", "unsupported .* scheme"),
            ("http://example.com/blobs", "unsupported .* scheme"),
            ("s3://", "not a valid bucket"),
            ("s3://Upper_Case", "not a valid bucket"),
            ("s3://mip-blobs/../x", "prefix"),
            ("s3://mip-blobs/a b", "prefix"),
            ("s3://mip-blobs/p?versioning=1", "query"),
        ],
    )
    def test_bad_urls_are_refused_with_the_accepted_forms(self, url: str, reason: str) -> None:
        with pytest.raises(InvalidBlobStoreUrl, match=reason) as info:
            open_blob_store(url)
        assert info.value.status_code == 400

    def test_credentials_in_the_url_are_refused_and_not_echoed(self) -> None:
        with pytest.raises(InvalidBlobStoreUrl, match="credentials") as info:
            open_blob_store("s3://AKIAEXAMPLE:s3cr3t@mip-blobs/x")
        assert "s3cr3t" not in info.value.message
        assert "AKIAEXAMPLE" not in info.value.message
