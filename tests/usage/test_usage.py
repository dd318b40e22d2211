"""Usage summary, breakdown and fields through the official SDK, checked against the events."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Hashable
from typing import Any

import pytest

from app.ledger.schemas import LedgerEventIn
from app.ledger.service import ingest_batch
from tests.conftest import TEST_SAMPLING, Database, SdkFactory
from tests.usage.helpers import END, START, Seeded, hours, pick, total_hours


def expected_groups(
    events: list[LedgerEventIn], key: Callable[[LedgerEventIn], Hashable]
) -> dict[Hashable, tuple[float, float, int]]:
    groups: dict[Hashable, list[LedgerEventIn]] = defaultdict(list)
    for event in events:
        groups[key(event)].append(event)
    return {k: (hours(v), total_hours(v), len(v)) for k, v in groups.items()}


ENDPOINT_NAMES = {"/v1/listen": "listen"}  # other paths are shown as recorded


def figures(result: Any) -> tuple[float, float, int]:
    return (result.hours, result.total_hours, result.requests)


def approx_groups(groups: dict[Hashable, tuple[float, float, int]]) -> Any:
    return {k: pytest.approx(v) for k, v in groups.items()}


class TestUsageSummary:
    def test_days_and_totals(self, sdk: SdkFactory, seeded: Seeded) -> None:
        usage = sdk(seeded.tenant.key).manage.v1.projects.usage
        response = usage.get(str(seeded.tenant.project_id), start=START, end=END)
        assert (response.start, response.end) == (START, END)
        assert (response.resolution.units, response.resolution.amount) == ("day", 1)
        events = pick(seeded.events)
        by_day = expected_groups(events, lambda e: e.created.date().isoformat())
        results = response.results  # an extension key: raw dicts
        assert [r["start"] for r in results] == sorted(str(day) for day in by_day)
        assert all(r["start"] == r["end"] for r in results)
        got = {r["start"]: (r["hours"], r["total_hours"], r["requests"]) for r in results}
        assert got == approx_groups(by_day)
        totals = response.totals
        assert totals["requests"] == len(events) == 6
        assert totals["hours"] == pytest.approx(hours(events))
        assert totals["total_hours"] == pytest.approx(total_hours(events))
        opted_out = [e for e in events if e.mip_opt_out]
        opted_in = [e for e in events if not e.mip_opt_out]
        assert totals["mip_opted_out_hours"] == pytest.approx(hours(opted_out))
        assert totals["mip_opted_in_hours"] == pytest.approx(hours(opted_in))
        assert [e.request_id for e in opted_out] == ["r-002", "r-005"]

    def test_date_end_covers_its_whole_day(self, sdk: SdkFactory, seeded: Seeded) -> None:
        usage = sdk(seeded.tenant.key).manage.v1.projects.usage
        project = str(seeded.tenant.project_id)
        day3 = usage.get(project, start="2026-03-03", end="2026-03-03")
        assert [r["requests"] for r in day3.results] == [1]  # r-004 at 23:59:59, not r-005
        assert day3.totals["hours"] == pytest.approx(90 / 3600)
        exact = usage.get(project, start="2026-03-01T10:00:00Z", end="2026-03-01T10:00:00Z")
        assert exact.totals["requests"] == 1
        assert exact.start == "2026-03-01T10:00:00Z"

    def test_filters(self, sdk: SdkFactory, seeded: Seeded) -> None:
        usage = sdk(seeded.tenant.key).manage.v1.projects.usage
        project = str(seeded.tenant.project_id)
        events = pick(seeded.events)

        def check(keep: Callable[[LedgerEventIn], bool], **params: Any) -> None:
            response = usage.get(project, start=START, end=END, **params)
            kept = [e for e in events if keep(e)]
            assert response.totals["requests"] == len(kept), params
            assert response.totals["total_hours"] == pytest.approx(total_hours(kept)), params

        check(lambda e: e.api_key_id == seeded.key2_id, accessor=str(seeded.key2_id))
        check(lambda e: "team-a" in e.tags, tag="team-a")
        check(lambda e: bool({"team-a", "prod"} & set(e.tags)), tag=["team-a", "prod"])
        check(lambda e: e.method == "sync", method="sync")
        check(lambda e: e.model == "nova-3", model="uuid-nova-3")
        check(lambda e: e.model == "general", model="general")
        check(lambda e: e.endpoint == "/v1/listen", endpoint="listen")
        check(lambda e: False, endpoint="speak")
        check(lambda e: True, deployment="self-hosted")
        check(lambda e: False, deployment="hosted")
        check(lambda e: "punctuate" in e.features, punctuate=True)
        check(lambda e: "diarize" not in e.features, diarize=False)
        check(
            lambda e: "smart_format" in e.features and e.mip_opt_out is not True,
            smart_format=True,
            tag="prod",
            method="sync",
            accessor=str(seeded.tenant.key_id),
        )
        check(lambda e: True, request_options={"additional_query_parameters": {"unknown": "x"}})

    def test_default_range_is_the_last_30_days(
        self, sdk: SdkFactory, seeded: Seeded, db: Database
    ) -> None:
        recent = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        with db.session() as session:
            ingest_batch(
                session,
                [
                    LedgerEventIn(
                        request_id="recent",
                        project_id=seeded.tenant.project_id,
                        created=recent,
                        model="general",
                        duration=36.0,
                    )
                ],
                sampling=TEST_SAMPLING,
            )
        response = sdk(seeded.tenant.key).manage.v1.projects.usage.get(
            str(seeded.tenant.project_id)
        )
        today = dt.datetime.now(dt.UTC).date()
        assert response.end == today.isoformat()
        assert response.start == (today - dt.timedelta(days=30)).isoformat()
        assert response.totals["requests"] == 1
        assert response.totals["hours"] == pytest.approx(0.01)


class TestUsageBreakdown:
    def breakdown(self, sdk: SdkFactory, seeded: Seeded, **params: Any) -> Any:
        client = sdk(seeded.tenant.key).manage.v1.projects.usage.breakdown
        return client.get(str(seeded.tenant.project_id), start=START, end=END, **params)

    def test_ungrouped_is_one_row_with_zeroes_for_other_products(
        self, sdk: SdkFactory, seeded: Seeded
    ) -> None:
        response = self.breakdown(sdk, seeded)
        assert (response.start, response.end, response.resolution.units) == (START, END, "day")
        (result,) = response.results
        events = pick(seeded.events)
        assert figures(result) == pytest.approx((hours(events), total_hours(events), 6))
        assert (result.agent_hours, result.tokens_in, result.tokens_out) == (0, 0, 0)
        assert result.tts_characters == 0
        grouping = result.grouping
        assert (grouping.start, grouping.end) == (START, END)
        assert (grouping.accessor, grouping.models, grouping.tags) == (None, None, None)

    def test_each_grouping(self, sdk: SdkFactory, seeded: Seeded) -> None:
        cases: list[tuple[str, Callable[[LedgerEventIn], Hashable], Callable[[Any], Hashable]]]
        cases = [
            ("models", lambda e: (e.model,), lambda g: tuple(g.models)),
            ("tags", lambda e: tuple(e.tags), lambda g: tuple(g.tags)),
            ("feature_set", lambda e: ",".join(e.features), lambda g: g.feature_set),
            ("method", lambda e: e.method, lambda g: g.method),
            ("accessor", lambda e: e.api_key_id and str(e.api_key_id), lambda g: g.accessor),
            (
                "endpoint",
                lambda e: ENDPOINT_NAMES.get(e.endpoint, e.endpoint),
                lambda g: g.endpoint,
            ),
            ("deployment", lambda e: "self-hosted", lambda g: g.deployment),
            ("mip", lambda e: "opted_out" if e.mip_opt_out else "opted_in", lambda g: g.mip),
        ]
        events = pick(seeded.events)
        for grouping, key, attribute in cases:
            response = self.breakdown(sdk, seeded, grouping=grouping)
            got = {attribute(r.grouping): figures(r) for r in response.results}
            assert len(got) == len(response.results), grouping
            assert got == approx_groups(expected_groups(events, key)), grouping
        # The same grouping twice counts once.
        twice = self.breakdown(sdk, seeded, grouping=["method", "method"])
        assert sorted(r.grouping.method for r in twice.results) == ["async", "streaming", "sync"]

    def test_several_groupings_and_filters(self, sdk: SdkFactory, seeded: Seeded) -> None:
        response = self.breakdown(
            sdk,
            seeded,
            grouping=["accessor", "method", "tags"],
            punctuate=True,
            request_options={"additional_query_parameters": {"ignored": "true"}},
        )
        events = pick(seeded.events, lambda e: "punctuate" in e.features)
        expected = expected_groups(
            events, lambda e: (e.api_key_id and str(e.api_key_id), e.method, tuple(e.tags))
        )
        got = {
            (r.grouping.accessor, r.grouping.method, tuple(r.grouping.tags)): figures(r)
            for r in response.results
        }
        assert got == approx_groups(expected)
        assert all(r.grouping.models is None for r in response.results)

    def test_other_tenant_usage_not_counted(self, sdk: SdkFactory, seeded: Seeded) -> None:
        response = sdk(seeded.other.key).manage.v1.projects.usage.breakdown.get(
            str(seeded.other.project_id), start=START, end=END, grouping="tags"
        )
        assert [(tuple(r.grouping.tags), r.hours, r.requests) for r in response.results] == [
            (("prod",), 1.0, 1)
        ]


class TestUsageFields:
    def test_distinct_values_over_the_range(self, sdk: SdkFactory, seeded: Seeded) -> None:
        fields = sdk(seeded.tenant.key).manage.v1.projects.usage.fields
        response = fields.list(str(seeded.tenant.project_id), start=START, end=END)
        assert response.tags == ["prod", "team-a"]
        assert response.processing_methods == ["async", "streaming", "sync"]
        assert response.features == ["diarize", "punctuate", "smart_format"]
        models = {(m.name, m.language, m.version, m.model_id) for m in response.models}
        assert models == {("general", None, None, "general"), ("nova-3", "en", "v3", "uuid-nova-3")}
        later = fields.list(str(seeded.tenant.project_id), start="2026-03-02", end="2026-03-03")
        assert later.tags == ["team-a"]
        assert later.features == ["punctuate"]
        assert later.processing_methods == ["async", "sync"]
        assert [m.name for m in later.models] == ["general"]
