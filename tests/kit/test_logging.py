"""Structured logs: one JSON line per request carrying its id; no key or query value, ever."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from app.kit.logging import JSONFormatter
from tests.conftest import Database, Tenant, make_staff_key
from tests.ledger.helpers import event, ledger_count


@dataclass(frozen=True)
class Answer:
    status: int
    request_id: str


def call(url: str, *, method: str = "GET", key: str, body: Any = None) -> Answer:
    """A real HTTP request (urllib: no client-side logging to confuse the check)."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Token {key}", "Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Answer(response.status, response.headers["dg-request-id"])
    except urllib.error.HTTPError as exc:
        with exc:
            return Answer(exc.code, exc.headers["dg-request-id"])


def json_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(line) for line in caplog.text.splitlines() if line.strip()]


def access_lines(caplog: pytest.LogCaptureFixture, count: int) -> list[dict[str, Any]]:
    # The access line is written after the response is sent: wait for it rather than race it.
    deadline = time.monotonic() + 5
    while True:
        lines = [
            r for r in json_lines(caplog) if r["logger"] == "mip.http" and r["msg"] == "request"
        ]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


class TestRequestLogs:
    def test_lines_carry_request_id_and_no_secrets(
        self,
        live_server: str,
        db: Database,
        tenant: Tenant,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.handler.setFormatter(JSONFormatter())
        caplog.set_level(logging.INFO)
        admin_key = make_staff_key(db, "admin")["Authorization"].split()[1]
        unknown_key = uuid.uuid4().hex + "feedbeef"
        query_values = [f"qv{uuid.uuid4().hex}" for _ in range(3)]
        ingest_path = "/v1/governance/ledger/events"

        ingest = call(
            f"{live_server}{ingest_path}?note={query_values[0]}&mip_opt_out={query_values[1]}",
            method="POST",
            key=admin_key,
            body={"events": [event(tenant.project_id, "r1")]},
        )
        refused = call(
            f"{live_server}/v1/governance/audit/entries?action={query_values[2]}",
            key=tenant.key,
        )
        unknown = call(f"{live_server}/v1/governance/prices", key=unknown_key)

        assert (ingest.status, refused.status, unknown.status) == (200, 403, 401)
        assert ledger_count(db) == 1
        lines = access_lines(caplog, 3)
        by_id = {line["request_id"]: line for line in lines}
        assert by_id[ingest.request_id]["path"] == ingest_path
        assert by_id[ingest.request_id]["status"] == 200
        assert by_id[ingest.request_id]["method"] == "POST"
        assert by_id[refused.request_id]["status"] == 403
        assert by_id[unknown.request_id]["status"] == 401
        assert len({ingest.request_id, refused.request_id, unknown.request_id}) == 3

        everything = caplog.text
        assert everything.count(ingest.request_id) >= 1
        for secret in (admin_key, tenant.key, unknown_key, *query_values):
            assert secret not in everything
        # Not even a prefix of a key (the first 8 characters are the key's stored prefix).
        assert admin_key[:12] not in everything
        assert all("?" not in line.get("path", "") for line in json_lines(caplog))

    def test_lines_outside_a_request_have_no_request_id(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.handler.setFormatter(JSONFormatter())
        caplog.set_level(logging.INFO)
        logging.getLogger("mip.test").info("outside", extra={"fields": {"n": 1}})
        (line,) = [r for r in json_lines(caplog) if r["logger"] == "mip.test"]
        assert (line["msg"], line["request_id"], line["n"], line["level"]) == (
            "outside",
            "-",
            1,
            "INFO",
        )
