"""Balance a training set over several attributes at once, under an hours budget.

    spec = BalanceSpec(dimensions=("accent", "age_group", "sex"), hours=100.0, seed=7)
    result = balance(manifest, spec)   # result.selected: the balanced manifest; result.deficit

A *cell* is one combination of dimension values (``us, senior, female``). Each dimension has a
target share per value (uniform, proportional to a reference set, or given), bent by the
``max_share`` caps and ``min_share`` floors; the joint target of a cell is the product of its
values' shares. Cells short of hours give all they have and the shortfall goes to cells with
spare hours, keeping every dimension's marginal as close to its target as the data allows:
capacity-bounded iterative proportional fitting over cells, and where the dimensions' goals
conflict (noisy audio that is nearly all one accent), the cells whose marginals are nearest the
goals in least squares. Caps are hard: when they bind, the set shrinks to the largest one
that keeps them (a linear program over cells). Within a cell rows are taken in an order that
depends only on ``(seed, sample_id)``, so the same input in any row order gives the same
selection; the last cell rows are topped up so the set ends within one utterance of the budget.

Result frames (hours everywhere; ``share`` of the frame's total):

* ``before`` / ``after``: dimension, value, hours, share, target_share
* ``deficit``: dimension, value, target_hours, available_hours, selected_hours, missing_hours
* ``dropped``: sample_id, reason (``over_target``: the row's cell holds a larger share of the
  input than its target, so rows go for balance; ``over_budget``: the cell is at or under its
  target share and a larger budget would take more of it; ``cap``: a value of the row's cell is
  at its ``max_share``)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from curation import schema
from curation.allocation import SHARE_TOLERANCE, allocate, marginal
from curation.allocation import BalanceError as BalanceError  # part of this module's API

Target = Literal["uniform", "proportional"] | tuple[str, ...] | Mapping[str, float]
Floats = npt.NDArray[np.float64]

SNR_BAND: Final = "snr_band"
# Free-text or id columns would make one cell per row; everything else categorical may be used.
BALANCEABLE: Final = (
    *schema.CATEGORICAL_ATTRIBUTES,
    "language",
    "domain",
    "organization_id",
    "consent",
    SNR_BAND,
)
DROP_REASONS: Final = ("over_target", "over_budget", "cap")
_HASH_BASE: Final = np.uint64(0x100000001B3)  # FNV-1a's 64-bit prime
_SPEC_KEYS: Final = ("dimensions", "hours", "targets", "max_share", "min_share", "seed", "missing")


@dataclass(frozen=True)
class BalanceSpec:
    """What the balanced set should look like.

    spec = BalanceSpec(("accent", "sex"), hours=10, targets={"sex": {"female": .5, "male": .5}})
    BalanceSpec.from_json(spec.to_json()) == spec
    """

    dimensions: tuple[str, ...]  # manifest columns (or "snr_band") to balance over
    hours: float  # budget: the balanced set holds at most this many hours
    # per dimension: "uniform" (default, over the values present), a tuple of values (uniform
    # over them), "proportional" (to the reference set) or a mapping value -> share
    targets: Mapping[str, Target] = field(default_factory=dict)
    # no value above this share (caps that bind exactly hold to within one utterance)
    max_share: Mapping[str, float] = field(default_factory=dict)
    min_share: Mapping[str, float] = field(default_factory=dict)  # floor for every target value
    seed: int = 0  # picks which rows of a cell are taken
    missing: str = "unknown"  # the group that rows without a value form

    def __post_init__(self) -> None:
        dims = tuple(self.dimensions) if isinstance(self.dimensions, list | tuple) else ()
        if not dims or not all(isinstance(name, str) for name in dims):
            raise BalanceError("dimensions must be a non-empty list of column names")
        unknown = [name for name in dims if name not in BALANCEABLE]
        if unknown:
            raise BalanceError(
                f"unknown dimension(s) {', '.join(unknown)}; choose from {', '.join(BALANCEABLE)}"
            )
        if len(set(dims)) != len(dims):
            raise BalanceError(f"dimensions repeat a column: {', '.join(dims)}")
        if isinstance(self.hours, bool) or not isinstance(self.hours, int | float):
            raise BalanceError("hours must be a number")
        if not math.isfinite(self.hours) or self.hours < 0:
            raise BalanceError(f"hours must be a finite number >= 0, not {self.hours}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise BalanceError("seed must be an integer")
        if not isinstance(self.missing, str) or not self.missing:
            raise BalanceError("missing must be a non-empty label")
        targets = {name: _checked_target(name, target) for name, target in _items(self.targets)}
        caps = {name: _checked_share("max_share", name, v) for name, v in _items(self.max_share)}
        floors = {name: _checked_share("min_share", name, v) for name, v in _items(self.min_share)}
        for label, keys in (("targets", targets), ("max_share", caps), ("min_share", floors)):
            stray = sorted(set(keys) - set(dims))
            if stray:
                raise BalanceError(f"{label} names {', '.join(stray)}, not in dimensions")
        for name, cap in caps.items():
            if cap <= 0:
                raise BalanceError(f"max_share for {name} must be above 0")
            if floors.get(name, 0.0) > cap:
                raise BalanceError(f"min_share for {name} ({floors[name]}) exceeds max_share {cap}")
        for name, target in targets.items():
            if not isinstance(target, str):  # explicit value sets: infeasible bounds show now
                raw = dict(target) if isinstance(target, Mapping) else dict.fromkeys(target, 1.0)
                _shape_shares(name, raw, floors.get(name, 0.0), caps.get(name, 1.0))
        object.__setattr__(self, "dimensions", dims)
        object.__setattr__(self, "targets", MappingProxyType(targets))
        object.__setattr__(self, "max_share", MappingProxyType(caps))
        object.__setattr__(self, "min_share", MappingProxyType(floors))

    def to_json(self) -> str:
        """The spec as a JSON target file (what ``from_json`` and ``--target FILE`` read)."""
        targets = {
            name: dict(t) if isinstance(t, Mapping) else list(t) if isinstance(t, tuple) else t
            for name, t in self.targets.items()
        }
        body = {
            "dimensions": list(self.dimensions),
            "hours": self.hours,
            "targets": targets,
            "max_share": dict(self.max_share),
            "min_share": dict(self.min_share),
            "seed": self.seed,
            "missing": self.missing,
        }
        return json.dumps(body, indent=2)

    @classmethod
    def from_json(cls, source: str | bytes | os.PathLike[str] | Mapping[str, Any]) -> BalanceSpec:
        """A spec from JSON text, the JSON file at a path-like ``source``, or a parsed object."""
        if isinstance(source, Mapping):
            body: object = dict(source)
        else:
            try:
                text = Path(source).read_text() if isinstance(source, os.PathLike) else source
                body = json.loads(text)
            except (OSError, ValueError) as err:
                raise BalanceError(f"target file is not readable JSON: {err}") from None
        if not isinstance(body, dict):
            raise BalanceError("target file must hold a JSON object")
        stray = sorted(set(body) - set(_SPEC_KEYS))
        if stray:
            raise BalanceError(
                f"unknown key(s) {', '.join(stray)}; allowed: {', '.join(_SPEC_KEYS)}"
            )
        if "dimensions" not in body or "hours" not in body:
            raise BalanceError("target file needs 'dimensions' and 'hours'")
        targets = body.get("targets", {})
        if not isinstance(targets, dict):
            raise BalanceError("targets must be an object: dimension -> target")
        return cls(
            dimensions=body["dimensions"],
            hours=body["hours"],
            targets={k: tuple(v) if isinstance(v, list) else v for k, v in targets.items()},
            max_share=body.get("max_share", {}),
            min_share=body.get("min_share", {}),
            seed=body.get("seed", 0),
            missing=body.get("missing", "unknown"),
        )


def _items(mapping: object) -> list[tuple[str, Any]]:
    if not isinstance(mapping, Mapping):
        raise BalanceError("targets, max_share and min_share must map dimension names to values")
    return list(mapping.items())


def _checked_share(label: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise BalanceError(f"{label} for {name} must be a number between 0 and 1, not {value!r}")
    return float(value)


def _checked_target(name: str, target: object) -> Target:
    if isinstance(target, str):
        if target not in ("uniform", "proportional"):
            raise BalanceError(
                f"target for {name} must be 'uniform', 'proportional', a list of values "
                f"or a mapping value -> share, not {target!r}"
            )
        return "uniform" if target == "uniform" else "proportional"
    if isinstance(target, Mapping):
        shares = {
            str(value): _checked_share("a target share", name, s) for value, s in target.items()
        }
        total = sum(shares.values())
        if not shares or abs(total - 1.0) > SHARE_TOLERANCE:
            raise BalanceError(f"target shares for {name} must sum to 1, not {total:.6g}")
        return MappingProxyType(shares)
    if isinstance(target, list | tuple) and target and all(isinstance(v, str) for v in target):
        if len(set(target)) != len(target):
            raise BalanceError(f"target values for {name} repeat a value")
        return tuple(target)
    raise BalanceError(f"target for {name} must be 'uniform', 'proportional', values or shares")


@dataclass(frozen=True)
class BalanceResult:
    """What ``balance`` chose and why.

    result = balance(manifest, spec)
    result.after.query("dimension == 'accent'")   # shares reached per accent
    """

    selected: pd.DataFrame  # the chosen rows, manifest columns (schema.COLUMNS)
    dropped: pd.DataFrame  # sample_id, reason (DROP_REASONS)
    before: pd.DataFrame  # dimension, value, hours, share, target_share (input)
    after: pd.DataFrame  # the same for the selection
    deficit: pd.DataFrame  # values short of their target hours
    summary: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able report (figures and per-value tables; not the rows themselves)."""
        counts = self.dropped["reason"].value_counts()
        return {
            "summary": self.summary,
            "dropped": {reason: int(counts.get(reason, 0)) for reason in DROP_REASONS},
            "before": self.before.to_dict("records"),
            "after": self.after.to_dict("records"),
            "deficit": self.deficit.to_dict("records"),
        }


