"""`mip compliance export`: a data subject's access archive, on SQLite and PostgreSQL.

One organization with two projects (ledger rows, kept samples with real speech, labels, a
legal hold, a labeler's reference transcript, an erasure of the second project), another
organization beside it, and training sets and model versions holding samples of both.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from app.audit.service import verify_chain
from app.cli import app as cli_app
from app.compliance.subject import (
    EXPORT_ACTION,
    LEDGER_COLUMNS,
    SAMPLE_COLUMNS,
    SubjectScope,
    export_subject,
)
from app.datasets import repository as datasets_repository
from app.erasure.service import request_erasure
from app.kit.cli import CLI_ACTOR
from app.kit.settings import get_settings
from app.samples import repository as samples_repository
from app.samples.service import label_sample, set_reference
from app.tables import ApiKey, AuditEntry, Sample
from app.tables.training import ModelVersion
from app.tenancy import service as tenancy
from app.training.promotion import flag_tainted_versions
from tests.conftest import Database, Tenant, make_tenant
from tests.samples.conftest import SENTENCE, Service, build_service, make_settings
from tests.speech import synth_speech
from tests.training.conftest import add_training_set

REFERENCE = "please ring the pharmacy about the refill"
ORG_FILES = {
    "ledger.csv",
    "samples.csv",
    "training_sets.json",
    "models.json",
    "organization.json",
    "audit.json",
    "manifest.json",
}
PROJECT_FILES = ORG_FILES - {"organization.json"} | {"project.json"}

runner = CliRunner()


@pytest.fixture(scope="module")
def speech() -> bytes:
    return synth_speech(SENTENCE)


@pytest.fixture
def service(db: Database, tmp_path: Path) -> Iterator[Service]:
    yield from build_service(db, make_settings(db, tmp_path))


@pytest.fixture
def cli_env(db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setenv("MIP_DATABASE_URL", db.url)
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


@dataclass
class World:
    """What each project holds, by ledger request id and sample id."""

    service: Service
    first: Tenant  # organization A, project 1
    second: Tenant  # organization A, project 2 (being erased)
    other: Tenant  # organization B
    requests: dict[uuid.UUID, set[str]]  # project id -> ledger request ids
    samples: dict[uuid.UUID, set[str]]  # project id -> sample ids
    sets: dict[str, uuid.UUID]  # "shared" (A's two projects and B; tainted), "second", "other"
    models: dict[str, uuid.UUID]  # one trained on each set, by the set's key

    def ids(self, *tenants: Tenant) -> tuple[set[str], set[str]]:
        """The request ids and sample ids of these tenants' projects."""
        requests = {r for t in tenants for r in self.requests[t.project_id]}
        return requests, {s for t in tenants for s in self.samples[t.project_id]}


def second_project(db: Database, org_id: uuid.UUID) -> Tenant:
    with db.session() as session:
        project = tenancy.create_project(
            session, organization_id=org_id, name="Acme mobile", actor="test"
        )
        key, secret = tenancy.create_project_key(session, project_id=project.id, actor="test")
        return Tenant(org_id, project.id, key.id, secret)


def add_set(db: Database, name: str, members: list[tuple[str, Tenant, str]]) -> uuid.UUID:
    training_set = add_training_set(db, name)
    with db.session() as session:
        datasets_repository.add_members(
            session,
            set_id=training_set.id,
            members=[(uuid.UUID(s), tenant.org_id, split) for s, tenant, split in members],
        )
    return training_set.id


def add_model(db: Database, training_set: uuid.UUID, version: str) -> uuid.UUID:
    with db.session() as session:
        row = ModelVersion(
            uuid=uuid.uuid4(),
            name="ctcconformer-medical",
            version=version,
            filename=f"ctcconformer-medical-{version}.dg",
            blob_key=f"models/candidates/ctcconformer-medical-{version}.dg",
            training_set_id=training_set,
            metrics={},
        )
        session.add(row)
        session.flush()
        return row.id


