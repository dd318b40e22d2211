"""``mip custom`` after the data, from the command line: confirm and reopen the data set, the
vocabulary (CSV, JSON, bad files), versions (report, publish, roll back, reject), sharing,
usage, and training jobs (refused below the minimum hours, queued, followed, cancelled) — on
SQLite and PostgreSQL. Versions are registered directly (no training runs here)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from app.cli import app as cli_app
from app.kit.settings import Settings, get_settings
from tests.conftest import Database, make_tenant
from tests.custom.conftest import Reseller, bundled_settings, make_reseller
from tests.custom.test_versions_sharing import SENTENCE, register
from tests.speech import synth_speech


@pytest.fixture(scope="module")
def speech() -> bytes:
    return synth_speech(SENTENCE)


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:
    """The real base model (uploads are scored), the default minimum hours (10)."""
    return bundled_settings(db, tmp_path)


def mip(*args: str) -> Result:
    return CliRunner().invoke(cli_app, list(args))


def mip_json(*args: str) -> Any:
    result = mip(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def refused(code: int, *args: str) -> str:
    """The command fails with exit status ``code``; its message on stderr."""
    result = mip(*args)
    assert result.exit_code == code, result.output
    assert "error" in result.stderr.lower() or "Invalid value" in result.stderr, result.stderr
    return " ".join(result.stderr.split())


@pytest.fixture
def reseller(db: Database) -> Reseller:
    return make_reseller(db)


@pytest.fixture
def model(cli_env: None, reseller: Reseller, speech: bytes, tmp_path: Path) -> str:
    """The reseller's model ``clinic`` with one accepted training pair (by the CLI)."""
    made = mip_json("custom", "create", "clinic", "--reseller", reseller.id, "--domain", "medical")
    audio = tmp_path / "call.wav"
    audio.write_bytes(speech)
    pair = mip_json("custom", "upload", made["id"], str(audio), "--transcript", SENTENCE)
    assert pair["status"] == "accepted", pair
    model_id: str = made["id"]
    return model_id


@pytest.fixture
def confirmed(model: str) -> dict[str, Any]:
    out: dict[str, Any] = mip_json("custom", "confirm", model)
    return out


class TestDataSet:
    def test_confirm_and_reopen(self, model: str) -> None:
        confirmed = mip_json("custom", "confirm", model)
        assert (confirmed["id"], confirmed["status"]) == (model, "ready_to_train")
        assert confirmed["data_set"]["files"] == 1
        assert len(confirmed["data_set"]["hash"]) == 64
        assert confirmed["published_version"] is None
        assert "already confirmed" in refused(1, "custom", "confirm", model)
        reopened = mip_json("custom", "reopen", model)
        assert (reopened["status"], reopened["data_set"]) == ("collecting", None)
        assert "not confirmed" in refused(1, "custom", "reopen", model)
        assert refused(1, "custom", "confirm", str(uuid.uuid4()))
        assert refused(2, "custom", "reopen", "not-a-uuid")


class TestVocabulary:
    def test_set_from_csv_and_json_and_a_bad_file(self, model: str, tmp_path: Path) -> None:
        assert mip_json("custom", "vocabulary", model) == {"terms": []}
        csv_file = tmp_path / "terms.csv"
        csv_file.write_text(
            "term,sounds_like,weight\nmetformin,met for min,2\nK8s,kates; k eights,\n\n"
        )
        got = mip_json("custom", "vocabulary", model, "--set", str(csv_file))
        assert [(t["term"], t["sounds_like"], t["weight"]) for t in got["terms"]] == [
            ("metformin", ["met for min"], 2.0),
            ("K8s", ["kates", "k eights"], 1.0),
        ]
        assert mip_json("custom", "vocabulary", model) == got
        shown = mip("custom", "vocabulary", model)
        assert shown.exit_code == 0
        assert "metformin" in shown.stdout

        json_file = tmp_path / "terms.json"
        json_file.write_text(json.dumps({"terms": [{"term": "stent", "weight": 3}]}))
        got = mip_json("custom", "vocabulary", model, "--set", str(json_file))
        assert got == {"terms": [{"term": "stent", "sounds_like": [], "weight": 3.0}]}

        bad = {
            "covid.csv": ("term\nCOVID-19\n", "Invalid vocabulary"),  # digits, no sounds-like
            "weight.csv": ("term,weight\nstent,heavy\n", "weight 'heavy' is not a number"),
            "columns.csv": ("term,colour\nstent,red\n", "unknown columns colour"),
            "extra.json": ('{"terms": [{"term": "stent", "colour": "red"}]}', "terms.0.colour"),
            "broken.json": ('{"terms": [', "is not valid JSON"),
            "terms.txt": ("stent\n", "give a .json or a .csv"),
        }
        for name, (content, message) in bad.items():
            (tmp_path / name).write_text(content)
            said = refused(2, "custom", "vocabulary", model, "--set", str(tmp_path / name))
            assert message in said, (name, said)
        assert mip_json("custom", "vocabulary", model) == got  # unchanged


