"""Signed checkpoints and offline-verifiable exports: each kind of tampering, on both backends.

The chain alone accepts a log whose newest entries were deleted, or one rewritten with the
same unkeyed hash; these tests show the signed checkpoints (in the log and anchored in the
blob store) and the signed export catching each.
"""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update
from typer.testing import CliRunner

from app.audit.chain import entry_hash
from app.audit.service import entry_fields, verify_chain
from app.cli import app as cli_app
from app.compliance.bundle import BundleError, verify_bundle
from app.compliance.checkpoints import (
    ANCHOR_PREFIX,
    ChainNotSignable,
    create_checkpoint,
    export_audit_log,
    open_signing_key,
    verify_checkpoints,
)
from app.compliance.signed import CHECKPOINT_ACTION
from app.kit.crypto import LocalKeyProvider
from app.kit.crypto.signing import SigningKey, SigningKeyError, load_public_key
from app.kit.settings import Settings, get_settings
from app.samples.runtime import SampleStore, open_sample_store
from app.tables import AuditEntry
from app.worker import _loop
from tests.audit.helpers import make_history, tamper
from tests.conftest import Database, make_staff_key
from tests.ledger.helpers import as_database_owner


@pytest.fixture
def store(settings: Settings) -> SampleStore:
    return open_sample_store(settings)


@pytest.fixture
def signer(settings: Settings) -> SigningKey:
    return open_signing_key(settings)


def checkpoint(db: Database, store: SampleStore, signer: SigningKey) -> AuditEntry:
    with db.session() as session:
        entry = create_checkpoint(session, store, signer, actor="test")
        session.expunge(entry)
        return entry


def delete_entries_from(db: Database, seq: int) -> None:
    with as_database_owner(db, "audit_entries"), db.engine.begin() as conn:
        conn.execute(delete(AuditEntry).where(AuditEntry.seq >= seq))


def rewrite_chain_from(db: Database, seq: int, **values: Any) -> None:
    """Edit entry ``seq`` and recompute every hash from there: the chain verifies again."""
    with as_database_owner(db, "audit_entries"), db.session() as session:
        rows = session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
        prev = rows[seq - 2].entry_hash if seq > 1 else "0" * 64
        updates = []
        for row in rows[seq - 1 :]:
            fields = entry_fields(row) | (values if row.seq == seq else {})
            fields["prev_hash"] = prev
            prev = entry_hash(fields)
            updates.append((row.seq, fields, prev))
        session.rollback()
    with as_database_owner(db, "audit_entries"), db.engine.begin() as conn:
        for number, fields, new_hash in reversed(updates):
            conn.execute(
                update(AuditEntry)
                .where(AuditEntry.seq == number)
                .values(details=fields["details"], prev_hash=fields["prev_hash"], entry_hash="x")
            )
            conn.execute(
                update(AuditEntry).where(AuditEntry.seq == number).values(entry_hash=new_hash)
            )


class TestSigningKey:
    def test_created_once_wrapped_and_private(self, tmp_path: Path) -> None:
        provider = LocalKeyProvider(tmp_path / "kek.json")
        first = SigningKey(tmp_path / "signing.json", provider)
        signature = first.sign(b"payload")
        again = SigningKey(tmp_path / "signing.json", provider)
        assert again.key_id == first.key_id
        assert again.public_key_pem() == first.public_key_pem()
        load_public_key(first.public_key_pem()).verify(signature, b"payload")
        assert stat.S_IMODE((tmp_path / "signing.json").stat().st_mode) == 0o600
        document = json.loads((tmp_path / "signing.json").read_text())
        assert document["provider"] == "local"
        assert set(document) >= {"wrapped", "public_key", "key_id", "kek_version"}
        assert "private" not in json.dumps(document).lower()

    def test_opens_only_with_its_kek(self, tmp_path: Path) -> None:
        SigningKey(tmp_path / "signing.json", LocalKeyProvider(tmp_path / "kek.json")).sign(b"x")
        other_kek = LocalKeyProvider(tmp_path / "other-kek.json")
        with pytest.raises(SigningKeyError.__mro__[1]):  # KeyUnwrapError is a KeyProviderError
            SigningKey(tmp_path / "signing.json", other_kek).sign(b"x")

    def test_a_readable_key_file_is_refused(self, tmp_path: Path) -> None:
        key = SigningKey(tmp_path / "signing.json", LocalKeyProvider(tmp_path / "kek.json"))
        key.sign(b"x")
        os.chmod(tmp_path / "signing.json", 0o644)
        with pytest.raises(SigningKeyError, match="chmod 600"):
            SigningKey(tmp_path / "signing.json", LocalKeyProvider(tmp_path / "kek.json")).sign(
                b"x"
            )


