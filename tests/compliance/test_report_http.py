"""The compliance report over HTTP and the command line: roles, dates, formats, exit codes
(SQLite and PostgreSQL, a real sample store)."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import orjson
import pytest
from pypdf import PdfReader

from app.compliance.report import MAX_DAYS, InvalidReportPeriod, ReportPeriod, verify_report
from app.kit.crypto.signing import SigningKey, load_public_key
from app.kit.settings import Settings
from tests.compliance.test_report import END, FIRST, REPORT, ingest, keep
from tests.conftest import make_staff_key
from tests.samples.conftest import Service, cli_env, mip, service, speech

__all__ = ["cli_env", "service", "speech"]  # fixtures used by the tests below


class TestHttp:
    @pytest.mark.parametrize("role", ["dataops", "billing"])
    def test_other_staff_roles_are_refused(self, service: Service, role: str) -> None:
        response = service.client.get(
            REPORT,
            params={"from": FIRST, "to": END},
            headers=make_staff_key(service.db, role),
        )
        assert response.status_code == 403
        body = response.json()
        assert set(body) == {"err_code", "err_msg", "request_id"}
        assert "auditor" in body["err_msg"]

    def test_project_keys_and_anonymous_callers_are_refused(self, service: Service) -> None:
        params = {"from": FIRST, "to": END}
        project = service.client.get(REPORT, params=params, headers=service.tenant.headers)
        assert project.status_code == 403
        anonymous = service.client.get(REPORT, params=params)
        assert anonymous.status_code == 401
        assert set(anonymous.json()) == {"err_code", "err_msg", "request_id"}

    @pytest.mark.parametrize(
        ("first", "end", "message"),
        [
            ("2026-13-01", "2026-12-01", "not a calendar date"),
            ("2026-11-31", "2026-12-01", "not a calendar date"),
            ("20261101", "2026-12-01", "YYYY-MM-DD"),
            ("2026-11-01T00:00", "2026-12-01", "query parameter 'from'"),
            ("2026-12-01", "2026-11-01", "must be after"),
            ("2026-12-01", "2026-12-01", "must be after"),
            ("2025-01-01", "2026-01-03", f"at most {MAX_DAYS}"),
        ],
    )
    def test_bad_periods_are_400s(
        self, service: Service, first: str, end: str, message: str
    ) -> None:
        response = service.client.get(
            REPORT, params={"from": first, "to": end}, headers=service.admin
        )
        assert response.status_code == 400, response.text
        body = response.json()
        assert set(body) == {"err_code", "err_msg", "request_id"}
        assert body["err_code"] == "Bad Request"
        assert message in body["err_msg"]

    def test_missing_dates_and_unknown_formats_are_400s(self, service: Service) -> None:
        missing = service.client.get(REPORT, params={"from": FIRST}, headers=service.admin)
        assert missing.status_code == 400
        assert "'to'" in missing.json()["err_msg"]
        unknown = service.client.get(
            REPORT, params={"from": FIRST, "to": END, "format": "docx"}, headers=service.admin
        )
        assert unknown.status_code == 400
        assert "format" in unknown.json()["err_msg"]

    @pytest.mark.parametrize(
        ("fmt", "media_type", "magic"),
        [
            ("json", "application/json", b"{"),
            ("html", "text/html; charset=utf-8", b"<!DOCTYPE html>"),
            ("pdf", "application/pdf", b"%PDF-"),
        ],
    )
    def test_each_format_for_an_auditor(
        self, service: Service, fmt: str, media_type: str, magic: bytes
    ) -> None:
        response = service.client.get(
            REPORT,
            params={"from": FIRST, "to": END, "format": fmt},
            headers=make_staff_key(service.db, "auditor"),
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == media_type
        assert response.content.startswith(magic)
        assert f"compliance-report-{FIRST}-{END}.{fmt}" in response.headers["content-disposition"]

    def test_the_openapi_documents_the_endpoint(self, service: Service) -> None:
        operation = service.client.get("/openapi.json").json()["paths"][REPORT]["get"]
        assert {"400", "401", "403", "200"} <= set(operation["responses"])
        assert set(operation["responses"]["200"]["content"]) == {
            "application/json",
            "text/html",
            "application/pdf",
        }
        assert {p["name"] for p in operation["parameters"]} == {"from", "to", "format"}


class TestDays:
    def test_requests_count_on_their_utc_day_and_outside_rows_are_left_out(
        self, service: Service
    ) -> None:
        period = ReportPeriod.parse("2026-11-01", "2026-11-03")
        at = dt.datetime(2026, 11, 1, 23, 59, 59, 999999, tzinfo=dt.UTC)
        ingest(service, service.tenant, "late-on-the-1st", created=at)
        ingest(
            service,
            service.tenant,
            "early-on-the-2nd",
            created=at + dt.timedelta(microseconds=1),
            opt_out="true",
        )
        ingest(service, service.tenant, "the-3rd", created=at + dt.timedelta(days=1, seconds=1))
        ingest(service, service.tenant, "before", created=at - dt.timedelta(days=1))
        # Written in another zone: the same instant, counted on its UTC day.
        plus_two = dt.timezone(dt.timedelta(hours=2))
        ingest(
            service,
            service.tenant,
            "zoned",
            created=dt.datetime(2026, 11, 2, 1, 30, tzinfo=plus_two),  # 23:30 UTC on the 1st
        )
        report = service.client.get(
            REPORT, params={"from": "2026-11-01", "to": "2026-11-03"}, headers=service.admin
        ).json()["report"]
        assert report["opt_out"]["daily"] == [
            {"day": "2026-11-01", "opted_in": 2, "opted_out": 0},
            {"day": "2026-11-02", "opted_in": 0, "opted_out": 1},
        ]
        assert period.days == ["2026-11-01", "2026-11-02"]

    def test_a_period_parses_whole_utc_days(self) -> None:
        period = ReportPeriod.parse("2024-01-01", "2025-01-01")
        assert len(period.days) == MAX_DAYS
        assert period.window.start == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        assert period.window.end == dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
        with pytest.raises(InvalidReportPeriod, match="at most"):
            ReportPeriod.parse("2024-01-01", "2025-01-02")
        with pytest.raises(InvalidReportPeriod, match="YYYY-MM-DD"):
            ReportPeriod.parse("2024-1-1", "2025-01-01")


class TestCli:
    def test_a_pdf_and_a_json_report_from_the_command_line(
        self, service: Service, cli_env: Settings, speech: bytes, tmp_path: Path
    ) -> None:
        keep(service, service.tenant, "cli", speech)
        target = tmp_path / "report.pdf"
        result = mip(
            "compliance",
            "report",
            "--from",
            FIRST,
            "--to",
            END,
            "--format",
            "pdf",
            "--output",
            str(target),
        )
        assert result.exit_code == 0, result.output
        assert "checks pass" in result.stderr
        assert len(PdfReader(target).pages) >= 10
        printed = mip("compliance", "report", "--from", FIRST, "--to", END, "--format", "json")
        assert printed.exit_code == 0, printed.output
        bundle = orjson.loads(printed.stdout)
        signer: SigningKey = service.app.state.signer
        assert verify_report(bundle, load_public_key(signer.public_key_pem()))
        assert bundle["report"]["generated_by"].startswith("cli:")

    def test_bad_input_exits_2_and_a_failing_check_exits_1(
        self, service: Service, cli_env: Settings, speech: bytes, tmp_path: Path
    ) -> None:
        bad = mip("compliance", "report", "--from", "2026-12-01", "--to", "2026-11-01")
        assert bad.exit_code == 2
        assert "must be after" in bad.stderr
        no_file = mip("compliance", "report", "--from", FIRST, "--to", END, "--format", "pdf")
        assert no_file.exit_code == 2
        keep(service, service.tenant, "orphaned", speech)
        service.store.blobs.put(f"orgs/{uuid.uuid4()}/samples/x.audio", [b"stray"])
        target = tmp_path / "report.html"
        failed = mip(
            "compliance",
            "report",
            "--from",
            FIRST,
            "--to",
            END,
            "--format",
            "html",
            "--output",
            str(target),
        )
        assert failed.exit_code == 1
        assert "Objects in the store that no sample refers to" in failed.stderr
        assert "1 check(s) fail" in target.read_text()

    def test_help_describes_the_options(self) -> None:
        result = mip("compliance", "report", "--help")
        assert result.exit_code == 0
        for option in ("--from", "--to", "--format", "--output"):
            assert option in result.output
