"""Labels and legal holds change what training may use and what a purge keeps: each change is
an audit entry with the caller as its actor (a person at the CLI: user and host)."""

from __future__ import annotations

import getpass
import socket
from pathlib import Path

from sqlalchemy import select

from app.kit.settings import Settings
from app.tables import AuditEntry
from tests.conftest import make_staff_key
from tests.samples.conftest import Service, mip


def entries(service: Service, action: str) -> list[AuditEntry]:
    with service.db.session() as session:
        stmt = select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
        return list(session.scalars(stmt))


class TestLabelAudit:
    def test_a_label_change_names_what_changed_and_who(
        self, service: Service, speech: bytes
    ) -> None:
        sample = service.keep("l-1", speech)
        dataops = make_staff_key(service.db, "dataops")
        url = f"/v1/governance/samples/{sample['id']}"
        response = service.client.patch(
            url, json={"attributes": {"accent": "rp", "sex": "female"}}, headers=dataops
        )
        assert response.status_code == 200, response.text
        # The same values again change nothing and say nothing.
        service.client.patch(url, json={"attributes": {"accent": "rp"}}, headers=dataops)
        (entry,) = entries(service, "sample.labeled")
        assert entry.target_id == sample["id"]
        assert entry.actor.startswith("staff:dataops:")
        assert entry.details == {
            "attributes": {
                "accent": {"from": None, "to": "rp"},
                "sex": {"from": None, "to": "female"},
            }
        }

    def test_legal_hold_set_and_released(self, service: Service, speech: bytes) -> None:
        sample = service.keep("l-2", speech)
        url = f"/v1/governance/samples/{sample['id']}"
        for hold in (True, False):
            response = service.client.patch(url, json={"legal_hold": hold}, headers=service.admin)
            assert response.status_code == 200, response.text
        assert [e.target_id for e in entries(service, "sample.legal_hold_set")] == [sample["id"]]
        assert [e.target_id for e in entries(service, "sample.legal_hold_released")] == [
            sample["id"]
        ]

    def test_bulk_labels_from_the_cli_carry_the_os_user_and_host(
        self, service: Service, cli_env: Settings, speech: bytes, tmp_path: Path
    ) -> None:
        sample = service.keep("l-3", speech)
        labels = tmp_path / "labels.csv"
        labels.write_text(f"sample_id,age_group\n{sample['id']},senior\n")
        result = mip("store", "label", "--csv", str(labels))
        assert result.exit_code == 0, result.output
        (entry,) = entries(service, "sample.labeled")
        assert entry.actor == f"cli:{getpass.getuser()}@{socket.gethostname()}"
        assert entry.details == {"attributes": {"age_group": {"from": None, "to": "senior"}}}
