"""The compliance report laid out once for HTML and PDF: parts made of facts, notes, charts
and tables, with every value already turned into display text.

    for part in layout(report):      # "Opt-out and sampling", "Consent", …
        part.blocks                  # [Facts(...), Chart(...), Table(...), ...]

Long lists are cut at :data:`ROWS_SHOWN` rows; each cut table says how many rows the JSON
evidence holds. Charts come from :mod:`app.compliance.report_plots` (matplotlib), imported
only when a part asks for one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.compliance.report import report_digest

ROWS_SHOWN = 300


@dataclass(frozen=True, slots=True)
class Facts:
    """Label and value pairs."""

    items: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]
    total: int  # rows in the report; more than len(rows) when cut
    widths: list[float] | None = None  # relative column widths for the PDF
    empty: str = "None in the period."


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    png: bytes


@dataclass(frozen=True, slots=True)
class Note:
    text: str


Block = Facts | Table | Chart | Note


@dataclass
class Part:
    title: str
    blocks: list[Block] = field(default_factory=list)


# --- values -----------------------------------------------------------------------------------


def text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        return ", ".join(text(v) for v in value) or "—"
    return str(value)


def when(value: str | None) -> str:
    """An ISO instant as ``2026-12-07 21:20:53 UTC``."""
    if not value:
        return "—"
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    whole = round(seconds)
    if whole < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h {minutes:02d} min"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s"


def table(
    title: str,
    columns: list[str],
    records: Sequence[Any],
    row: Callable[[Any], list[Any]],
    *,
    widths: list[float] | None = None,
    total: int | None = None,
    empty: str = "None in the period.",
) -> Table:
    rows = [[text(v) for v in row(r)] for r in records[:ROWS_SHOWN]]
    return Table(title, columns, rows, len(records) if total is None else total, widths, empty)


# --- layout -----------------------------------------------------------------------------------


def checks_table(report: Mapping[str, Any]) -> Table:
    return table(
        "Checks",
        ["Result", "Check", "Area", "Covers", "Observed", "Expected"],
        report["checks"],
        lambda c: [
            "PASS" if c["ok"] else "FAIL",
            c["title"],
            c["area"],
            "the period" if c["scope"] == "period" else "now",
            c["observed"],
            c["expected"],
        ],
        widths=[0.7, 4.2, 1.3, 0.9, 1.3, 1.0],
    )


def layout(report: Mapping[str, Any], *, charts: bool = True) -> list[Part]:
    """The report's parts in reading order (charts drawn only when ``charts``)."""
    return [
        _opt_out(report["opt_out"], charts),
        _consent(report["consent"]),
        _retention(report["retention"]),
        _erasure(report["erasure"], charts),
        _access(report["access"], charts),
        _keys(report["key_management"]),
        _lineage(report["model_lineage"]),
        _audit(report["audit"]),
    ]


def _opt_out(section: Mapping[str, Any], charts: bool) -> Part:
    part = Part("Opt-out and sampling")
    req, store, sampling = section["requests"], section["store"], section["sampling"]
    part.blocks.append(
        Facts(
            [
                ("Requests in the period", text(req["total"])),
                ("Opted in", text(req["opted_in"])),
                ("Opted out", text(req["opted_out"])),
                ("Failed (never sampled)", text(req["failed"])),
                ("Requests whose sample was kept", text(req["samples_kept"])),
                *(
                    (f"Opted out by {source.replace('_', ' ')}", text(n))
                    for source, n in section["opted_out_by_source"].items()
                    if n or source != "default"  # the default takes part: never opted out
                ),
            ]
        )
    )
    if charts:
        from app.compliance import report_plots

        part.blocks.append(
            Chart("Requests per day", report_plots.requests_per_day(section["daily"]))
        )
    part.blocks.append(Note("The sample store now, object by object against the catalog:"))
    findings = [
        ("Samples of opted-out requests", store["samples_of_opted_out_requests"]),
        ("Samples without a ledger row", store["samples_without_ledger_row"]),
        ("Orphan objects (no sample refers to them)", store["orphan_objects"]),
        ("Missing objects (in the catalog, not in the store)", store["missing_objects"]),
        ("Objects of opted-out requests", store["objects_of_opted_out_requests"]),
    ]
    part.blocks.append(
        Facts(
            [
                (f"Objects under {store['prefix']}", text(store["objects"])),
                ("Samples in the catalog", text(store["samples"])),
                ("Objects the catalog refers to", text(store["catalog_objects"])),
                *((label, text(found["count"])) for label, found in findings),
            ]
        )
    )
    examples = [(label, ex) for label, found in findings for ex in found["examples"]]
    if examples:
        part.blocks.append(
            table(
                "Findings (sample ids and object keys)",
                ["Finding", "Sample or object"],
                examples,
                lambda e: list(e),
                widths=[2.0, 4.0],
                total=sum(found["count"] for _, found in findings),
            )
        )
    part.blocks.append(
        Note("Sampling decisions, recomputed from the HMAC secret for every ledger row:")
    )
    part.blocks.append(
        Facts(
            [
                ("Ledger rows recomputed", text(sampling["ledger_rows"])),
                ("Selected", text(sampling["selected"])),
                ("Decisions that do not recompute", text(sampling["mismatches"])),
                ("Kept without a selection", text(sampling["kept_without_selection"])),
            ]
        )
    )
    return part