def balance(
    frame: pd.DataFrame, spec: BalanceSpec, *, reference: pd.DataFrame | None = None
) -> BalanceResult:
    """Pick rows of ``frame`` so each dimension's hours follow its target, within the budget.

    result = balance(manifest, BalanceSpec(("accent", "sex"), hours=50))
    result.summary["selected_hours"] <= 50
    """
    manifest = _as_manifest(frame)
    durations = manifest["duration"].to_numpy(dtype=np.float64)
    labels = [_labels(manifest, name, spec.missing) for name in spec.dimensions]
    ref_frame = None if reference is None else _as_manifest(reference)
    axes: list[list[str]] = []
    codes: list[npt.NDArray[np.intp]] = []
    shares: list[Floats] = []
    for name, series in zip(spec.dimensions, labels, strict=True):
        row_codes, present = pd.factorize(series, sort=True)
        wanted = _dimension_shares(spec, name, list(present), ref_frame)
        values = sorted(set(present) | set(wanted))
        axes.append(values)
        codes.append(np.searchsorted(np.asarray(values, dtype=object), present)[row_codes])
        shares.append(np.array([wanted.get(v, 0.0) for v in values]))
    shape = tuple(len(values) for values in axes)
    if math.prod(shape) > 2_000_000:
        raise BalanceError(
            f"{math.prod(shape):,} combinations of {', '.join(spec.dimensions)}: "
            "balance by fewer dimensions or coarser values"
        )
    picked = _pick_rows(manifest, durations, codes, shares, shape, spec)
    before = _distribution(spec.dimensions, axes, codes, durations, shares, None)
    after = _distribution(spec.dimensions, axes, codes, durations, shares, picked.selected)
    deficit = _deficit(before, after, spec.hours, picked.allocated_hours)
    selected = manifest.take(picked.order[picked.selected[picked.order]]).reset_index(drop=True)
    dropped = pd.DataFrame(  # input order: a filter costs a tenth of a take on 1M ids
        {
            "sample_id": manifest["sample_id"][~picked.selected].reset_index(drop=True),
            "reason": pd.Categorical.from_codes(
                picked.reasons[~picked.selected], categories=pd.Index(DROP_REASONS)
            ),
        }
    )
    errors = (after["share"] - after["target_share"]).abs().groupby(after["dimension"]).max()
    summary = {
        "dimensions": list(spec.dimensions),
        "seed": spec.seed,
        "budget_hours": float(spec.hours),
        "input_rows": len(manifest),
        "input_hours": float(durations.sum()) / 3600.0,
        "selected_rows": len(selected),
        "selected_hours": float(durations[picked.selected].sum()) / 3600.0,
        "max_abs_share_error": {name: float(errors.get(name, 0.0)) for name in spec.dimensions},
    }
    return BalanceResult(selected, dropped, before, after, deficit, summary)


