"""/v1/listen with text PostgreSQL cannot store in its query: a 400 that the ledger records.

Before, ``tag=a%00b`` was a 200 whose row then broke the project's usage reports on
PostgreSQL, and ``model=a%00b`` or ``language=e%00n`` a 500 that left no row.
"""

from __future__ import annotations

import pytest

from tests.listen.conftest import Listen, assert_error


class TestUnstorableQuery:
    @pytest.mark.parametrize(
        ("query", "name"),
        [
            ("tag=a%00b", "tag"),
            ("model=a%00b", "model"),
            ("language=e%00n", "language"),
            ("keyterm=x%00", "keyterm"),
            ("a%00b=1", "A query parameter's name"),
        ],
    )
    def test_is_a_400_recorded_with_nothing_of_the_text(
        self, api: Listen, speech: bytes, query: str, name: str
    ) -> None:
        response = api.post(speech, query)
        message = assert_error(response, 400)
        assert name in message
        assert "a NUL character, which cannot be stored" in message
        (row,) = api.ledger()
        assert row.request_id == response.headers["dg-request-id"]
        assert (row.http_status, row.model_name, row.language, row.tags) == (
            400,
            "unknown",
            None,
            [],
        )
        assert api.samples() == []

    def test_the_project_s_reports_still_answer(self, api: Listen, speech: bytes) -> None:
        api.post(speech, "tag=a%00b")
        project = api.tenant.project_id
        for url in (
            f"/v1/projects/{project}/usage/fields",
            f"/v1/projects/{project}/billing/fields",
            f"/v1/projects/{project}/usage/breakdown?grouping=tags",
        ):
            response = api.client.get(url, headers=api.tenant.headers)
            assert response.status_code == 200, (url, response.text)