class TestCheckpoints:
    def test_signs_the_head_and_anchors_it(
        self, db: Database, store: SampleStore, signer: SigningKey
    ) -> None:
        make_history(db)
        with db.session() as session:
            head = verify_chain(session)
        entry = checkpoint(db, store, signer)
        payload = entry.details["payload"]
        assert isinstance(payload, dict)
        assert entry.action == CHECKPOINT_ACTION
        assert entry.seq == head.entries + 1
        assert payload["audit"] == {"head_seq": head.entries, "head_hash": head.head_hash}
        assert [seal["period"] for seal in payload["ledger_seals"]] == ["2026-02"]
        assert payload["store"]["objects"] == 0
        anchors = [info.key for info in store.blobs.list(ANCHOR_PREFIX)]
        assert anchors == [f"{ANCHOR_PREFIX}{head.entries:012d}.json"]
        with db.session() as session:
            status = verify_checkpoints(session, store, [signer.public_key])
        assert (status.ok, status.checkpoints, status.anchors) == (True, 1, 1)

    def test_deleting_the_newest_entries_is_caught(
        self, db: Database, store: SampleStore, signer: SigningKey
    ) -> None:
        make_history(db)
        first = checkpoint(db, store, signer)
        # Everything from entry 5 on goes, the checkpoint entry with it: the chain still verifies.
        delete_entries_from(db, 5)
        with db.session() as session:
            assert verify_chain(session).ok
            status = verify_checkpoints(session, store, [signer.public_key])
        assert not status.ok
        assert status.checkpoints == 0
        assert status.problems == [
            f"anchor {ANCHOR_PREFIX}{first.seq - 1:012d}.json: signs entry {first.seq - 1}, "
            "which is missing (the log was truncated or entries were deleted)"
        ]

    def test_a_rewritten_chain_is_caught(
        self, db: Database, store: SampleStore, signer: SigningKey
    ) -> None:
        make_history(db)
        checkpoint(db, store, signer)
        rewrite_chain_from(db, 5, details={"period": "2026-03"})
        with db.session() as session:
            assert verify_chain(session).ok  # the unkeyed chain is fooled
            status = verify_checkpoints(session, store, [signer.public_key])
        assert not status.ok
        assert len(status.problems) == 2  # the checkpoint entry and its anchor
        assert all("the chain was rewritten" in problem for problem in status.problems)

    def test_a_forged_checkpoint_is_caught(
        self, db: Database, store: SampleStore, signer: SigningKey
    ) -> None:
        make_history(db)
        entry = checkpoint(db, store, signer)
        forged = dict(entry.details)
        forged["payload"] = {**forged["payload"], "store": {"objects": 7}}  # type: ignore[dict-item]
        tamper(db, entry.seq, details=forged)
        with db.session() as session:
            status = verify_checkpoints(session, store, [signer.public_key])
        assert any(
            problem.startswith(f"checkpoint entry {entry.seq}: the signature does not verify")
            for problem in status.problems
        )

    def test_a_broken_chain_is_never_signed(
        self, db: Database, store: SampleStore, signer: SigningKey
    ) -> None:
        make_history(db)
        tamper(db, 3, details={"forged": True})
        with db.session() as session, pytest.raises(ChainNotSignable, match="entry 3"):
            create_checkpoint(session, store, signer, actor="test")
        assert list(store.blobs.list(ANCHOR_PREFIX)) == []


