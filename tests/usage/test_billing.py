"""Billing breakdown and fields through the official SDK: net dollars from the ledger amounts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable
from typing import Any

import pytest

from app.ledger.schemas import LedgerEventIn
from tests.conftest import SdkFactory
from tests.usage.helpers import END, START, Seeded, dollars, pick


def expected_dollars(
    seeded: Seeded, events: list[LedgerEventIn], key: Callable[[LedgerEventIn], Hashable]
) -> dict[Hashable, Any]:
    groups: dict[Hashable, list[LedgerEventIn]] = defaultdict(list)
    for event in events:
        groups[key(event)].append(event)
    return {k: pytest.approx(dollars(seeded, v)) for k, v in groups.items()}


class TestBillingBreakdown:
    def breakdown(self, sdk: SdkFactory, seeded: Seeded, **params: Any) -> Any:
        client = sdk(seeded.tenant.key).manage.v1.projects.billing.breakdown
        return client.list(str(seeded.tenant.project_id), **{"start": START, "end": END, **params})

    def test_ungrouped_total_is_the_net_amount(self, sdk: SdkFactory, seeded: Seeded) -> None:
        response = self.breakdown(sdk, seeded)
        assert (response.start, response.end, response.resolution.units) == (START, END, "day")
        (result,) = response.results
        events = pick(seeded.events)
        assert result.dollars == pytest.approx(dollars(seeded, events))
        assert result.dollars > 0
        # Opted-in rows pay half the list price: the net is what is billed.
        assert sum(r.list_amount_micros for r in seeded.rows.values()) > sum(
            r.amount_micros for r in seeded.rows.values()
        )
        grouping = result.grouping
        assert (grouping.start, grouping.end) == (START, END)
        assert (grouping.accessor, grouping.line_item, grouping.tags) == (None, None, None)

    def test_each_grouping(self, sdk: SdkFactory, seeded: Seeded) -> None:
        events = pick(seeded.events)
        cases: list[tuple[str, Callable[[LedgerEventIn], Hashable], Callable[[Any], Hashable]]]
        cases = [
            ("accessor", lambda e: e.api_key_id and str(e.api_key_id), lambda g: g.accessor),
            ("line_item", lambda e: f"{e.method}::{e.model}", lambda g: g.line_item),
            ("tags", lambda e: tuple(e.tags), lambda g: tuple(g.tags)),
            ("deployment", lambda e: "self-hosted", lambda g: g.deployment),
        ]
        for grouping, key, attribute in cases:
            response = self.breakdown(sdk, seeded, grouping=grouping)
            got = {attribute(r.grouping): r.dollars for r in response.results}
            assert len(got) == len(response.results), grouping
            assert got == expected_dollars(seeded, events, key), grouping
        both = self.breakdown(sdk, seeded, grouping=["accessor", "line_item"])
        got = {(r.grouping.accessor, r.grouping.line_item): r.dollars for r in both.results}
        assert got == expected_dollars(
            seeded,
            events,
            lambda e: (e.api_key_id and str(e.api_key_id), f"{e.method}::{e.model}"),
        )

    def test_filters(self, sdk: SdkFactory, seeded: Seeded) -> None:
        events = pick(seeded.events)

        def check(keep: Callable[[LedgerEventIn], bool], **params: Any) -> None:
            (result,) = self.breakdown(sdk, seeded, **params).results
            kept = [e for e in events if keep(e)]
            assert result.dollars == pytest.approx(dollars(seeded, kept)), params

        check(lambda e: e.api_key_id == seeded.key2_id, accessor=str(seeded.key2_id))
        check(lambda e: "team-a" in e.tags, tag="team-a")
        check(lambda e: bool({"team-a", "prod"} & set(e.tags)), tag=["team-a", "prod"])
        check(lambda e: (e.method, e.model) == ("sync", "nova-3"), line_item="sync::nova-3")
        check(lambda e: False, line_item="streaming::nova-2")
        check(lambda e: True, deployment="self-hosted")
        check(lambda e: False, deployment="beta")
        check(lambda e: e.created.day == 1, start=START, end=START)

    def test_other_tenant_billed_apart(self, sdk: SdkFactory, seeded: Seeded) -> None:
        response = sdk(seeded.other.key).manage.v1.projects.billing.breakdown.list(
            str(seeded.other.project_id), start=START, end=END, grouping="tags"
        )
        # growth: 3600 micro-dollars a minute, opted in: half of 60 minutes.
        assert [(r.grouping.tags, r.dollars) for r in response.results] == [(["prod"], 0.108)]


class TestBillingFields:
    def test_distinct_values_over_the_range(self, sdk: SdkFactory, seeded: Seeded) -> None:
        fields = sdk(seeded.tenant.key).manage.v1.projects.billing.fields
        response = fields.list(str(seeded.tenant.project_id), start=START, end=END)
        assert sorted(response.accessors) == sorted(
            [str(seeded.tenant.key_id), str(seeded.key2_id)]
        )
        assert response.deployments == ["self-hosted"]
        assert response.tags == ["prod", "team-a"]
        assert set(response.line_items) == {
            "sync::general",
            "async::general",
            "streaming::nova-3",
            "sync::nova-3",
        }
        assert "general" in response.line_items["sync::general"]
        day2 = fields.list(str(seeded.tenant.project_id), start="2026-03-02", end="2026-03-02")
        assert day2.accessors == [str(seeded.tenant.key_id)]
        assert day2.tags == []
        assert set(day2.line_items) == {"async::general", "sync::general"}
