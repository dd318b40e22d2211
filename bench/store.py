"""The encrypted sample store on the local backend, against raw AES-256-GCM plus a raw file write.

Prints one JSON object of figures on stdout; progress goes to stderr::

    .venv/bin/python -m bench.store [--sizes 1 5] [--runs N] [--requests 300]

Everything lives in a temporary directory (blobs, SQLite database, key file) removed at the
end. What each figure means: docs/benchmarks.md, section "Sample store".
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from rich.console import Console
from sqlalchemy.orm import Session, sessionmaker

from app.consent.service import resolve_opt_out
from app.kit.blob.local import LocalBlobStore
from app.kit.crypto import LocalKeyProvider, decrypt_stream, encode_context, encrypt_stream
from app.kit.db import create_db_engine, make_sessionmaker, session_scope
from app.ledger.schemas import LedgerEventIn
from app.ledger.service import record_request
from app.samples.runtime import SampleStore
from app.samples.service import blob_key, candidate_for, keep_for
from app.sampling.policy import SamplingConfig, SamplingPolicy, sampling_score
from app.tenancy import service as tenancy
from migrations.run import upgrade

console = Console(stderr=True)
MB = 1 << 20
TARGET_RATIO = 0.7  # the store should reach 70% of raw AES-GCM + raw durable file write
SECRET = b"bench-sampling-secret"
CREATED = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
WARMUP_ROUNDS = 5


def _median_mb_s(size: int, seconds: list[float]) -> float:
    return round(size / MB / statistics.median(seconds), 1)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RawBaseline:
    """AES-256-GCM in one call and a file written with the store's durability: fsync, rename."""

    def __init__(self, root: Path, key: bytes, aad: bytes) -> None:
        self.root = root
        self.root.mkdir()
        self.aead = AESGCM(key)
        self.aad = aad

    def put(self, name: str, payload: bytes) -> float:
        start = time.perf_counter()
        nonce = os.urandom(12)
        sealed = nonce + self.aead.encrypt(nonce, payload, self.aad)
        temp = self.root / f"{name}.part"
        with open(temp, "wb") as handle:
            handle.write(sealed)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.root / name)
        _fsync_folder(self.root)
        return time.perf_counter() - start

    def get(self, name: str) -> tuple[float, bytes]:
        start = time.perf_counter()
        sealed = (self.root / name).read_bytes()
        plaintext = self.aead.decrypt(sealed[:12], sealed[12:], self.aad)
        return time.perf_counter() - start, plaintext


class StorePath:
    """What the sample store does to one object: segmented encryption into an atomic local put."""

    def __init__(self, root: Path, key: bytes, organization_id: uuid.UUID) -> None:
        self.blobs = LocalBlobStore(root)
        self.key = key
        self.organization_id = organization_id

    def _name_and_context(self, sample_id: uuid.UUID) -> tuple[str, dict[str, str]]:
        name = blob_key(self.organization_id, sample_id, "audio")  # the store's own layout
        context = {"org": str(self.organization_id), "sample": str(sample_id), "kind": "audio"}
        return name, context

    def put(self, sample_id: uuid.UUID, payload: bytes) -> float:
        name, context = self._name_and_context(sample_id)
        start = time.perf_counter()
        chunks = encrypt_stream([payload], key=self.key, key_version=1, context=context)
        self.blobs.put(name, chunks)
        return time.perf_counter() - start

    def get(self, sample_id: uuid.UUID) -> tuple[float, bytes]:
        name, context = self._name_and_context(sample_id)
        start = time.perf_counter()
        plaintext = b"".join(
            decrypt_stream(self.blobs.get(name), key_for=lambda _v: self.key, context=context)
        )
        return time.perf_counter() - start, plaintext

    def delete(self, sample_id: uuid.UUID) -> None:
        self.blobs.delete(self._name_and_context(sample_id)[0])