@pytest.fixture
def world(service: Service, speech: bytes) -> World:
    db = service.db
    first, other = service.tenant, make_tenant(db, name="Other")
    second = second_project(db, first.org_id)
    requests: dict[uuid.UUID, set[str]] = {}
    samples: dict[uuid.UUID, set[str]] = {}
    attributes = {"accent": "us", "sex": "female", "domain": "medical"}
    for tenant, kept, plain in [
        (first, ["p1-a", "p1-b"], ["p1-c"]),
        (second, ["p2-a"], ["p2-b"]),
        (other, ["b-a"], []),
    ]:
        for request_id in kept:
            body = service.keep(request_id, speech, tenant=tenant, attributes=attributes)
            samples.setdefault(tenant.project_id, set()).add(body["id"])
        for request_id in plain:
            service.record(request_id, tenant=tenant)
        requests[tenant.project_id] = {*kept, *plain}
    p1a, p1b = sorted(samples[first.project_id])
    (p2a,) = samples[second.project_id]
    (ba,) = samples[other.project_id]
    with db.session() as session:
        for sample_id in (p1a, p2a):
            sample = samples_repository.get_sample(session, uuid.UUID(sample_id))
            assert sample is not None
            label_sample(session, sample, attributes={"age_group": "adult"}, actor="labeler")
            label_sample(session, sample, attributes={}, actor="labeler", legal_hold=True)
        sample = samples_repository.get_sample(session, uuid.UUID(p1b))
        assert sample is not None
        set_reference(session, service.store, sample, text=REFERENCE, actor="labeler")
    shared = [(p1a, first, "train"), (p1b, first, "eval"), (p2a, second, "train")]
    sets = {
        "shared": add_set(db, "medical-en", [*shared, (ba, other, "train")]),
        "second": add_set(db, "medical-mobile", [(p2a, second, "train")]),
        "other": add_set(db, "medical-other", [(ba, other, "train")]),
    }
    models = {
        name: add_model(db, set_id, f"2030-01-01.{i}")
        for i, (name, set_id) in enumerate(sets.items(), start=1)
    }
    with db.session() as session:
        erasure = request_erasure(
            session, organization_id=None, project_id=second.project_id, actor="test"
        )
        flag_tainted_versions(session, service.store, service.app.state.settings, actor="test")
    assert erasure.project_id == second.project_id
    return World(service, first, second, other, requests, samples, sets, models)


# --- running the command and reading its archive ---


def mip_export(*args: str) -> Any:
    return runner.invoke(cli_app, ["compliance", "export", *args])


@dataclass
class Archive:
    files: dict[str, bytes]

    @classmethod
    def read(cls, path: Path) -> Archive:
        with zipfile.ZipFile(path) as archive:
            return cls({name: archive.read(name) for name in archive.namelist()})

    def csv(self, name: str) -> list[dict[str, str]]:
        return list(csv.DictReader(io.StringIO(self.files[name].decode())))

    def json(self, name: str) -> Any:
        return json.loads(self.files[name])

    def column(self, name: str, column: str) -> list[str]:
        return [row[column] for row in self.csv(name)]


def export(world: World, tmp_path: Path, *scope: str) -> tuple[Archive, dict[str, Any]]:
    """Run the command with ``--json``; the archive and the manifest it printed."""
    output = tmp_path / "subject.zip"
    result = mip_export(*scope, "--output", str(output), "--json")
    assert result.exit_code == 0, result.output
    return Archive.read(output), json.loads(result.stdout)


@pytest.fixture
def org_export(world: World, cli_env: Database, tmp_path: Path) -> tuple[Archive, dict[str, Any]]:
    return export(world, tmp_path, "--org", str(world.first.org_id))


@pytest.fixture
def project_export(
    world: World, cli_env: Database, tmp_path: Path
) -> tuple[Archive, dict[str, Any]]:
    return export(world, tmp_path, "--project", str(world.first.project_id))