def _consent(section: Mapping[str, Any]) -> Part:
    withdrawn = section["consent_withdrawn"]
    return Part(
        "Consent",
        [
            Facts(
                [
                    (
                        "Organizations opted out by contract (now)",
                        text(section["contract_opt_out_organizations"]),
                    ),
                    ("Organizations whose consent is withdrawn", text(withdrawn["organizations"])),
                    ("Projects whose consent is withdrawn", text(withdrawn["projects"])),
                ]
            ),
            table(
                "Contract opt-out changes",
                ["Seq", "When", "Actor", "Organization", "Opted out before", "after"],
                section["contract_opt_out_changes"],
                lambda c: [
                    c["seq"],
                    when(c["at"]),
                    c["actor"],
                    c["organization_id"],
                    c["contract_opt_out_from"],
                    c["contract_opt_out_to"],
                ],
                widths=[0.5, 1.5, 1.6, 2.4, 0.8, 0.6],
            ),
            table(
                "Consent withdrawals",
                ["Seq", "When", "Actor", "Scope", "Organization or project", "Erasure"],
                section["consent_withdrawals"],
                lambda c: [
                    c["seq"],
                    when(c["at"]),
                    c["actor"],
                    c["scope"],
                    c["target_id"],
                    c["erasure_id"],
                ],
                widths=[0.5, 1.5, 1.5, 0.9, 2.3, 2.3],
            ),
        ],
    )


def _retention(section: Mapping[str, Any]) -> Part:
    purges = section["purges"]
    return Part(
        "Retention",
        [
            Facts(
                [
                    (
                        "Samples past their deadline, no legal hold (now)",
                        text(section["expired_samples"]),
                    ),
                    ("Past their deadline, on legal hold", text(section["expired_on_legal_hold"])),
                    ("Samples on legal hold", text(section["legal_holds"])),
                    ("Purge batches in the period", text(purges["runs"])),
                    ("Samples purged in the period", text(purges["samples_purged"])),
                ]
            ),
            table(
                "Retention purges",
                ["Seq", "When", "Actor", "Batch", "Samples"],
                purges["entries"],
                lambda p: [p["seq"], when(p["at"]), p["actor"], p["batch"], p["samples"]],
                widths=[0.6, 1.8, 2.0, 1.2, 0.8],
            ),
        ],
    )


