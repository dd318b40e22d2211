"""Training-set refs (id, NAME, NAME:VERSION): a version is ASCII digits or a 400, never a 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Database, make_staff_key
from tests.kit.test_http import assert_error

URL = "/v1/governance/datasets"


@pytest.mark.parametrize(
    "ref",
    [
        "accents:²",  # str.isdigit() says yes, int() says no: was a 500
        "accents:٣",  # int() reads it as 3
        "accents:1_000",
        "accents:" + "9" * 12,  # beyond any version an integer column holds
        "accents:",
    ],
)
def test_a_version_that_is_not_ascii_digits_is_a_400(
    client: TestClient, db: Database, ref: str
) -> None:
    response = client.get(f"{URL}/{ref}", headers=make_staff_key(db, "dataops"))
    if ref.endswith(":"):
        assert_error(response, 404, "NOT_FOUND")  # the name alone: no such set
        return
    error = assert_error(response, 400, "Bad Request")
    assert error["err_msg"] == "A training set is NAME, NAME:VERSION or its id."


def test_a_well_formed_ref_of_no_set_is_a_404(client: TestClient, db: Database) -> None:
    response = client.get(f"{URL}/accents:7", headers=make_staff_key(db, "dataops"))
    assert_error(response, 404, "NOT_FOUND")


@pytest.mark.parametrize("page", [str(2**62), "19177240041859198222336"])
def test_a_page_beyond_any_offset_is_a_400(client: TestClient, db: Database, page: str) -> None:
    # page * limit overflowed the database's integer: a 500 on both backends (schemathesis).
    response = client.get(f"{URL}?page={page}", headers=make_staff_key(db, "dataops"))
    assert_error(response, 400, "Bad Request")
