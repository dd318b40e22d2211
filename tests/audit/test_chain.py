"""The hash-chained audit log: what is appended, what verifies, what tampering looks like."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.audit.service import GENESIS_HASH, entry_hash_of, record_event, verify_chain
from app.cli import app as cli_app
from app.kit.settings import get_settings
from app.tables import AuditEntry
from tests.audit.helpers import HISTORY_ACTIONS, entry_hashes, make_history, tamper
from tests.conftest import Database


class TestAppendedEntries:
    def test_every_audited_change_appends_one_entry(self, db: Database) -> None:
        history = make_history(db)
        with db.session() as session:
            entries = session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
        assert [e.action for e in entries] == HISTORY_ACTIONS
        assert [e.seq for e in entries] == list(range(1, len(HISTORY_ACTIONS) + 1))
        by_action = {e.action: e for e in entries}
        assert by_action["api_key.revoked"].target_id == str(history.key_id)
        assert by_action["api_key.revoked"].organization_id == history.org_id
        assert by_action["api_key.revoked"].actor == "bob"
        changed = by_action["organization.contract_changed"].details
        before, after = changed["before"], changed["after"]
        assert isinstance(before, dict)
        assert isinstance(after, dict)
        assert (before["plan"], after["plan"]) == ("growth", "enterprise")
        assert after["contract_rates"] == {"*": 4000}
        assert by_action["billing_period.closed"].target_id == "2026-02"
        assert by_action["price_book.changed"].details["rate_micros_per_minute"] == 3900

    def test_each_entry_chains_onto_the_one_before(self, db: Database) -> None:
        make_history(db)
        with db.session() as session:
            entries = session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
        assert entries[0].prev_hash == GENESIS_HASH
        for before, after in itertools.pairwise(entries):
            assert after.prev_hash == before.entry_hash

    def test_a_failed_change_appends_nothing(self, db: Database) -> None:
        make_history(db)
        before = entry_hashes(db)

        def append_then_raise(session: Session) -> None:
            record_event(session, actor="t", action="x.y", target_type="x", target_id="1")
            raise ValueError("boom")

        with pytest.raises(ValueError, match="boom"), db.session() as session:
            append_then_raise(session)
        assert entry_hashes(db) == before


class TestVerify:
    def test_empty_log_verifies(self, db: Database) -> None:
        with db.session() as session:
            report = verify_chain(session)
        assert (report.ok, report.entries, report.head_hash) == (True, 0, None)

    def test_intact_log_verifies_with_head_hash(self, db: Database) -> None:
        make_history(db)
        with db.session() as session:
            report = verify_chain(session)
        assert report.ok
        assert report.entries == len(HISTORY_ACTIONS)
        assert report.first_bad_seq is None
        assert report.head_hash == entry_hashes(db)[-1]

    @pytest.mark.parametrize("seq", [1, 4, len(HISTORY_ACTIONS)])
    def test_changed_details_are_named_by_seq(self, db: Database, seq: int) -> None:
        make_history(db)
        tamper(db, seq, details={"name": "Someone else"})
        with db.session() as session:
            report = verify_chain(session)
        assert not report.ok
        assert report.first_bad_seq == seq
        assert report.entries == seq
        assert report.reason == "content does not match its hash"
        assert report.head_hash is None

    def test_changed_actor_is_detected(self, db: Database) -> None:
        make_history(db)
        tamper(db, 3, actor="nobody")
        with db.session() as session:
            assert verify_chain(session).first_bad_seq == 3

    def test_rehashed_entry_breaks_the_next_link(self, db: Database) -> None:
        # An attacker who rewrites an entry and recomputes its hash still breaks the one after.
        make_history(db)
        with db.session() as session:
            forged = session.get(AuditEntry, 2)
            assert forged is not None
            session.expunge(forged)
        forged.details = {"name": "Someone else"}
        tamper(db, 2, details=forged.details, entry_hash=entry_hash_of(forged))
        with db.session() as session:
            report = verify_chain(session)
        assert (report.ok, report.first_bad_seq) == (False, 3)
        assert report.reason == "prev_hash does not match entry before"

    def test_gap_in_seq_is_detected(self, db: Database) -> None:
        make_history(db)
        tamper(db, 5, seq=50)
        with db.session() as session:
            report = verify_chain(session)
        # Entry 5 now claims seq 50: the walk meets seq 6 where it expected 5.
        assert (report.ok, report.first_bad_seq, report.reason) == (False, 6, "expected seq 5")


class TestAppendOnlyTriggers:
    def test_update_is_refused(self, db: Database) -> None:
        make_history(db)
        before = entry_hashes(db)
        stmt = update(AuditEntry).values(actor="mallory")
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(stmt.where(AuditEntry.seq == 2))
        assert entry_hashes(db) == before

    def test_delete_is_refused(self, db: Database) -> None:
        make_history(db)
        before = entry_hashes(db)
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(delete(AuditEntry).where(AuditEntry.seq == 8))
        assert entry_hashes(db) == before

    def test_orm_update_is_refused(self, db: Database) -> None:
        make_history(db)

        def rewrite_first(session: Session) -> None:
            entry = session.get(AuditEntry, 1)
            assert entry is not None
            entry.details = {"name": "Someone else"}

        with pytest.raises(DBAPIError, match="append-only"), db.session() as session:
            rewrite_first(session)
        with db.session() as session:
            assert verify_chain(session).ok

    def test_tampering_helper_leaves_the_trigger_in_place(self, db: Database) -> None:
        make_history(db)
        tamper(db, 1, actor="x")
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(update(AuditEntry).values(actor="y"))


@pytest.mark.postgres
@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
class TestConcurrentAppends:
    THREADS = 8
    PER_THREAD = 5

    def test_concurrent_writers_still_form_one_chain(self, db: Database) -> None:
        make_history(db)
        start = threading.Barrier(self.THREADS)
        errors: list[BaseException] = []

        def writer(n: int) -> None:
            try:
                start.wait(timeout=10)
                for i in range(self.PER_THREAD):
                    with db.session() as session:
                        record_event(
                            session,
                            actor=f"writer-{n}",
                            action="test.concurrent",
                            target_type="test",
                            target_id=f"{n}-{i}",
                        )
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(self.THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        with db.session() as session:
            report = verify_chain(session)
            targets = set(
                session.scalars(
                    select(AuditEntry.target_id).where(AuditEntry.action == "test.concurrent")
                )
            )
        total = len(HISTORY_ACTIONS) + self.THREADS * self.PER_THREAD
        assert (report.ok, report.entries) == (True, total)
        assert targets == {f"{n}-{i}" for n in range(self.THREADS) for i in range(self.PER_THREAD)}


@pytest.fixture
def cli_db(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """``mip`` pointed at the test database and a data directory of its own (settings are
    cached, so clear them both ways)."""
    monkeypatch.setenv("MIP_DATABASE_URL", db.url)
    monkeypatch.setenv("MIP_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


class TestVerifyCommand:
    def test_intact_log_exits_0_and_prints_head_hash(self, cli_db: Database) -> None:
        make_history(cli_db)
        result = CliRunner().invoke(cli_app, ["audit", "verify"])
        assert result.exit_code == 0, result.output
        assert f"{len(HISTORY_ACTIONS)} entries" in result.stdout
        assert entry_hashes(cli_db)[-1] in result.stdout

    def test_json_output(self, cli_db: Database) -> None:
        make_history(cli_db)
        result = CliRunner().invoke(cli_app, ["audit", "verify", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == {
            "ok": True,
            "entries": len(HISTORY_ACTIONS),
            "first_bad_seq": None,
            "reason": None,
            "head_hash": entry_hashes(cli_db)[-1],
            "checkpoints": {
                "ok": True,
                "checkpoints": 0,
                "anchors": 0,
                "latest": None,
                "problems": [],
            },
        }

    def test_tampered_log_exits_1_naming_the_entry(self, cli_db: Database) -> None:
        make_history(cli_db)
        tamper(cli_db, 6, details={"period": "2026-03"})
        result = CliRunner().invoke(cli_app, ["audit", "verify"])
        assert result.exit_code == 1
        assert "broken at entry 6" in result.stderr
        assert "content does not match its hash" in result.stderr

    def test_tampered_log_json_names_the_entry(self, cli_db: Database) -> None:
        make_history(cli_db)
        tamper(cli_db, 3, details={})
        result = CliRunner().invoke(cli_app, ["audit", "verify", "--json"])
        assert result.exit_code == 1
        report = json.loads(result.stdout)
        assert (report["ok"], report["first_bad_seq"], report["head_hash"]) == (False, 3, None)