def _erasure(section: Mapping[str, Any], charts: bool) -> Part:
    summary = section["summary"]
    part = Part(
        "Erasures",
        [
            Facts(
                [
                    ("Erasures listed", text(summary["listed"])),
                    ("Requested in the period", text(summary["requested_in_period"])),
                    ("Done", text(summary["done"])),
                    ("Open", text(summary["open"])),
                    ("Failed", text(summary["failed"])),
                    ("Median time to complete", duration(summary["median_seconds"])),
                    ("Longest time to complete", duration(summary["max_seconds"])),
                ]
            )
        ],
    )
    requests = section["requests"]
    if charts and any(r["duration_seconds"] is not None for r in requests):
        from app.compliance import report_plots

        part.blocks.append(Chart("Erasure completion times", report_plots.erasure_times(requests)))
    part.blocks.append(
        table(
            "Erasure requests and their timings",
            ["Erasure", "Scope", "Status", "Requested by", "Requested", "Completed", "Took"],
            requests,
            lambda r: [
                r["id"],
                r["scope"] + (" (consent withdrawn)" if r["consent_withdrawn"] else ""),
                r["status"] + (f": {r['failure']}" if r["failure"] else ""),
                r["requested_by"],
                when(r["requested_at"]),
                when(r["completed_at"]),
                duration(r["duration_seconds"]),
            ],
            widths=[2.2, 1.3, 0.9, 1.8, 1.3, 1.3, 0.9],
        )
    )
    part.blocks.append(
        table(
            "What each erasure removed, and its audit entries",
            [
                "Erasure",
                "Data keys destroyed",
                "Objects deleted",
                "Catalog rows deleted",
                "Training sets tainted",
                "Model versions flagged",
                "Audit seq",
            ],
            requests,
            lambda r: [
                r["id"],
                r["keys_destroyed"],
                r["objects_deleted"],
                r["catalog_rows_deleted"],
                r["training_sets_tainted"],
                [f"{v['name']} ({v['id']})" for v in r["model_versions_flagged"]],
                " to ".join(
                    str(seq)
                    for seq in (r["evidence"]["requested_seq"], r["evidence"]["completed_seq"])
                    if seq is not None
                ),
            ],
            widths=[2.2, 0.9, 0.9, 0.9, 2.2, 2.2, 0.8],
        )
    )
    return part


def _access(section: Mapping[str, Any], charts: bool) -> Part:
    reads, staff = section["decrypted_reads"], section["staff_keys"]
    part = Part(
        "Access to sample content",
        [
            Facts(
                [
                    ("Decrypted reads in the period", text(reads["total"])),
                    *((f"… of {kind}", text(n)) for kind, n in reads["by_object"].items()),
                ]
            )
        ],
    )
    if charts:
        from app.compliance import report_plots

        part.blocks.append(
            Chart("Decrypted reads per day", report_plots.reads_per_day(reads["daily"]))
        )
    part.blocks += [
        table(
            "Decrypted reads by actor",
            ["Actor", "Reads"],
            reads["by_actor"],
            lambda a: [a["actor"], a["reads"]],
            widths=[4.0, 1.0],
        ),
        table(
            "Every decrypted read",
            ["Seq", "When", "Actor", "Object", "Sample", "Organization"],
            reads["reads"],
            lambda r: [
                r["seq"],
                when(r["at"]),
                r["actor"],
                r["object"],
                r["sample_id"],
                r["organization_id"],
            ],
            widths=[0.5, 1.5, 2.0, 0.8, 2.3, 2.3],
            total=reads["total"],
        ),
        table(
            "Staff keys by role (now)",
            ["Role", "Active", "Expired", "Revoked"],
            list(staff["by_role"].items()),
            lambda item: [item[0], item[1]["active"], item[1]["expired"], item[1]["revoked"]],
            widths=[2.0, 1.0, 1.0, 1.0],
            empty="No staff keys.",
        ),
        table(
            "Staff keys",
            ["Key", "Role", "State", "Created", "By", "Expires", "Revoked"],
            staff["keys"],
            lambda k: [
                k["id"],
                k["role"],
                k["state"],
                when(k["created_at"]),
                k["created_by"],
                when(k["expires_at"]),
                when(k["revoked_at"]),
            ],
            widths=[2.3, 0.8, 0.7, 1.4, 1.2, 1.4, 1.4],
            empty="No staff keys.",
        ),
    ]
    return part


def _keys(section: Mapping[str, Any]) -> Part:
    keys = section["data_keys"]
    return Part(
        "Key management",
        [
            Facts(
                [
                    ("KEK rotations in the period", text(len(section["kek_rotations"]))),
                    ("Data key rotations in the period", text(len(section["dek_rotations"]))),
                    ("Active data keys (now)", text(keys["active"])),
                    ("Oldest active data key (days)", text(keys["oldest_active_age_days"])),
                ]
            ),
            table(
                "Key-encryption key rotations",
                ["Seq", "When", "Actor", "KEK version", "Data keys re-wrapped", "Resumed"],
                section["kek_rotations"],
                lambda r: [
                    r["seq"],
                    when(r["at"]),
                    r["actor"],
                    r["kek_version"],
                    r["rewrapped"],
                    r["resumed"],
                ],
                widths=[0.5, 1.5, 1.8, 2.2, 1.0, 0.7],
            ),
            table(
                "Data key rotations",
                ["Seq", "When", "Actor", "Organization", "New version"],
                section["dek_rotations"],
                lambda r: [r["seq"], when(r["at"]), r["actor"], r["organization_id"], r["version"]],
                widths=[0.5, 1.5, 1.8, 2.4, 0.8],
            ),
            table(
                "Data keys by status and KEK version (now)",
                ["Status", "KEK version", "Keys", "Oldest created", "Holding key material"],
                keys["groups"],
                lambda g: [
                    g["status"],
                    g["kek_version"],
                    g["keys"],
                    when(g["oldest_created_at"]),
                    g["holding_key_material"],
                ],
                widths=[0.9, 2.6, 0.6, 1.5, 1.0],
                empty="No data keys.",
            ),
            table(
                "Oldest active data keys",
                ["Organization", "Version", "KEK version", "Created", "Age (days)", "Re-wrapped"],
                keys["oldest_active_keys"],
                lambda k: [
                    k["organization_id"],
                    k["version"],
                    k["kek_version"],
                    when(k["created_at"]),
                    k["age_days"],
                    when(k["rewrapped_at"]),
                ],
                widths=[2.3, 0.6, 1.9, 1.4, 0.7, 1.4],
                empty="No active data keys.",
            ),
        ],
    )