class TestVersions:
    def test_report_publish_roll_back_and_reject(
        self,
        db: Database,
        settings: Settings,
        tmp_path: Path,
        model: str,
        confirmed: dict[str, Any],
    ) -> None:
        first = register(db, settings, tmp_path, model, 1)
        register(db, settings, tmp_path, model, 2)
        listed = mip_json("custom", "versions", model)["versions"]
        assert [(v["number"], v["status"]) for v in listed] == [(2, "candidate"), (1, "candidate")]
        assert "candidate" in mip("custom", "versions", model).stdout
        one = mip_json("custom", "version", model, "1")
        assert (one["package_uuid"], one["data_hash"]) == (first, confirmed["data_set"]["hash"])
        assert one["test"] == {"wer_custom": 0.1, "wer_standard": 0.3}
        assert "not found" in refused(1, "custom", "version", model, "9")

        html = tmp_path / "report.html"
        written = mip_json("custom", "report", model, "1", "--output", str(html))
        assert (written["format"], written["bytes"]) == ("html", len("<html>report</html>"))
        assert html.read_text() == "<html>report</html>"
        figures = tmp_path / "report.json"
        written = mip_json("custom", "report", model, "1", "--output", str(figures))
        assert (written["format"], figures.read_text()) == ("json", "{}")
        printed = mip("custom", "report", model, "1")
        assert printed.exit_code == 0, printed.output
        assert json.loads(printed.stdout) == {}
        assert "--output" in refused(2, "custom", "report", model, "1", "--format", "html")

        models_dir = settings.effective_models_dir
        published = mip_json("custom", "publish", model, "1")
        assert published["status"] == "published"
        assert (models_dir / published["filename"]).is_file()
        second = mip_json("custom", "publish", model, "2")
        assert (models_dir / second["filename"]).is_file()
        assert not (models_dir / published["filename"]).exists()
        # Roll back: the retired version is published again.
        back = mip_json("custom", "publish", model, "1")
        assert (back["status"], back["package_uuid"]) == ("published", first)
        statuses = {
            v["number"]: v["status"] for v in mip_json("custom", "versions", model)["versions"]
        }
        assert statuses == {1: "published", 2: "retired"}
        assert not (models_dir / second["filename"]).exists()

        register(db, settings, tmp_path, model, 3)
        assert mip_json("custom", "reject", model, "3")["status"] == "rejected"
        assert "only a candidate or a retired" in refused(1, "custom", "publish", model, "3")
        assert "not a candidate" in refused(1, "custom", "reject", model, "1")


class TestSharing:
    def test_assign_list_and_revoke(
        self,
        db: Database,
        settings: Settings,
        tmp_path: Path,
        reseller: Reseller,
        model: str,
        confirmed: dict[str, Any],
    ) -> None:
        register(db, settings, tmp_path, model, 1)
        mip_json("custom", "publish", model, "1")
        org = str(make_tenant(db, name="Clinic", reseller_id=reseller.id).org_id)
        other = str(make_tenant(db, name="Ward", reseller_id=reseller.id).org_id)
        stranger = make_reseller(db, name="Other reseller")
        foreign = str(make_tenant(db, name="Foreign", reseller_id=stranger.id).org_id)

        said = refused(2, "custom", "assign", model, foreign)
        assert f"not managed by the model's reseller: {foreign}" in said
        assert "time zone" in refused(
            2, "custom", "assign", model, org, "--revoke-at", "2030-01-01T00:00:00"
        )
        assert "permissions" in refused(2, "custom", "assign", model, org, "--permission", "admin")
        assert mip_json("custom", "assignments", model) == {"assignments": []}

        later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).replace(microsecond=0)
        shared = mip_json(
            "custom",
            "assign",
            model,
            org,
            other,
            "--mode",
            "default",
            "--permission",
            "view",
            "--permission",
            "use",
            "--revoke-at",
            later.isoformat(),
        )["assignments"]
        assert {a["organization_id"] for a in shared} == {org, other}
        assert {(a["mode"], tuple(a["permissions"]), a["active"]) for a in shared} == {
            ("default", ("view", "use"), True)
        }
        assert dt.datetime.fromisoformat(shared[0]["revoke_at"]) == later
        listed = mip_json("custom", "assignments", model)["assignments"]
        assert {a["organization_id"] for a in listed} == {org, other}

        soon = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).replace(microsecond=0)
        scheduled = mip_json("custom", "revoke", model, other, "--at", soon.isoformat())
        assert dt.datetime.fromisoformat(scheduled["assignments"][0]["revoke_at"]) == soon
        revoked = mip_json("custom", "revoke", model, org)["assignments"]
        assert [(a["organization_id"], a["active"]) for a in revoked] == [(org, False)]
        listed = mip_json("custom", "assignments", model)["assignments"]
        assert [a["organization_id"] for a in listed] == [other]
        everything = mip_json("custom", "assignments", model, "--include-revoked")["assignments"]
        assert {(a["organization_id"], a["active"]) for a in everything} == {
            (org, False),
            (other, True),
        }
        assert "not shared with" in refused(1, "custom", "revoke", model, org)