class TestOrganizationExport:
    def test_holds_exactly_the_organizations_rows(
        self, world: World, org_export: tuple[Archive, dict[str, Any]]
    ) -> None:
        archive, _ = org_export
        assert set(archive.files) == ORG_FILES
        requests, samples = world.ids(world.first, world.second)
        ledger = archive.csv("ledger.csv")
        assert list(ledger[0]) == list(LEDGER_COLUMNS)
        assert sorted(r["request_id"] for r in ledger) == sorted(requests)
        assert {r["organization_id"] for r in ledger} == {str(world.first.org_id)}
        for row in ledger:  # money as integer micro-dollars
            list_amount, discount, amount = (
                int(row[c]) for c in ("list_amount_micros", "discount_micros", "amount_micros")
            )
            assert list_amount == discount + amount > 0
        assert list(archive.csv("samples.csv")[0]) == list(SAMPLE_COLUMNS)
        assert sorted(archive.column("samples.csv", "id")) == sorted(samples)

        sets = {s["name"]: s for s in archive.json("training_sets.json")}
        assert set(sets) == {"medical-en", "medical-mobile"}  # not B's own set
        shared = sets["medical-en"]
        assert shared["id"] == str(world.sets["shared"])
        assert {m["sample_id"] for m in shared["samples"]} == samples  # not B's sample
        assert sorted(m["split"] for m in shared["samples"]) == ["eval", "train", "train"]
        assert shared["tainted"] is True  # the erasure of project 2 tainted it
        models = {m["id"]: m for m in archive.json("models.json")}
        assert set(models) == {str(world.models["shared"]), str(world.models["second"])}
        assert all(m["tainted"] and m["taint_reason"] for m in models.values())

        org = archive.json("organization.json")
        assert org["id"] == str(world.first.org_id)
        assert org["plan"] == "growth"
        projects = {p["id"]: p for p in org["projects"]}
        assert set(projects) == {str(world.first.project_id), str(world.second.project_id)}
        assert [k["id"] for k in projects[str(world.second.project_id)]["keys"]] == [
            str(world.second.key_id)
        ]
        (erasure,) = org["erasure_requests"]
        assert erasure["project_id"] == str(world.second.project_id)

        audit = archive.json("audit.json")
        assert {e["organization_id"] for e in audit} == {str(world.first.org_id)}
        actions = [e["action"] for e in audit]
        assert actions[0] == "organization.created"
        assert {"project.created", "erasure.requested", "sample.legal_hold_set"} <= set(actions)
        assert [e["seq"] for e in audit] == sorted(e["seq"] for e in audit)

    def test_manifest_hashes_and_counts_match_the_files(
        self, world: World, org_export: tuple[Archive, dict[str, Any]]
    ) -> None:
        archive, printed = org_export
        manifest = archive.json("manifest.json")
        assert manifest == printed
        assert manifest["scope"] == {
            "type": "organization",
            "organization_id": str(world.first.org_id),
            "project_id": None,
        }
        assert manifest["actor"] == CLI_ACTOR
        assert set(manifest["files"]) == ORG_FILES - {"manifest.json"}
        for name, entry in manifest["files"].items():
            content = archive.files[name]
            assert entry["sha256"] == hashlib.sha256(content).hexdigest(), name
            assert entry["bytes"] == len(content)
            if name.endswith(".csv"):
                assert entry["rows"] == len(archive.csv(name)), name
            else:
                document = archive.json(name)
                assert entry["rows"] == (len(document) if isinstance(document, list) else 1)
        assert manifest["files"]["ledger.csv"]["rows"] == 5
        assert manifest["files"]["samples.csv"]["rows"] == 3

    def test_is_an_audit_entry_with_the_scope_and_counts_only(
        self, world: World, org_export: tuple[Archive, dict[str, Any]]
    ) -> None:
        _, manifest = org_export
        with world.service.db.session() as session:
            (entry,) = session.scalars(
                select(AuditEntry).where(AuditEntry.action == EXPORT_ACTION)
            ).all()
            assert verify_chain(session).ok
        assert entry.actor == CLI_ACTOR
        assert (entry.target_type, entry.target_id) == ("organization", str(world.first.org_id))
        assert entry.organization_id == world.first.org_id
        assert entry.details == {
            "scope": manifest["scope"],
            "counts": {name: f["rows"] for name, f in manifest["files"].items()},
        }

    def test_holds_no_secret_key_hash_audio_or_transcript(
        self, world: World, org_export: tuple[Archive, dict[str, Any]]
    ) -> None:
        archive, _ = org_export
        with world.service.db.session() as session:
            keys = session.scalars(select(ApiKey)).all()
            stored = session.scalars(select(Sample)).all()
        forbidden = [t.key for t in (world.first, world.second, world.other)]
        forbidden += [k.key_hash for k in keys] + [k.key_prefix for k in keys]
        forbidden += [name for s in stored for name in (s.audio_blob_key, s.transcript_blob_key)]
        forbidden += [s.reference_blob_key for s in stored if s.reference_blob_key]
        forbidden += [s.audio_sha256 for s in stored if s.audio_sha256]
        forbidden += [SENTENCE, REFERENCE, "pharmacy", "RIFF"]
        assert len(forbidden) > 20
        for name, content in archive.files.items():
            text = content.decode()
            assert [f for f in forbidden if f in text] == [], name