def _ratio_figures(size: int, store: list[float], raw: list[float]) -> dict[str, Any]:
    store_mb_s, raw_mb_s = _median_mb_s(size, store), _median_mb_s(size, raw)
    ratio = round(store_mb_s / raw_mb_s, 3)
    return {
        "store_mb_s": store_mb_s,
        "baseline_mb_s": raw_mb_s,
        "ratio": ratio,
        "target_ratio": TARGET_RATIO,
        "target_met": ratio >= TARGET_RATIO,
        "store_ms_median": round(statistics.median(store) * 1e3, 2),
        "baseline_ms_median": round(statistics.median(raw) * 1e3, 2),
    }


def bench_throughput(workdir: Path, size_mb: int, runs: int) -> dict[str, Any]:
    """Put and get of one object, store and baseline interleaved (order swapped every run)."""
    size = size_mb * MB
    payload = os.urandom(size)
    key = os.urandom(32)
    organization_id = uuid.uuid4()
    store = StorePath(workdir / f"store-{size_mb}mb", key, organization_id)
    baseline = RawBaseline(
        workdir / f"raw-{size_mb}mb", key, encode_context({"org": str(organization_id)})
    )
    times: dict[str, list[float]] = {"store_put": [], "raw_put": [], "store_get": [], "raw_get": []}
    # Untimed rounds first: the allocator needs a few large buffers before it stops handing out
    # fresh (page-faulting) memory, which otherwise slows the first dozens of decrypts 10x.
    for run in range(-WARMUP_ROUNDS, runs):
        sample_id = uuid.uuid4()
        order = ("store", "raw") if run % 2 == 0 else ("raw", "store")
        for path in order:
            if path == "store":
                put = store.put(sample_id, payload)
                got, plaintext = store.get(sample_id)
            else:
                put = baseline.put(sample_id.hex, payload)
                got, plaintext = baseline.get(sample_id.hex)
            if plaintext != payload:
                raise RuntimeError(f"{path} path returned other bytes than it was given")
            if run >= 0:
                times[f"{path}_put"].append(put)
                times[f"{path}_get"].append(got)
        store.delete(sample_id)
        (baseline.root / sample_id.hex).unlink()
    console.log(f"{size_mb} MB: {runs} runs done")
    return {
        "runs": runs,
        "put": _ratio_figures(size, times["store_put"], times["raw_put"]),
        "get": _ratio_figures(size, times["store_get"], times["raw_get"]),
    }


def _ledger_database(workdir: Path) -> tuple[sessionmaker[Session], uuid.UUID]:
    url = f"sqlite:///{workdir / 'mip.sqlite3'}"
    upgrade(url)
    factory = make_sessionmaker(create_db_engine(url))
    with session_scope(factory) as session:
        org = tenancy.create_organization(session, name="Bench", plan="growth", actor="bench")
        project = tenancy.create_project(
            session, organization_id=org.id, name="Bench project", actor="bench"
        )
    return factory, project.id


def _event(project_id: uuid.UUID, request_id: str) -> LedgerEventIn:
    return LedgerEventIn(
        request_id=request_id, project_id=project_id, created=CREATED, model="general", duration=60
    )


