"""A /v1/listen request that arrives while its project's erasure is open keeps nothing.

The erasure is requested (``pending``) but not yet run, as it is for the moment between an
erasure request and its last step. The sampler selects every request (rate 1.0): without the
sample store's guard the request would be kept, with it the request is billed and nothing of
its audio or transcript is written.
"""

from __future__ import annotations

from sqlalchemy import select

from app.erasure import service as erasure
from app.tables import ErasureRequest
from tests.listen.conftest import Serve


class TestErasureUnderWay:
    def test_a_selected_request_during_a_project_erasure_keeps_nothing(
        self, serve: Serve, speech: bytes
    ) -> None:
        api = serve(sampling_rate=1.0)
        kept = api.post(speech)
        assert kept.status_code == 200, kept.text
        assert len(api.samples()) == 1  # the guard lets a request through when no erasure is open
        files_before = api.blob_files()
        with api.db.session() as session:
            erasure.request_erasure(
                session,
                organization_id=api.tenant.org_id,
                project_id=api.tenant.project_id,
                actor="test",
            )

        response = api.post(speech)

        assert response.status_code == 200, response.text
        request_id = response.json()["metadata"]["request_id"]
        entry = api.entry(request_id)
        assert (entry.sample_selected, entry.sample_kept) == (True, False)
        assert len(api.samples()) == 1
        assert api.blob_files() == files_before
        with api.db.session() as session:
            statuses = list(session.scalars(select(ErasureRequest.status)))
        assert statuses == ["pending"]

    def test_an_organization_erasure_covers_every_project(
        self, serve: Serve, speech: bytes
    ) -> None:
        api = serve(sampling_rate=1.0)
        with api.db.session() as session:
            erasure.request_erasure(
                session, organization_id=api.tenant.org_id, project_id=None, actor="test"
            )

        response = api.post(speech)

        assert response.status_code == 200, response.text
        entry = api.entry(response.json()["metadata"]["request_id"])
        assert (entry.sample_selected, entry.sample_kept) == (True, False)
        assert api.samples() == []
        assert api.blob_files() == []
