"""Whether a request takes part in the Model Improvement Program, and why: one rule.

Every path that records a request resolves its opt-out here — ``/v1/listen`` and batch
ingest (both through the ledger's row builder) — and the sampler decides from the result, so
the answer and its source are the same wherever they are read:

    resolve_opt_out(None, contract_opt_out=False)   # OptOut(mip_opt_out=False, source='default')
    resolve_opt_out(False, contract_opt_out=True)   # OptOut(mip_opt_out=True, source='contract')

Sources, strongest first: ``consent_withdrawn`` (an erasure of the organization or the project
withdrew its consent: nothing of it takes part again), ``contract`` (the organization's
contract opts every request out, whatever the request says), ``request`` (``mip_opt_out``
given on the request), ``default`` (not given: the program's default is to take part). They
are stored on each ledger row (``opt_out_source``).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

OptOutSource = Literal["consent_withdrawn", "contract", "request", "default"]
OPT_OUT_SOURCES: tuple[OptOutSource, ...] = ("consent_withdrawn", "contract", "request", "default")


class OptOut(NamedTuple):
    """The effective opt-out of one request and the rule that decided it."""

    mip_opt_out: bool
    source: OptOutSource


# One instance each: resolving is on the ingest hot loop (one call per event).
_WITHDRAWN = OptOut(True, "consent_withdrawn")
_BY_CONTRACT = OptOut(True, "contract")
_REQUESTED_OUT = OptOut(True, "request")
_REQUESTED_IN = OptOut(False, "request")
_DEFAULT = OptOut(False, "default")


def resolve_opt_out(
    requested: bool | None, *, contract_opt_out: bool, consent_withdrawn: bool = False
) -> OptOut:
    """The effective opt-out of a request that asked for ``requested`` (None: said nothing)."""
    if consent_withdrawn:
        return _WITHDRAWN
    if contract_opt_out:
        return _BY_CONTRACT
    if requested is None:
        return _DEFAULT
    return _REQUESTED_OUT if requested else _REQUESTED_IN