# --- targets per dimension ------------------------------------------------------------------


def _dimension_shares(
    spec: BalanceSpec, name: str, present: list[str], reference: pd.DataFrame | None
) -> dict[str, float]:
    """Target share per value of ``name`` (values the target leaves out are not in it)."""
    target = spec.targets.get(name, "uniform")
    if target == "uniform":
        raw = dict.fromkeys(present, 1.0)
    elif target == "proportional":
        if reference is None:
            raise BalanceError(f"the target for {name} is proportional: pass reference=<manifest>")
        ref_hours = reference.groupby(_labels(reference, name, spec.missing))["duration"].sum()
        if ref_hours.sum() <= 0:
            raise BalanceError(f"the reference has no hours to be proportional to for {name}")
        # Input values the reference lacks get 0 (or the floor, when min_share sets one).
        raw = dict.fromkeys(present, 0.0) | {str(k): float(v) for k, v in ref_hours.items()}
    elif isinstance(target, Mapping):
        raw = dict(target)
    else:
        raw = dict.fromkeys(target, 1.0)
    if not raw:
        return {}
    return _shape_shares(name, raw, spec.min_share.get(name, 0.0), spec.max_share.get(name, 1.0))


def _shape_shares(
    name: str, raw: Mapping[str, float], floor: float, cap: float
) -> dict[str, float]:
    """``raw`` normalised, then bent so every share lies in [floor, cap] (still summing to 1).

    _shape_shares("accent", {"us": 85, "rp": 15}, 0.0, 0.6)   # {"us": 0.6, "rp": 0.4}
    Shares are clip(λ·raw, floor, cap) with λ found by bisection, so unclipped values keep
    their proportions.
    """
    values = list(raw)
    weights = np.array([raw[v] for v in values], dtype=np.float64)
    if weights.sum() <= 0:
        raise BalanceError(f"the target for {name} gives no value a positive share")
    weights = weights / weights.sum()
    if len(values) * floor > 1 + SHARE_TOLERANCE:
        raise BalanceError(
            f"min_share {floor} for {name} over {len(values)} values exceeds 1: "
            f"lower it to at most {1 / len(values):.4g}"
        )
    positive = int((weights > 0).sum())
    if positive * cap + (len(values) - positive) * floor < 1 - SHARE_TOLERANCE:
        raise BalanceError(
            f"max_share {cap} for {name} cannot hold: only {positive} value(s) have a target "
            f"share; raise it to at least {1 / positive:.4g} or target more values"
        )
    if floor > 0 or cap < 1:
        low, high = 0.0, cap / weights[weights > 0].min()
        for _ in range(200):  # sum(clip(λ·w)) grows with λ; bisect for the λ giving 1
            middle = (low + high) / 2
            if np.clip(middle * weights, floor, cap).sum() < 1:
                low = middle
            else:
                high = middle
        weights = np.clip(high * weights, floor, cap)
        weights = weights / weights.sum()
    return {value: float(share) for value, share in zip(values, weights, strict=True)}