def _lineage(section: Mapping[str, Any]) -> Part:
    sets = {s["id"]: s for s in section["training_sets"]}

    def version_row(v: Mapping[str, Any]) -> list[Any]:
        source = sets.get(v["training_set_id"] or "")
        span = "—"
        if source and source["samples_from"]:
            span = f"{source['samples_from'][:10]} to {source['samples_to'][:10]}"
        return [
            f"{v['name']}:{v['version']}",
            v["status"],
            when(v["created_at"]),
            v["training_set"] or "— (base model)",
            span,
            "tainted" if v["tainted_at"] else "clean",
        ]

    return Part(
        "Model lineage",
        [
            table(
                "Model versions and what they were trained on",
                ["Model version", "Status", "Created", "Training set", "Samples kept", "Taint"],
                section["model_versions"],
                version_row,
                widths=[2.4, 0.9, 1.4, 1.6, 1.9, 0.7],
                empty="No model versions.",
            ),
            table(
                "Training sets",
                ["Set", "Status", "Created", "Members", "Still held", "Samples kept", "Used by"],
                section["training_sets"],
                lambda s: [
                    f"{s['name']}:{s['version']}",
                    s["status"],
                    when(s["created_at"]),
                    s["members"],
                    s["members_in_catalog"],
                    f"{(s['samples_from'] or '—')[:10]} to {(s['samples_to'] or '—')[:10]}",
                    s["model_versions"],
                ],
                widths=[1.6, 0.7, 1.4, 0.7, 0.7, 1.9, 2.0],
                empty="No training sets.",
            ),
        ],
    )


def _audit(section: Mapping[str, Any]) -> Part:
    chain, checkpoints = section["chain"], section["checkpoints"]
    latest = checkpoints.get("latest") or {}
    part = Part(
        "Audit log",
        [
            Facts(
                [
                    ("Hash chain", "verifies" if chain["ok"] else "BROKEN"),
                    ("Entries", text(chain["entries"])),
                    ("Head hash", text(chain["head_hash"])),
                    ("First bad entry", text(chain["first_bad_seq"])),
                    ("Why", text(chain["reason"])),
                    ("Signed checkpoints", text(checkpoints.get("checkpoints"))),
                    ("Anchors in the store", text(checkpoints.get("anchors"))),
                    ("Checkpoints verify", text(checkpoints.get("ok"))),
                    ("Latest checkpoint", when(latest.get("created_at"))),
                    ("It signs entry", text(latest.get("head_seq"))),
                ]
            )
        ],
    )
    problems = checkpoints.get("problems") or []
    part.blocks.append(
        table(
            "Checkpoint problems",
            ["Problem"],
            problems,
            lambda p: [p],
            empty="No problems.",
        )
    )
    return part


def evidence(bundle: Mapping[str, Any]) -> Facts:
    signature = bundle["signature"]
    return Facts(
        [
            ("Signature algorithm", text(signature["algorithm"])),
            ("Signing key", text(signature["key_id"])),
            ("SHA-256 of the signed report", report_digest(bundle["report"])),
            ("Signature (base64)", text(signature["value"])),
            (
                "How to verify",
                "The JSON form of this report is the evidence bundle: the signature covers "
                "the sorted, compact JSON of its 'report' member. Check it with the service's "
                "public key (`mip audit public-key`).",
            ),
        ]
    )
