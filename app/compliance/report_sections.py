"""The compliance report's sections, each computed from the database and the store.

Every section returns plain JSON values (text, numbers, booleans, lists, objects) and the
checks it decides. A check's ``scope`` says what it covers: ``period`` (what happened between
``from`` and ``to``) or ``now`` (the state of the catalog, the store and the keys when the
report was generated: a sample that should not exist is a finding whatever its date).
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.audit.service import verify_chain
from app.compliance import report_repository as repo
from app.compliance.checkpoints import checkpoint_status
from app.kit.crypto.signing import SigningKey
from app.samples.runtime import SampleStore
from app.tables.audit import AuditEntry
from app.tables.erasure import ErasureRequest

EXAMPLES = 100  # offending ids listed per finding; the counts are always complete
READS_LISTED = 20_000  # decrypted reads listed one by one (all are counted)
KEYS_LISTED = 200
ERASURE_DEADLINE = dt.timedelta(days=30)  # GDPR art. 12(3): one month to act on a request
READ_ACTIONS = ("sample.audio_read", "sample.transcript_read", "sample.reference_read")
TAINT_ACTIONS = ("training_sets.tainted", "model_version.tainted")


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    area: str
    title: str
    scope: str  # "period" or "now"
    ok: bool
    observed: int | str
    expected: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "area": self.area,
            "title": self.title,
            "scope": self.scope,
            "ok": self.ok,
            "observed": self.observed,
            "expected": self.expected,
        }


def zero(check_id: str, area: str, title: str, observed: int, *, scope: str = "now") -> Check:
    return Check(check_id, area, title, scope, observed == 0, observed, "0")


def iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat()


def _entry(entry: AuditEntry) -> dict[str, Any]:
    """Where an audit entry is (seq), when and by whom: its evidence pointer."""
    return {"seq": entry.seq, "at": iso(entry.created_at), "actor": entry.actor}


Section = tuple[dict[str, Any], list[Check]]


def _count(value: object) -> int:
    return value if isinstance(value, int) else 0


# --- consent ----------------------------------------------------------------------------------


def consent_section(session: Session, window: repo.Window) -> Section:
    changes = []
    for entry in repo.audit_entries(
        session, actions=["organization.contract_changed"], window=window
    ):
        before = entry.details.get("before") or {}
        after = entry.details.get("after") or {}
        if not isinstance(before, dict) or not isinstance(after, dict):
            continue
        if before.get("contract_opt_out") == after.get("contract_opt_out"):
            continue  # a change of rates or retention only
        changes.append(
            {
                **_entry(entry),
                "organization_id": entry.target_id,
                "contract_opt_out_from": before.get("contract_opt_out"),
                "contract_opt_out_to": after.get("contract_opt_out"),
            }
        )
    withdrawals = [
        {
            **_entry(entry),
            "scope": entry.target_type,
            "target_id": entry.target_id,
            "organization_id": str(entry.organization_id) if entry.organization_id else None,
            "erasure_id": entry.details.get("erasure_id"),
        }
        for entry in repo.audit_entries(session, actions=["consent.withdrawn"], window=window)
    ]
    orgs, projects = repo.withdrawn_scopes(session)
    section = {
        "contract_opt_out_organizations": repo.contract_opt_out_organizations(session),
        "contract_opt_out_changes": changes,
        "consent_withdrawals": withdrawals,
        "consent_withdrawn": {"organizations": orgs, "projects": projects},
    }
    return section, []


# --- retention --------------------------------------------------------------------------------


def retention_section(session: Session, window: repo.Window, now: dt.datetime) -> Section:
    expired, expired_on_hold = repo.expired_counts(session, now=now)
    purges = [
        {
            **_entry(entry),
            "batch": entry.target_id,
            "samples": _count(entry.details.get("count")),
        }
        for entry in repo.audit_entries(session, actions=["samples.purged_expired"], window=window)
    ]
    section = {
        "expired_samples": expired,
        "expired_on_legal_hold": expired_on_hold,
        "legal_holds": repo.legal_holds(session),
        "purges": {
            "runs": len(purges),
            "samples_purged": sum(p["samples"] for p in purges),
            "entries": purges,
        },
    }
    checks = [
        zero(
            "retention.expired_samples",
            "retention",
            "Samples past their retention deadline (no legal hold)",
            expired,
        )
    ]
    return section, checks


# --- erasure ----------------------------------------------------------------------------------


def erasure_section(session: Session, window: repo.Window, now: dt.datetime) -> Section:
    rows = repo.erasures_for(session, window)
    since = min((row.created_at for row in rows), default=window.start)
    events = repo.audit_entries(
        session,
        actions=["erasure.requested", "erasure.completed", *TAINT_ACTIONS],
        since=since,
    )
    requested = {e.target_id: e for e in events if e.action == "erasure.requested"}
    completed = {e.target_id: e for e in events if e.action == "erasure.completed"}
    sets_of: defaultdict[str, list[str]] = defaultdict(list)
    for e in events:
        tainted = e.details.get("training_sets")
        if e.action == "training_sets.tainted" and e.details.get("erasure_id"):
            if isinstance(tainted, list):
                sets_of[str(e.details["erasure_id"])].extend(str(s) for s in tainted)
    versions_on: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e.action == "model_version.tainted":
            versions_on[str(e.details.get("training_set_id"))].append(
                {"id": e.target_id, "name": e.details.get("name"), **_entry(e)}
            )
    listed = [
        _erasure(row, requested.get(str(row.id)), completed.get(str(row.id)), sets_of, versions_on)
        for row in rows
    ]
    durations = [r["duration_seconds"] for r in listed if r["duration_seconds"] is not None]
    overdue = [
        str(row.id)
        for row in rows
        if row.status == "failed"
        or (row.status != "done" and now - row.created_at > ERASURE_DEADLINE)
    ]
    section = {
        "requests": listed,
        "summary": {
            "listed": len(listed),
            "requested_in_period": sum(
                1 for r in rows if window.start <= r.created_at < window.end
            ),
            "done": sum(1 for r in rows if r.status == "done"),
            "open": sum(1 for r in rows if r.status in ("pending", "in_progress")),
            "failed": sum(1 for r in rows if r.status == "failed"),
            "median_seconds": statistics.median(durations) if durations else None,
            "max_seconds": max(durations) if durations else None,
        },
        "failed_or_overdue": overdue,
    }
    checks = [
        Check(
            "erasure.done_in_time",
            "erasure",
            f"Erasures done, none failed or open past {ERASURE_DEADLINE.days} days",
            "period",
            not overdue,
            len(overdue),
            "0",
        )
    ]
    return section, checks


def _erasure(
    row: ErasureRequest,
    requested: AuditEntry | None,
    completed: AuditEntry | None,
    sets_of: dict[str, list[str]],
    versions_on: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    counts = row.counts or {}
    sets = sorted(set(sets_of.get(str(row.id), [])))
    finished = row.finished_at
    return {
        "id": str(row.id),
        "scope": row.scope,
        "organization_id": str(row.organization_id),
        "project_id": str(row.project_id) if row.project_id else None,
        "status": row.status,
        "stores": row.stores,
        "requested_at": iso(row.created_at),
        "requested_by": row.requested_by,
        "completed_at": iso(finished),
        "duration_seconds": (
            round((finished - row.created_at).total_seconds(), 3) if finished else None
        ),
        "keys_destroyed": counts.get("keys"),
        "objects_deleted": counts.get("blobs"),
        "catalog_rows_deleted": counts.get("catalog"),
        "consent_withdrawn": bool(requested and requested.details.get("withdraw_consent")),
        "training_sets_tainted": sets,
        "model_versions_flagged": [v for s in sets for v in versions_on.get(s, [])],
        "evidence": {
            "requested_seq": requested.seq if requested else None,
            "completed_seq": completed.seq if completed else None,
        },
        "failure": row.reason if row.status == "failed" else None,
    }


# --- access -----------------------------------------------------------------------------------


def access_section(
    session: Session, window: repo.Window, days: Sequence[str], now: dt.datetime
) -> Section:
    daily: dict[str, int] = dict.fromkeys(days, 0)
    by_kind = dict.fromkeys((a.split(".")[1].removesuffix("_read") for a in READ_ACTIONS), 0)
    for day, action, n in repo.audit_counts_by_day(session, actions=READ_ACTIONS, window=window):
        daily[day] = daily.get(day, 0) + n
        by_kind[action.split(".")[1].removesuffix("_read")] += n
    total = sum(by_kind.values())
    reads = [
        {
            "seq": seq,
            "at": iso(at),
            "actor": actor,
            "object": action.split(".")[1].removesuffix("_read"),
            "sample_id": target,
            "organization_id": str(org) if org else None,
        }
        for seq, at, actor, action, target, org in repo.iter_audit_entries(
            session, actions=READ_ACTIONS, window=window, limit=READS_LISTED
        )
    ]
    section = {
        "decrypted_reads": {
            "total": total,
            "by_object": by_kind,
            "by_actor": [
                {"actor": actor, "reads": n}
                for actor, n in repo.audit_counts_by_actor(
                    session, actions=READ_ACTIONS, window=window
                )
            ],
            "daily": [{"day": day, "reads": n} for day, n in sorted(daily.items())],
            "reads": reads,
            "listed": len(reads),
            "truncated": len(reads) < total,
        },
        "staff_keys": _staff_keys(session, now),
    }
    return section, []


def _staff_keys(session: Session, now: dt.datetime) -> dict[str, Any]:
    by_role: dict[str, Counter[str]] = {}
    keys = []
    for key in repo.staff_keys(session):
        if key.revoked_at is not None:
            state = "revoked"
        elif key.expires_at is not None and key.expires_at <= now:
            state = "expired"
        else:
            state = "active"
        by_role.setdefault(str(key.role), Counter())[state] += 1
        keys.append(
            {
                "id": str(key.id),
                "role": key.role,
                "state": state,
                "created_at": iso(key.created_at),
                "created_by": key.created_by,
                "expires_at": iso(key.expires_at),
                "revoked_at": iso(key.revoked_at),
            }
        )
    return {
        "by_role": {
            role: {s: counts[s] for s in ("active", "expired", "revoked")}
            for role, counts in sorted(by_role.items())
        },
        "keys": keys,
    }


# --- key management ---------------------------------------------------------------------------


def keys_section(session: Session, window: repo.Window, now: dt.datetime) -> Section:
    rotations = repo.audit_entries(
        session, actions=["crypto.kek_rotated", "crypto.dek_rotated"], window=window
    )
    kek = [
        {
            **_entry(e),
            "kek_version": e.target_id,
            "rewrapped": e.details.get("rewrapped"),
            "resumed": e.details.get("resumed"),
        }
        for e in rotations
        if e.action == "crypto.kek_rotated"
    ]
    dek = [
        {**_entry(e), "organization_id": e.target_id, "version": e.details.get("version")}
        for e in rotations
        if e.action == "crypto.dek_rotated"
    ]
    groups = repo.data_key_counts(session)
    shredded_badly = sum(material for status, _, _, _, material in groups if status == "destroyed")
    active = [g for g in groups if g[0] == "active"]
    oldest = min((g[3] for g in active if g[3] is not None), default=None)
    section = {
        "kek_rotations": kek,
        "dek_rotations": dek,
        "data_keys": {
            "groups": [
                {
                    "status": status,
                    "kek_version": kek_version,
                    "keys": n,
                    "oldest_created_at": iso(first),
                    "holding_key_material": material,
                }
                for status, kek_version, n, first, material in groups
            ],
            "active": sum(g[2] for g in active),
            "oldest_active_age_days": _age_days(now, oldest),
            "oldest_active_keys": [
                {
                    "organization_id": str(k.organization_id),
                    "version": k.version,
                    "kek_version": k.kek_version,
                    "created_at": iso(k.created_at),
                    "age_days": _age_days(now, k.created_at),
                    "rewrapped_at": iso(k.rewrapped_at),
                }
                for k in repo.oldest_active_keys(session, limit=KEYS_LISTED)
            ],
        },
    }
    checks = [
        zero(
            "keys.destroyed_keys_hold_no_material",
            "key management",
            "Destroyed data keys that still hold wrapped key material",
            shredded_badly,
        )
    ]
    return section, checks


def _age_days(now: dt.datetime, since: dt.datetime | None) -> float | None:
    return None if since is None else round((now - since).total_seconds() / 86400, 2)


# --- model lineage ----------------------------------------------------------------------------


def lineage_section(session: Session, window: repo.Window) -> Section:
    versions = repo.model_versions_before(session, window.end)
    sets = {s.id: s for s in repo.training_sets_before(session, window.end)}
    extents = repo.training_set_extents(session, list(sets))
    used_by: defaultdict[str, list[str]] = defaultdict(list)
    listed_versions = []
    served_tainted = []
    for v in versions:
        source = sets.get(v.training_set_id) if v.training_set_id else None
        tainted = v.tainted_at is not None or (source is not None and source.status == "tainted")
        if v.status == "promoted" and tainted:
            served_tainted.append(str(v.id))
        if v.training_set_id is not None:
            used_by[str(v.training_set_id)].append(f"{v.name}:{v.version}")
        listed_versions.append(
            {
                "id": str(v.id),
                "name": v.name,
                "version": v.version,
                "status": v.status,
                "created_at": iso(v.created_at),
                "promoted_at": iso(v.promoted_at),
                "base_model": v.base_model,
                "training_set_id": str(v.training_set_id) if v.training_set_id else None,
                "training_set": f"{source.name}:{source.version}" if source else None,
                "tainted_at": iso(v.tainted_at),
                "taint_reason": v.taint_reason,
            }
        )
    listed_sets = []
    for set_id, s in sets.items():
        extent = extents.get(set_id, repo.SetExtent(0, 0, None, None))
        listed_sets.append(
            {
                "id": str(set_id),
                "name": s.name,
                "version": s.version,
                "status": s.status,
                "created_at": iso(s.created_at),
                "members": extent.members,
                "members_in_catalog": extent.in_catalog,
                "samples_from": iso(extent.first_sample_at),
                "samples_to": iso(extent.last_sample_at),
                "tainted_at": iso(s.tainted_at),
                "taint_reason": s.taint_reason,
                "model_versions": used_by.get(str(set_id), []),
            }
        )
    section = {"model_versions": listed_versions, "training_sets": listed_sets}
    checks = [
        zero(
            "lineage.no_tainted_version_served",
            "model lineage",
            "Served model versions trained on a tainted training set",
            len(served_tainted),
        )
    ]
    return section, checks


# --- audit ------------------------------------------------------------------------------------


def audit_section(session: Session, store: SampleStore, signer: SigningKey) -> Section:
    chain = verify_chain(session)
    checkpoints = checkpoint_status(session, store, signer)
    section = {
        "chain": {
            "ok": chain.ok,
            "entries": chain.entries,
            "first_bad_seq": chain.first_bad_seq,
            "reason": chain.reason,
            "head_hash": chain.head_hash,
        },
        "checkpoints": checkpoints,
    }
    checks = [
        Check(
            "audit.chain_verifies",
            "audit",
            "The audit log's hash chain verifies",
            "now",
            chain.ok,
            "verified" if chain.ok else f"broken at entry {chain.first_bad_seq}",
            "verified",
        ),
        Check(
            "audit.checkpoints_verify",
            "audit",
            "Signed checkpoints verify and match the chain",
            "now",
            bool(checkpoints.get("ok")),
            len(checkpoints.get("problems") or []),
            "0 problems",
        ),
    ]
    return section, checks


def all_ok(checks: Iterable[Check]) -> bool:
    return all(check.ok for check in checks)