# --- manifests and labels -------------------------------------------------------------------


def _as_manifest(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` itself when it is already a manifest (coercing 1M rows costs seconds)."""
    if tuple(frame.columns) != schema.COLUMNS or frame["duration"].dtype != np.float64:
        return schema.coerce(frame)
    durations = frame["duration"].to_numpy()
    if np.isnan(durations).any() or (durations < 0).any():
        raise schema.ManifestError("duration must be a non-negative number of seconds")
    if frame["sample_id"].isna().any():
        raise schema.ManifestError("sample_id must be set on every row")
    return frame.reset_index(drop=True)


def _labels(manifest: pd.DataFrame, name: str, missing: str) -> pd.Series:
    if name == SNR_BAND:
        return schema.snr_band(manifest["snr_db"])
    return manifest[name].astype("str").fillna(missing)


def _priority(sample_ids: pd.Series, seed: int) -> npt.NDArray[np.uint64]:
    """A pseudo-random key per row that depends only on (seed, sample_id)."""
    ids = pa.array(sample_ids.array)
    ids = (ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids).cast(
        pa.large_string()
    )
    # pandas' hash_pandas_object costs 3x more on 1M ids; chunks bound the byte-sized temporaries
    hashed = np.concatenate(
        [np.zeros(0, dtype=np.uint64)]
        + [_utf8_hash(ids.slice(start, 1 << 19)) for start in range(0, len(ids), 1 << 19)]
    )
    salt = _splitmix(np.array([seed % 2**64], dtype=np.uint64))
    return _splitmix(np.bitwise_xor(hashed, salt, dtype=np.uint64))


def _utf8_hash(ids: pa.LargeStringArray) -> npt.NDArray[np.uint64]:
    """sum((byte + 1) * K**position) mod 2**64 per string, read from the Arrow buffers."""
    _, offset_buffer, data_buffer = ids.buffers()
    offsets = np.frombuffer(offset_buffer, dtype=np.int64)[ids.offset : ids.offset + len(ids) + 1]
    lengths = np.diff(offsets)
    data = np.frombuffer(data_buffer or b"", dtype=np.uint8)[offsets[0] : offsets[-1]]
    position = np.arange(len(data)) - np.repeat(offsets[:-1] - offsets[0], lengths)
    powers = np.cumprod(np.full(max(int(lengths.max()), 1), _HASH_BASE, dtype=np.uint64))
    terms = (data.astype(np.uint64) + np.uint64(1)) * powers[position]
    sums = np.add.reduceat(np.append(terms, np.uint64(0)), offsets[:-1] - offsets[0])
    sums = np.where(lengths > 0, sums, 0).astype(np.uint64)  # reduceat gives the next term for ""
    return _splitmix(np.bitwise_xor(sums, lengths.astype(np.uint64), dtype=np.uint64))


def _splitmix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    # splitmix64's finaliser: a bijection that scrambles every bit (uint64 products wrap).
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


_EPSILON: Final = 1e-6  # seconds: float noise in running sums, far below one utterance


@dataclass(frozen=True)
class _Picked:
    order: npt.NDArray[np.intp]  # row positions sorted by (cell, priority): the taking order
    selected: npt.NDArray[np.bool_]  # per row (input positions)
    reasons: npt.NDArray[np.int8]  # per row: index into DROP_REASONS (selected rows: unused)
    allocated_hours: list[Floats]  # per dimension and value: hours the allocation gave it


def _pick_rows(
    manifest: pd.DataFrame,
    durations: Floats,
    codes: list[npt.NDArray[np.intp]],
    shares: list[Floats],
    shape: tuple[int, ...],
    spec: BalanceSpec,
) -> _Picked:
    if len(manifest) == 0:
        empty = np.zeros(0, dtype=np.intp)
        allocated = [np.zeros(size) for size in shape]
        return _Picked(empty, np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int8), allocated)
    cell = np.ravel_multi_index(tuple(codes), shape)
    priority = _priority(manifest["sample_id"], spec.seed)
    by_priority = np.argsort(priority, kind="stable")
    sorted_priority = priority[by_priority]
    if (sorted_priority[1:] == sorted_priority[:-1]).any():
        repeated = manifest["sample_id"][manifest["sample_id"].duplicated()]
        if len(repeated):
            raise schema.ManifestError(f"sample_id must be unique; repeated: {repeated.iloc[0]}")
    # A stable sort on uint16 keys is a radix sort: most specs have under 65,536 cells.
    keys = cell.astype(np.uint16) if math.prod(shape) <= 1 << 16 else cell
    order = by_priority[np.argsort(keys[by_priority], kind="stable")]
    cells, seconds = cell[order], durations[order]
    counts = np.bincount(cells, minlength=math.prod(shape))
    ends = np.cumsum(counts)
    running = np.concatenate(([0.0], np.cumsum(seconds)))
    start_sum = running[ends - counts]
    within = running[1:] - start_sum[cells]  # seconds up to and including each row, per cell
    available = (running[ends] - start_sum).reshape(shape)
    caps = [spec.max_share.get(name, 1.0) for name in spec.dimensions]
    alloc = allocate(available, shares, caps, spec.hours * 3600.0, spec.dimensions)
    quota = alloc.seconds.ravel()
    taken = within <= quota[cells] + _EPSILON
    eligible = (alloc.joint.ravel() > 0) & ~alloc.at_cap.ravel()
    taken = _fill_budget(taken, cells, seconds, ends - counts, quota, eligible, alloc.total)
    trimmed = np.zeros(len(taken), dtype=bool)
    if any(cap < 1 for cap in caps):
        trimmed = _trim_to_caps(taken, [c[order] for c in codes], seconds, within, caps)
        taken = taken & ~trimmed
    # Over-represented cells (input share above target) drop rows for balance; the others
    # would give more rows if the budget grew.
    input_share = available.ravel() / max(float(available.sum()), 1e-300)
    over_target = input_share > alloc.joint.ravel() * (1 + 1e-9)
    reason = np.where(over_target[cells], 0, 1).astype(np.int8)
    reason[alloc.at_cap.ravel()[cells] | trimmed] = 2
    selected = np.zeros(len(manifest), dtype=bool)
    selected[order] = taken
    reasons = np.zeros(len(manifest), dtype=np.int8)
    reasons[order] = reason
    allocated = [marginal(alloc.seconds, axis) / 3600.0 for axis in range(len(shape))]
    return _Picked(order, selected, reasons, allocated)


def _fill_budget(
    taken: npt.NDArray[np.bool_],
    cells: npt.NDArray[np.intp],
    seconds: Floats,
    cell_start: npt.NDArray[np.intp],
    quota: Floats,
    eligible: npt.NDArray[np.bool_],
    total: float,
) -> npt.NDArray[np.bool_]:
    """Take the next rows of the least-filled cells until within one utterance of ``total``.

    Cells stop just under their quota (whole utterances), which leaves up to one utterance per
    cell unspent; the next row of each cell, most-unfilled cells first, spends it.
    """
    residual = total - float(seconds[taken].sum())
    candidate = ~taken & eligible[cells]
    if residual <= _EPSILON or not candidate.any():
        return taken
    filled = np.bincount(cells, weights=np.where(taken, seconds, 0.0), minlength=len(quota))
    taken_count = np.bincount(cells[taken], minlength=len(quota))
    rank = np.arange(len(cells)) - cell_start[cells] - taken_count[cells]  # among the untaken
    depth = 1  # how many next rows per cell to consider: grow until they can cover residual
    while depth < len(cells) and seconds[candidate & (rank < depth)].sum() < residual:
        depth *= 4
    rows = np.flatnonzero(candidate & (rank < depth))
    cell_turn = np.empty(len(quota), dtype=np.int64)
    cell_turn[np.argsort(filled - quota, kind="stable")] = np.arange(len(quota))
    rows = rows[np.argsort(rank[rows] * len(quota) + cell_turn[cells[rows]], kind="stable")]
    fits = np.cumsum(seconds[rows]) <= residual + _EPSILON
    out = taken.copy()
    out[rows[fits]] = True
    return out


def _trim_to_caps(
    taken: npt.NDArray[np.bool_],
    codes: list[npt.NDArray[np.intp]],
    seconds: Floats,
    within: Floats,
    caps: list[float],
) -> npt.NDArray[np.bool_]:
    """Rows to give back so no value exceeds its cap (rounding to utterances can push one over).

    Caps that bind exactly (0.5 for each of two values) only hold to the second when both
    sides' hours match exactly, which whole utterances rarely allow: when holding them
    exactly would cost more than an utterance per capped value, a value may exceed its cap
    by less than the longest utterance taken instead.
    """
    longest = float(seconds[taken].max(initial=0.0))
    allowance = longest * sum(
        int(c.max()) + 1 for c, cap in zip(codes, caps, strict=True) if cap < 1
    )
    strict = _trim_rows(taken, codes, seconds, within, caps, slack=0.0, give_up=allowance)
    if float(seconds[strict].sum()) <= allowance:
        return strict
    return _trim_rows(taken, codes, seconds, within, caps, slack=longest)


def _trim_rows(
    taken: npt.NDArray[np.bool_],
    codes: list[npt.NDArray[np.intp]],
    seconds: Floats,
    within: Floats,
    caps: list[float],
    *,
    slack: float,
    give_up: float = math.inf,
) -> npt.NDArray[np.bool_]:
    """Give back rows until every value is at most ``slack`` seconds over its cap.

    Each round fixes the worst value: giving back x seconds of it brings it to the cap when
    x >= excess / (1 - cap). Its rows that also sit in other over-represented values go first
    (so the shrinking total does not push those over), last-taken first within a cell. Stops
    early once more than ``give_up`` seconds are given back.
    """
    capped = [axis for axis, cap in enumerate(caps) if cap < 1]
    sizes = [int(row_codes.max()) + 1 for row_codes in codes]
    trimmed = np.zeros(len(taken), dtype=bool)
    while True:
        keep = taken & ~trimmed
        total = float(seconds[keep].sum())
        excess = {
            axis: np.bincount(codes[axis][keep], seconds[keep], sizes[axis]) - caps[axis] * total
            for axis in capped
        }
        axis = max(capped, key=lambda a: excess[a].max() / (1 - caps[a]))
        value = int(excess[axis].argmax())
        if excess[axis][value] <= slack + _EPSILON or seconds[trimmed].sum() > give_up:
            return trimmed
        needed = (excess[axis][value] - slack) / (1 - caps[axis])
        rows = np.flatnonzero(keep & (codes[axis] == value))
        crowding = np.zeros(len(rows))
        for other in capped:
            crowding += excess[other][codes[other][rows]]
        rows = rows[np.lexsort((-within[rows], -crowding))]
        count = int(np.searchsorted(np.cumsum(seconds[rows]), needed - _EPSILON))
        trimmed[rows[: count + 1]] = True


# --- reports --------------------------------------------------------------------------------


def _distribution(
    dimensions: Sequence[str],
    axes: list[list[str]],
    codes: list[npt.NDArray[np.intp]],
    durations: Floats,
    shares: list[Floats],
    selected: npt.NDArray[np.bool_] | None,
) -> pd.DataFrame:
    weights = durations if selected is None else np.where(selected, durations, 0.0)
    parts = []
    for name, values, row_codes, share in zip(dimensions, axes, codes, shares, strict=True):
        hours = np.bincount(row_codes, weights=weights, minlength=len(values)) / 3600.0
        total = hours.sum()
        parts.append(
            pd.DataFrame(
                {
                    "dimension": name,
                    "value": pd.Series(values, dtype="str"),
                    "hours": hours,
                    "share": hours / total if total > 0 else np.zeros(len(values)),
                    "target_share": share,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _deficit(
    before: pd.DataFrame, after: pd.DataFrame, budget: float, allocated: list[Floats]
) -> pd.DataFrame:
    """Values short of their target because data (or a cap elsewhere) lacked, not rounding."""
    frame = pd.DataFrame(
        {
            "dimension": before["dimension"],
            "value": before["value"],
            "target_hours": budget * before["target_share"],
            "available_hours": before["hours"],
            "selected_hours": after["hours"],
        }
    )
    frame["missing_hours"] = (frame["target_hours"] - frame["selected_hours"]).clip(lower=0.0)
    short = np.concatenate(allocated) < frame["target_hours"].to_numpy() - SHARE_TOLERANCE
    return frame[short & (frame["missing_hours"] > SHARE_TOLERANCE)].reset_index(drop=True)