# --- exports --------------------------------------------------------------------------------


@pytest.fixture
def exported(db: Database, store: SampleStore, signer: SigningKey, tmp_path: Path) -> Path:
    make_history(db)
    checkpoint(db, store, signer)
    export_audit_log(db.factory, store, signer, tmp_path / "audit.tar.gz", actor="test")
    return tmp_path / "audit.tar.gz"


def read_bundle(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {
            member.name: tar.extractfile(member).read()  # type: ignore[union-attr]
            for member in tar.getmembers()
        }


def write_bundle_files(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def edit_entries(
    source: Path, target: Path, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
) -> Path:
    files = read_bundle(source)
    lines = [orjson.loads(line) for line in files["entries.jsonl"].splitlines()]
    changed = change(lines)
    files["entries.jsonl"] = b"".join(
        orjson.dumps(fields, option=orjson.OPT_SORT_KEYS) + b"\n" for fields in changed
    )
    write_bundle_files(target, files)
    return target


def rehash(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    prev = "0" * 64
    for fields in lines:
        fields["prev_hash"] = prev
        fields["entry_hash"] = prev = entry_hash(fields)
    return lines


def kinds(path: Path, signer: SigningKey, **options: Any) -> list[str]:
    return [
        problem.kind for problem in verify_bundle(path, [signer.public_key], **options).problems
    ]


class TestExport:
    def test_an_untouched_export_verifies(self, exported: Path, signer: SigningKey) -> None:
        report = verify_bundle(exported, [signer.public_key])
        assert report.ok, report.problems
        files = read_bundle(exported)
        manifest = json.loads(files["manifest.json"])
        assert report.entries == manifest["entries"] == report.head_seq
        assert report.checkpoints == 2  # the one before, and the export's own
        assert files["public-key.pem"] == signer.public_key_pem()
        assert sorted(files) == ["VERIFY.txt", "entries.jsonl", "manifest.json", "public-key.pem"]

    def test_the_export_is_audited(self, exported: Path, db: Database, signer: SigningKey) -> None:
        with db.session() as session:
            last = session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
            assert last is not None
            assert (last.action, last.actor) == ("audit.exported", "test")
            assert last.details["key_id"] == signer.key_id

    def test_an_edited_entry(self, exported: Path, signer: SigningKey, tmp_path: Path) -> None:
        def edit(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
            lines[3]["actor"] = "mallory"
            return lines

        assert kinds(edit_entries(exported, tmp_path / "t.tar.gz", edit), signer) == ["edited"]

    def test_a_deleted_entry(self, exported: Path, signer: SigningKey, tmp_path: Path) -> None:
        path = edit_entries(exported, tmp_path / "t.tar.gz", lambda lines: lines[:2] + lines[3:])
        report = verify_bundle(path, [signer.public_key])
        assert [p.kind for p in report.problems] == ["deleted"]
        assert report.problems[0].message == "entry 3 is missing before entry 4"

    def test_reordered_entries(self, exported: Path, signer: SigningKey, tmp_path: Path) -> None:
        def swap(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
            lines[2], lines[3] = lines[3], lines[2]
            return lines

        path = edit_entries(exported, tmp_path / "t.tar.gz", swap)
        report = verify_bundle(path, [signer.public_key])
        assert [(p.kind, p.message) for p in report.problems] == [
            ("reordered", "entry 4 comes before entry 3")
        ]

    def test_a_truncated_log(self, exported: Path, signer: SigningKey, tmp_path: Path) -> None:
        path = edit_entries(exported, tmp_path / "t.tar.gz", lambda lines: lines[:-3])
        assert "truncated" in kinds(path, signer)

    def test_a_rewritten_chain(self, exported: Path, signer: SigningKey, tmp_path: Path) -> None:
        def rewrite(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
            lines[4]["details"] = {"period": "2026-03"}
            return rehash(lines)

        found = kinds(edit_entries(exported, tmp_path / "t.tar.gz", rewrite), signer)
        assert "rewritten" in found
        assert set(found) <= {"rewritten", "edited"}

    def test_a_rewritten_chain_with_a_new_manifest_signed_by_another_key(
        self, exported: Path, signer: SigningKey, tmp_path: Path
    ) -> None:
        forger = Ed25519PrivateKey.generate()
        files = read_bundle(exported)
        manifest = json.loads(files["manifest.json"])
        del manifest["signature"]
        manifest["head_hash"] = "f" * 64
        body = orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS)
        manifest["signature"] = base64.b64encode(forger.sign(body)).decode()
        files["manifest.json"] = orjson.dumps(manifest)
        write_bundle_files(tmp_path / "t.tar.gz", files)
        assert kinds(tmp_path / "t.tar.gz", signer)[0] == "signature"

    def test_the_wrong_public_key(self, exported: Path, tmp_path: Path) -> None:
        stranger = Ed25519PrivateKey.generate().public_key()
        report = verify_bundle(exported, [stranger])
        assert {p.kind for p in report.problems} == {"signature"}

    def test_an_earlier_export_whose_head_was_removed(
        self,
        exported: Path,
        db: Database,
        store: SampleStore,
        signer: SigningKey,
        tmp_path: Path,
    ) -> None:
        head = json.loads(read_bundle(exported)["manifest.json"])["head_seq"]
        delete_entries_from(db, head - 1)
        export_audit_log(db.factory, store, signer, tmp_path / "later.tar.gz", actor="test")
        later = tmp_path / "later.tar.gz"
        assert verify_bundle(later, [signer.public_key]).ok  # consistent in itself
        assert kinds(later, signer, previous=[exported]) == ["earlier head"]

    def test_not_a_bundle(self, tmp_path: Path, signer: SigningKey) -> None:
        (tmp_path / "junk.tar.gz").write_bytes(b"not a tar")
        with pytest.raises(BundleError, match="not an audit export"):
            verify_bundle(tmp_path / "junk.tar.gz", [signer.public_key])


# --- the command line, the HTTP API and the worker -------------------------------------------


@pytest.fixture
def cli_env(db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MIP_DATABASE_URL", db.url)
    monkeypatch.setenv("MIP_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield settings.data_dir
    get_settings.cache_clear()


class TestCommands:
    def test_checkpoint_export_and_offline_verify(
        self, cli_env: Path, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        make_history(db)
        runner = CliRunner()
        signed = runner.invoke(cli_app, ["audit", "checkpoint", "--json"])
        assert signed.exit_code == 0, signed.output
        assert json.loads(signed.stdout)["head_seq"] == 8
        key = runner.invoke(cli_app, ["audit", "public-key", "-o", str(tmp_path / "key.pem")])
        assert key.exit_code == 0, key.output
        bundle = tmp_path / "audit.tar.gz"
        exported = runner.invoke(cli_app, ["audit", "export", str(bundle)])
        assert exported.exit_code == 0, exported.output
        verified = runner.invoke(cli_app, ["audit", "verify", "--json"])
        assert json.loads(verified.stdout)["checkpoints"]["checkpoints"] == 2
        # Offline: no database is reachable, and none is needed.
        monkeypatch.setenv("MIP_DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
        monkeypatch.setenv("MIP_DATA_DIR", str(tmp_path / "nowhere"))
        get_settings.cache_clear()
        args = ["audit", "verify-export", str(bundle), "--public-key", str(tmp_path / "key.pem")]
        ok = runner.invoke(cli_app, args)
        assert ok.exit_code == 0, ok.output
        assert "Export verified" in ok.stdout
        assert not (tmp_path / "nowhere").exists()
        cut = edit_entries(bundle, tmp_path / "cut.tar.gz", lambda lines: lines[:-2])
        refused = runner.invoke(cli_app, [*args[:2], str(cut), *args[3:], "--json"])
        assert refused.exit_code == 1
        assert "truncated" in {p["kind"] for p in json.loads(refused.stdout)["problems"]}

    def test_verify_exits_1_when_the_newest_entries_are_gone(
        self, cli_env: Path, db: Database, settings: Settings
    ) -> None:
        make_history(db)
        checkpoint(db, open_sample_store(settings), open_signing_key(settings))
        delete_entries_from(db, 6)
        result = CliRunner().invoke(cli_app, ["audit", "verify"])
        assert result.exit_code == 1
        assert "signs entry 8, which is missing" in result.stderr

    def test_verify_export_bad_input_exits_2(self, tmp_path: Path) -> None:
        (tmp_path / "key.pem").write_text("not a key")
        (tmp_path / "b.tar.gz").write_bytes(b"")
        result = CliRunner().invoke(
            cli_app,
            [
                "audit",
                "verify-export",
                str(tmp_path / "b.tar.gz"),
                "--public-key",
                str(tmp_path / "key.pem"),
            ],
        )
        assert result.exit_code == 2
        assert "not an Ed25519 public key" in result.stderr


class TestHttp:
    def test_auditor_signs_lists_verifies_and_exports(
        self, client: TestClient, db: Database, tmp_path: Path
    ) -> None:
        make_history(db)
        auditor = make_staff_key(db, "auditor")
        signed = client.post("/v1/governance/audit/checkpoints", headers=auditor)
        assert signed.status_code == 201, signed.text
        assert signed.json()["head_seq"] == 9  # the history and the auditor's key
        listed = client.get("/v1/governance/audit/checkpoints", headers=auditor).json()
        assert [c["seq"] for c in listed["checkpoints"]] == [signed.json()["seq"]]
        verified = client.get("/v1/governance/audit/verify", headers=auditor).json()
        assert verified["ok"] is True
        assert verified["checkpoints"]["anchors"] == 1
        pem = client.get("/v1/governance/audit/public-key", headers=auditor)
        assert pem.headers["content-type"] == "application/x-pem-file"
        bundle = client.post("/v1/governance/audit/exports", headers=auditor)
        assert bundle.status_code == 200, bundle.text
        assert bundle.headers["content-type"] == "application/gzip"
        (tmp_path / "b.tar.gz").write_bytes(bundle.content)
        report = verify_bundle(tmp_path / "b.tar.gz", [load_public_key(pem.content)])
        assert report.ok, report.problems

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("POST", "/v1/governance/audit/checkpoints"),
            ("GET", "/v1/governance/audit/checkpoints"),
            ("GET", "/v1/governance/audit/public-key"),
            ("POST", "/v1/governance/audit/exports"),
            ("GET", "/v1/governance/audit/verify"),
        ],
    )
    def test_other_roles_are_refused(
        self, client: TestClient, db: Database, method: str, path: str
    ) -> None:
        response = client.request(method, path, headers=make_staff_key(db, "dataops"))
        assert response.status_code == 403
        assert set(response.json()) == {"err_code", "err_msg", "request_id"}

    def test_a_broken_chain_is_a_409(self, client: TestClient, db: Database) -> None:
        make_history(db)
        tamper(db, 2, details={})
        response = client.post(
            "/v1/governance/audit/checkpoints", headers=make_staff_key(db, "admin")
        )
        assert response.status_code == 409
        assert "does not verify at entry 2" in response.json()["err_msg"]


def test_the_worker_signs_a_checkpoint(db: Database, settings: Settings) -> None:
    make_history(db)
    _loop(db.factory, settings, interval=0, once=True, jobs=False, execute=None)
    with db.session() as session:
        status = verify_checkpoints(
            session, open_sample_store(settings), [open_signing_key(settings).public_key]
        )
        actors = session.scalars(
            select(AuditEntry.actor).where(AuditEntry.action == CHECKPOINT_ACTION)
        ).all()
    assert status.ok
    assert actors == ["worker"]