class TestUsage:
    def test_no_requests_yet(self, db: Database, reseller: Reseller, model: str) -> None:
        today = dt.datetime.now(dt.UTC).date()
        usage = mip_json("custom", "usage", model)
        assert usage == {
            "model_id": model,
            "start": (today - dt.timedelta(days=29)).isoformat(),
            "end": today.isoformat(),
            "rows": [],
            "totals": {"requests": 0, "audio_minutes": 0.0},
        }
        org = str(make_tenant(db, name="Clinic", reseller_id=reseller.id).org_id)
        args = ("--start", "2026-12-01", "--end", "2026-12-31", "--organization", org)
        narrowed = mip_json("custom", "usage", model, *args)
        assert (narrowed["start"], narrowed["end"], narrowed["rows"]) == (
            "2026-12-01",
            "2026-12-31",
            [],
        )
        assert "is not a date" in refused(2, "custom", "usage", model, "--start", "yesterday")
        said = refused(2, "custom", "usage", model, "--start", "2026-12-31", "--end", "2026-12-01")
        assert "end must not be before start" in said


class TestTraining:
    def test_below_the_minimum_hours_is_refused(self, confirmed: dict[str, Any]) -> None:
        said = refused(1, "custom", "train", confirmed["id"])
        assert "at least 10 (MIP_CUSTOM_MIN_HOURS)" in said
        assert "hours are missing" in said
        assert mip_json("custom", "show", confirmed["id"])["status"] == "ready_to_train"
        assert mip_json("custom", "jobs", confirmed["id"])["total"] == 0

    def test_queue_follow_and_cancel(
        self, confirmed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("MIP_CUSTOM_MIN_HOURS", "0.0005")
        get_settings.cache_clear()
        model = confirmed["id"]
        said = refused(2, "custom", "train", model, "--test-fraction", "0.9")
        assert "--test-fraction" in said

        queued = mip_json("custom", "train", model, "--minutes", "1", "--seed", "3")
        assert (queued["status"], queued["custom_model_id"]) == ("queued", model)
        assert queued["training_set_id"] is None
        assert (queued["hyperparameters"]["minutes"], queued["hyperparameters"]["seed"]) == (1, 3)
        assert mip_json("custom", "show", model)["status"] == "training"
        assert "is training" in refused(1, "custom", "train", model)

        listed = mip_json("custom", "jobs", model)
        assert (listed["total"], [j["id"] for j in listed["jobs"]]) == (1, [queued["id"]])
        assert (listed["page"], listed["limit"]) == (0, 100)
        assert mip_json("custom", "job", model, queued["id"]) == queued
        logs = mip_json("custom", "logs", model, queued["id"])
        assert logs["job_id"] == queued["id"]
        assert "queued by cli:" in logs["lines"][0]["message"]
        assert "not found" in refused(1, "custom", "job", model, str(uuid.uuid4()))

        cancelled = mip_json("custom", "cancel", model, queued["id"])
        assert (cancelled["id"], cancelled["status"]) == (queued["id"], "cancelled")
        assert mip_json("custom", "show", model)["status"] == "ready_to_train"
        assert "already cancelled" in refused(1, "custom", "cancel", model, queued["id"])
        again = mip("custom", "train", model)  # the human-readable answer
        assert again.exit_code == 0, again.output
        assert "`mip worker` runs it" in again.stdout
        assert mip_json("custom", "jobs", model)["total"] == 2