class TestProjectExport:
    def test_holds_only_the_projects_rows(
        self, world: World, project_export: tuple[Archive, dict[str, Any]]
    ) -> None:
        archive, manifest = project_export
        assert set(archive.files) == PROJECT_FILES
        assert manifest["scope"]["project_id"] == str(world.first.project_id)
        requests, samples = world.ids(world.first)
        assert sorted(archive.column("ledger.csv", "request_id")) == sorted(requests)
        assert set(archive.column("ledger.csv", "project_id")) == {str(world.first.project_id)}
        assert sorted(archive.column("samples.csv", "id")) == sorted(samples)
        (shared,) = archive.json("training_sets.json")
        assert shared["id"] == str(world.sets["shared"])
        assert {m["sample_id"] for m in shared["samples"]} == samples
        assert [m["id"] for m in archive.json("models.json")] == [str(world.models["shared"])]

        project = archive.json("project.json")
        assert project["id"] == str(world.first.project_id)
        assert [k["id"] for k in project["keys"]] == [str(world.first.key_id)]
        assert project["organization"]["id"] == str(world.first.org_id)
        assert project["erasure_requests"] == []  # project 2's erasure is not this project's

    def test_audit_holds_no_entry_about_another_project(
        self, world: World, project_export: tuple[Archive, dict[str, Any]]
    ) -> None:
        archive, _ = project_export
        audit = archive.json("audit.json")
        text = archive.files["audit.json"].decode()
        (_, second_samples) = world.ids(world.second)
        for other in [world.second.project_id, world.second.key_id, *second_samples]:
            assert str(other) not in text
        targets = {(e["action"], e["target_id"]) for e in audit}
        _, first_samples = world.ids(world.first)
        assert ("organization.created", str(world.first.org_id)) in targets
        assert ("project.created", str(world.first.project_id)) in targets
        assert ("api_key.created", str(world.first.key_id)) in targets
        held = {t for action, t in targets if action == "sample.legal_hold_set"}
        assert held
        assert held <= first_samples
        actions = {action for action, _ in targets}
        assert actions.isdisjoint({"erasure.requested", "training_sets.tainted"})


class TestRefusals:
    @pytest.mark.parametrize("option", ["--org", "--project"])
    def test_an_unknown_id_exits_2_and_writes_nothing(
        self, cli_env: Database, tmp_path: Path, option: str
    ) -> None:
        make_tenant(cli_env)
        unknown = str(uuid.uuid4())
        result = mip_export(option, unknown, "--output", str(tmp_path / "subject.zip"))
        assert result.exit_code == 2, result.output
        assert f"{unknown} not found" in result.output
        assert list(tmp_path.iterdir()) == []
        with cli_env.session() as session:
            exported = session.scalars(
                select(AuditEntry).where(AuditEntry.action == EXPORT_ACTION)
            ).all()
        assert exported == []

    def test_an_existing_archive_is_kept_when_the_export_fails(
        self, cli_env: Database, tmp_path: Path
    ) -> None:
        output = tmp_path / "subject.zip"
        output.write_bytes(b"the previous export")
        result = mip_export("--project", str(uuid.uuid4()), "--output", str(output))
        assert result.exit_code == 2
        assert output.read_bytes() == b"the previous export"
        assert list(tmp_path.iterdir()) == [output]

    @pytest.mark.parametrize("both", [True, False])
    def test_needs_exactly_one_of_org_and_project(
        self, cli_env: Database, tmp_path: Path, both: bool
    ) -> None:
        tenant = make_tenant(cli_env)
        scope = ["--org", str(tenant.org_id), "--project", str(tenant.project_id)] if both else []
        result = mip_export(*scope, "--output", str(tmp_path / "subject.zip"))
        assert result.exit_code == 2
        assert "one of --org or --project" in result.output
        assert list(tmp_path.iterdir()) == []


class TestStreaming:
    def test_rows_are_written_batch_by_batch_with_progress(
        self, world: World, tmp_path: Path
    ) -> None:
        reported: list[tuple[int, int]] = []
        output = tmp_path / "org.zip"
        with world.service.db.session() as session:
            manifest = export_subject(
                session,
                SubjectScope("organization", world.first.org_id),
                output,
                actor="test",
                on_progress=lambda done, total: reported.append((done, total)),
                batch=2,
            )
        # 5 ledger rows in batches of 2, 2, 1, then 3 samples in batches of 2, 1.
        assert reported == [(0, 8), (2, 8), (4, 8), (5, 8), (7, 8), (8, 8)]
        assert Archive.read(output).json("manifest.json") == manifest
        assert output.stat().st_mode & 0o777 == 0o600