def _per_call(call: Callable[[], object], count: int) -> float:
    """Seconds per call, the best of five loops of ``count`` (CPU-bound: least disturbed)."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(count):
            call()
        best = min(best, (time.perf_counter() - start) / count)
    return best


def bench_unsampled_request(
    factory: sessionmaker[Session], project_id: uuid.UUID, requests: int
) -> dict[str, Any]:
    """What the store adds to recording a request it does not keep: load the rates, decide."""
    config = SamplingConfig(secret=SECRET, default_rate=0.0)  # nothing is selected
    record_seconds: list[float] = []
    for index in range(requests + 10):
        event = _event(project_id, f"unsampled-{index}")
        start = time.perf_counter()
        with session_scope(factory) as session:
            entry = record_request(session, event, sampling=config)
        if index >= 10:  # the first few warm the connection pool and statement caches
            record_seconds.append(time.perf_counter() - start)
        if entry.sample_selected:
            raise RuntimeError("a request was selected at sampling rate 0")
    with session_scope(factory) as session:
        policy = SamplingPolicy.load(session, config)
        load_s = _per_call(lambda: SamplingPolicy.load(session, config), 200)
    organization_id = uuid.uuid4()
    decide_s = _per_call(
        lambda: policy.decide(
            organization_id=organization_id,
            model_name="general",
            request_id="req-0123456789abcdef",
            opt_out=resolve_opt_out(None, contract_opt_out=False),
            http_status=200,
        ),
        20_000,
    )
    score_s = _per_call(lambda: sampling_score(SECRET, "req-0123456789abcdef"), 20_000)
    record_ms = statistics.median(record_seconds) * 1e3
    added_ms = (load_s + decide_s) * 1e3
    console.log(f"record_request: {requests} unsampled requests done")
    return {
        "requests": requests,
        "record_request_ms_median": round(record_ms, 3),
        "sampling_rates_load_ms": round(load_s * 1e3, 4),
        "decide_us": round(decide_s * 1e6, 2),
        "sampling_score_us": round(score_s * 1e6, 2),
        "store_added_ms": round(added_ms, 4),
        "store_added_share": round(added_ms / record_ms, 4),
    }


def _wav_of(size: int) -> bytes:
    """A 16 kHz mono 16-bit WAV of about ``size`` bytes: a tone in noise (SNR is measured)."""
    frames = size // 2
    moment = np.arange(frames) / 16_000
    rng = np.random.default_rng(7)
    signal = 0.3 * np.sin(2 * np.pi * 220 * moment) + 0.02 * rng.standard_normal(frames)
    buffer = io.BytesIO()
    soundfile.write(buffer, signal.astype(np.float32), 16_000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def bench_store_sample(
    workdir: Path, factory: sessionmaker[Session], project_id: uuid.UUID, runs: int
) -> dict[str, Any]:
    """keep_for end to end: guards, audio decode, SNR, data key, encrypt, put, catalog row."""
    audio = _wav_of(MB)
    config = SamplingConfig(secret=SECRET, default_rate=1.0)  # every request is selected
    store = SampleStore(
        blobs=LocalBlobStore(workdir / "samples"),
        keys=LocalKeyProvider(workdir / "keys.json"),
        max_bytes=64 * MB,
        max_seconds=3600.0,
    )
    seconds: list[float] = []
    for index in range(runs + 1):
        request_id = f"kept-{index}"
        with session_scope(factory) as session:
            record_request(session, _event(project_id, request_id), sampling=config)
        start = time.perf_counter()
        with session_scope(factory) as session:
            entry = candidate_for(session, project_id=project_id, request_id=request_id)
            keep_for(session, store, entry, audio=audio, response=b'{"results": {}}')
        if index > 0:  # the first creates the organization's data key
            seconds.append(time.perf_counter() - start)
    console.log(f"keep_for: {runs} samples done")
    return {
        "runs": runs,
        "audio_bytes": len(audio),
        "ms_median": round(statistics.median(seconds) * 1e3, 2),
        "mb_s": _median_mb_s(len(audio), seconds),
    }


def _machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cryptography": importlib.metadata.version("cryptography"),
    }


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.store", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1, 5], help="object sizes in MB (default 1 5)"
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=None,
        help="timed runs per size (default 30 up to 1 MB, 15 above)",
    )
    parser.add_argument(
        "--requests", type=int, default=300, help="unsampled requests recorded (default 300)"
    )
    parser.add_argument(
        "--sample-runs", type=int, default=10, help="keep_for end-to-end runs (default 10)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mip-bench-store-") as temp:
        workdir = Path(temp)
        console.log(f"working in {workdir}")
        throughput = {
            f"{size}mb": bench_throughput(workdir, size, args.runs or (30 if size <= 1 else 15))
            for size in args.sizes
        }
        factory, project_id = _ledger_database(workdir)
        unsampled = bench_unsampled_request(factory, project_id, args.requests)
        end_to_end = bench_store_sample(workdir, factory, project_id, args.sample_runs)
    result = {
        "machine": _machine(),
        "parameters": {
            "sizes_mb": args.sizes,
            "runs": args.runs,
            "requests": args.requests,
            "sample_runs": args.sample_runs,
            "backend": "local",
            "database": "sqlite",
        },
        "throughput": throughput,
        "unsampled_request": unsampled,
        "store_sample_1mb_wav": end_to_end,
    }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
