"""The promotion policy: may a candidate replace its base? Better overall, no group much worse.

    verdict = policy_verdict(metrics, max_group_regression=0.02, min_group_utterances=5)
    verdict["passed"], verdict["reasons"]   # every group's delta in verdict["groups"]

Metrics (what the executor stores, per model)::

    {"candidate": {"wer": 0.21, "cer": 0.09, "utterances": 400,
                   "groups": {"accent": {"us": {"wer": 0.2, "utterances": 120}, …}, …}},
     "base": {same shape}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _groups(side: Mapping[str, Any]) -> dict[tuple[str, str], tuple[float | None, int]]:
    out: dict[tuple[str, str], tuple[float | None, int]] = {}
    groups = side.get("groups")
    if not isinstance(groups, Mapping):
        return out
    for dimension, values in groups.items():
        if not isinstance(values, Mapping):
            continue
        for group, figures in values.items():
            if isinstance(figures, Mapping):
                count = _number(figures.get("utterances"))
                out[(str(dimension), str(group))] = (
                    _number(figures.get("wer")),
                    int(count) if count is not None else 0,
                )
    return out


def policy_verdict(
    metrics: Mapping[str, Any], *, max_group_regression: float, min_group_utterances: int
) -> dict[str, Any]:
    """Whether a candidate may replace its base: better overall, no group much worse.

    Passes when the candidate's WER is below the base's and no group with at least
    ``min_group_utterances`` test utterances on both sides got worse by more than
    ``max_group_regression`` (0.02 = 2 WER points). Every group is listed with its delta.
    """
    candidate = metrics.get("candidate") if isinstance(metrics, Mapping) else None
    base = metrics.get("base") if isinstance(metrics, Mapping) else None
    candidate = candidate if isinstance(candidate, Mapping) else {}
    base = base if isinstance(base, Mapping) else {}
    reasons: list[str] = []
    cand_wer, base_wer = _number(candidate.get("wer")), _number(base.get("wer"))
    overall: dict[str, Any] = {"candidate_wer": cand_wer, "base_wer": base_wer, "delta": None}
    if cand_wer is None or base_wer is None:
        reasons.append("metrics lack the overall WER of the candidate or the base")
    else:
        overall["delta"] = round(cand_wer - base_wer, 6)
        if not cand_wer < base_wer:
            reasons.append(
                f"overall WER {cand_wer:.4f} is not better than the base's {base_wer:.4f}"
            )
    cand_groups, base_groups = _groups(candidate), _groups(base)
    groups: list[dict[str, Any]] = []
    for dimension, group in sorted(set(cand_groups) | set(base_groups)):
        c_wer, c_n = cand_groups.get((dimension, group), (None, 0))
        b_wer, b_n = base_groups.get((dimension, group), (None, 0))
        judged = c_wer is not None and b_wer is not None and min(c_n, b_n) >= min_group_utterances
        delta = round(c_wer - b_wer, 6) if c_wer is not None and b_wer is not None else None
        # Rounded: 0.32 - 0.30 is 0.020000000000000018 in floats, which is not a regression.
        regressed = judged and delta is not None and delta > max_group_regression
        groups.append(
            {
                "dimension": dimension,
                "group": group,
                "candidate_wer": c_wer,
                "base_wer": b_wer,
                "delta": delta,
                "candidate_utterances": c_n,
                "base_utterances": b_n,
                "judged": judged,
                "regressed": regressed,
            }
        )
        if regressed:
            reasons.append(
                f"{dimension}={group}: WER {c_wer:.4f} vs base {b_wer:.4f} "
                f"(+{delta:.4f} > {max_group_regression:.4f})"
            )
    return {
        "passed": not reasons,
        "reasons": reasons,
        "overall": overall,
        "groups": groups,
        "max_group_regression": max_group_regression,
        "min_group_utterances": min_group_utterances,
    }
