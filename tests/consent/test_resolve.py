"""The effective opt-out of a request, and its source: the order of the rules."""

from __future__ import annotations

import pytest

from app.consent.service import OptOut, resolve_opt_out


@pytest.mark.parametrize(
    ("requested", "contract", "withdrawn", "expected"),
    [
        (None, False, False, OptOut(False, "default")),
        (False, False, False, OptOut(False, "request")),
        (True, False, False, OptOut(True, "request")),
        (False, True, False, OptOut(True, "contract")),  # the contract beats the request
        (None, True, False, OptOut(True, "contract")),
        (False, True, True, OptOut(True, "consent_withdrawn")),  # withdrawal beats everything
        (None, False, True, OptOut(True, "consent_withdrawn")),
    ],
)
def test_the_strongest_rule_decides(
    requested: bool | None, contract: bool, withdrawn: bool, expected: OptOut
) -> None:
    assert (
        resolve_opt_out(requested, contract_opt_out=contract, consent_withdrawn=withdrawn)
        == expected
    )


def test_every_source_is_one_the_ledger_and_the_api_accept() -> None:
    # A source the table's CHECK or the request log's schema did not know was a 500 (or a
    # refused row) the day it first appeared.
    from typing import get_args

    from sqlalchemy import CheckConstraint, Table

    from app.consent.service import OPT_OUT_SOURCES, OptOutSource
    from app.tables.ledger import LedgerEntry
    from app.usage.schemas import MipDetails

    table = LedgerEntry.__table__
    assert isinstance(table, Table)
    check = next(
        str(c.sqltext)
        for c in table.constraints
        if isinstance(c, CheckConstraint) and str(c.name).endswith("opt_out_source")
    )
    assert all(f"'{source}'" in check for source in OPT_OUT_SOURCES)
    assert set(get_args(OptOutSource)) == set(OPT_OUT_SOURCES)
    annotation: object = MipDetails.model_fields["source"].annotation
    assert set(get_args(annotation)) == set(OPT_OUT_SOURCES)
