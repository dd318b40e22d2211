"""The compliance report of a period, signed: the evidence bundle an auditor keeps.

For the days ``[from, to)`` (UTC) it covers opt-out, consent, retention, erasures, access,
key management, model lineage and the audit log, each computed from the database and the
store when it is generated (:mod:`app.compliance.report_sections`), with a pass/fail check
for each rule. The JSON form is the evidence; HTML and PDF render the same report
(:mod:`app.compliance.render`)::

    period = ReportPeriod.parse("2026-11-01", "2026-12-01")
    bundle = generate_report(session, store, sampling, signer, period=period, actor=a, fmt="pdf")
    verify_report(bundle, load_public_key(pem))   # True, with nothing but the public key

The bundle is ``{"report": {...}, "signature": {"algorithm": "ed25519", "key_id": …,
"value": base64}}``; the signature covers ``orjson.dumps(report, option=OPT_SORT_KEYS)``.
Generating one is audited (``compliance.report_generated``: the period, the format and the
report's digest, never its content).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.orm import Session

from app.audit.service import record_event
from app.compliance import report_sections as sections
from app.compliance.report_inventory import opt_out_section
from app.compliance.report_repository import Window
from app.compliance.signed import signed_bytes
from app.kit.crypto.signing import ALGORITHM, SigningKey, key_id_of, verify_signature
from app.kit.db import utcnow
from app.kit.errors import BadRequest
from app.kit.moments import to_utc
from app.samples.runtime import SampleStore
from app.sampling.policy import SamplingConfig

REPORT_FORMAT = "mip.compliance.report/1"
REPORT_ACTION = "compliance.report_generated"
MAX_DAYS = 366  # a leap year: one report covers at most one year
FORMATS = ("json", "html", "pdf")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class InvalidReportPeriod(BadRequest):
    """``from``/``to`` are not dates, are out of order, or span more than :data:`MAX_DAYS`."""


@dataclass(frozen=True, slots=True)
class ReportPeriod:
    """Whole UTC days, ``first`` included, ``end`` excluded."""

    first: dt.date
    end: dt.date

    @classmethod
    def parse(cls, first: str, end: str) -> ReportPeriod:
        """``ReportPeriod.parse("2026-11-01", "2026-12-01")``: November 2026."""
        start_day, end_day = _date("from", first), _date("to", end)
        if end_day <= start_day:
            raise InvalidReportPeriod(
                f"'to' ({end_day}) must be after 'from' ({start_day}): the period is "
                "[from, to), to excluded."
            )
        if (end_day - start_day).days > MAX_DAYS:
            raise InvalidReportPeriod(
                f"The period spans {(end_day - start_day).days} days; a report covers at most "
                f"{MAX_DAYS}."
            )
        return cls(start_day, end_day)

    @property
    def window(self) -> Window:
        return Window(_midnight(self.first), _midnight(self.end))

    @property
    def days(self) -> list[str]:
        count = (self.end - self.first).days
        return [(self.first + dt.timedelta(days=i)).isoformat() for i in range(count)]

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.first.isoformat(),
            "to": self.end.isoformat(),
            "to_is": "excluded",
            "days": (self.end - self.first).days,
            "timezone": "UTC",
        }


def _date(name: str, text: str) -> dt.date:
    if not isinstance(text, str) or not _DATE.fullmatch(text):
        raise InvalidReportPeriod(f"'{name}' must be a date, YYYY-MM-DD.")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidReportPeriod(f"'{name}' ({text}) is not a calendar date.") from None


def _midnight(day: dt.date) -> dt.datetime:
    try:
        return to_utc(dt.datetime.combine(day, dt.time()))
    except (OverflowError, ValueError) as exc:
        raise InvalidReportPeriod(str(exc)) from None


def build_report(
    session: Session,
    store: SampleStore,
    sampling: SamplingConfig,
    signer: SigningKey,
    *,
    period: ReportPeriod,
    actor: str,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Every section and check, as plain JSON values (what the signature covers)."""
    now = now or utcnow()
    window, days = period.window, period.days
    built = {
        "opt_out": opt_out_section(session, store, sampling, window, days),
        "consent": sections.consent_section(session, window),
        "retention": sections.retention_section(session, window, now),
        "erasure": sections.erasure_section(session, window, now),
        "access": sections.access_section(session, window, days, now),
        "key_management": sections.keys_section(session, window, now),
        "model_lineage": sections.lineage_section(session, window),
        "audit": sections.audit_section(session, store, signer),
    }
    checks = [check for _, found in built.values() for check in found]
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "title": "MIP compliance report",
        "period": period.as_dict(),
        "generated_at": now.astimezone(dt.UTC).isoformat(),
        "generated_by": actor,
        "ok": sections.all_ok(checks),
        "checks": [check.as_dict() for check in checks],
        **{name: section for name, (section, _) in built.items()},
    }
    # Round-trip through JSON: what is signed is exactly what a reader parses back.
    normalised: dict[str, Any] = orjson.loads(orjson.dumps(report))
    return normalised


def report_digest(report: Mapping[str, Any]) -> str:
    return hashlib.sha256(signed_bytes(report)).hexdigest()


def sign_report(report: dict[str, Any], signer: SigningKey) -> dict[str, Any]:
    return {
        "report": report,
        "signature": {
            "algorithm": ALGORITHM,
            "key_id": signer.key_id,
            "value": base64.b64encode(signer.sign(signed_bytes(report))).decode(),
        },
    }


def verify_report(bundle: Mapping[str, Any], public_key: Ed25519PublicKey) -> bool:
    """Whether ``bundle`` is a report signed by ``public_key``, unchanged since (no database,
    no service configuration)::

        verify_report(orjson.loads(Path("report.json").read_bytes()), load_public_key(pem))
    """
    report, signature = bundle.get("report"), bundle.get("signature")
    if not isinstance(report, dict) or not isinstance(signature, dict):
        return False
    if signature.get("algorithm") != ALGORITHM or signature.get("key_id") != key_id_of(public_key):
        return False
    try:
        value = base64.b64decode(str(signature.get("value", "")), validate=True)
    except (binascii.Error, ValueError):
        return False
    return verify_signature(public_key, signed_bytes(report), value)


def generate_report(
    session: Session,
    store: SampleStore,
    sampling: SamplingConfig,
    signer: SigningKey,
    *,
    period: ReportPeriod,
    actor: str,
    fmt: str,
) -> dict[str, Any]:
    """Build and sign the report, and audit that it was generated (in the caller's
    transaction). Returns the signed bundle; render it with :mod:`app.compliance.render`."""
    report = build_report(session, store, sampling, signer, period=period, actor=actor)
    bundle = sign_report(report, signer)
    record_event(
        session,
        actor=actor,
        action=REPORT_ACTION,
        target_type="compliance_report",
        target_id=f"{period.first.isoformat()}..{period.end.isoformat()}",
        details={
            "from": period.first.isoformat(),
            "to": period.end.isoformat(),
            "format": fmt,
            "ok": report["ok"],
            "report_sha256": report_digest(report),
            "key_id": bundle["signature"]["key_id"],
        },
    )
    return bundle
