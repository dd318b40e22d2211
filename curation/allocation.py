"""Allocation over cells: how many seconds each combination of dimension values should give.

    allocation = allocate(available, shares, caps, budget, names)
    allocation.seconds   # one axis per dimension, like ``available``

Dense numpy grids, never rows: capacity-bounded iterative proportional fitting toward each
dimension's target marginal, a least-squares compromise where the goals conflict, and a linear
program for the largest set that keeps every ``max_share`` cap (see ``curation.balance``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from scipy import optimize, sparse

Floats = npt.NDArray[np.float64]
SHARE_TOLERANCE: Final = 1e-6


class BalanceError(ValueError):
    """A balance spec that cannot be used; the message says what to change."""


# --- allocation over cells (dense arrays, one axis per dimension; seconds) ------------------


@dataclass(frozen=True)
class Allocation:
    seconds: Floats  # hours each cell should give, in seconds (shape: one axis per dimension)
    total: float  # seconds the set can hold: budget, input and caps allowing
    joint: Floats  # joint target share of each cell
    at_cap: npt.NDArray[np.bool_]  # cells holding a value that sits at its max_share


def marginal(grid: Floats, axis: int) -> Floats:
    return np.asarray(grid.sum(axis=tuple(i for i in range(grid.ndim) if i != axis)), np.float64)


def _along(values: npt.NDArray[Any], axis: int, ndim: int) -> npt.NDArray[Any]:
    return values.reshape([-1 if i == axis else 1 for i in range(ndim)])


def allocate(
    available: Floats, shares: list[Floats], caps: list[float], budget: float, names: Sequence[str]
) -> Allocation:
    ndim = available.ndim
    joint = np.ones(available.shape)
    for axis, share in enumerate(shares):
        joint = joint * _along(share, axis, ndim)
    avail = np.where(joint > 0, available, 0.0)  # cells a target excludes give nothing
    marg_avail = [marginal(avail, axis) for axis in range(ndim)]
    total = min(budget, float(avail.sum()))
    for axis, cap in enumerate(caps):
        holding = int((marg_avail[axis] > 0).sum())
        if total > 0 and holding * cap < 1 - SHARE_TOLERANCE:
            raise BalanceError(
                f"max_share {cap} for {names[axis]} cannot be met: only {holding} value(s) "
                "have hours under the targets; raise it or add data"
            )
    capped = [axis for axis, cap in enumerate(caps) if cap < 1]
    within_caps = _largest_within_caps(avail, caps, total) if capped and total > 0 else avail
    if total > 0 and within_caps.sum() <= 0:
        raise BalanceError(
            f"the max_share caps on {', '.join(names[a] for a in capped)} cannot hold together "
            "in this input (its rare values never share rows): raise one or add data"
        )
    total = min(total, float(within_caps.sum()))
    if total <= 0:
        return Allocation(np.zeros_like(avail), 0.0, joint, np.zeros(avail.shape, dtype=bool))
    # Each dimension's reachable marginal: the target, water-filled where values lack hours.
    goals = [
        _water_fill(np.minimum(marg_avail[axis], caps[axis] * total), shares[axis], total)
        for axis in range(ndim)
    ]
    seconds = np.minimum(total * joint, avail)
    best = math.inf
    for sweep in range(500):  # capacity-bounded IPF: exact marginals when the goals fit jointly
        for axis in range(ndim):
            seconds = _fitmarginal(seconds, avail, goals[axis], axis)
        error = max(np.abs(marginal(seconds, a) - goals[a]).max() for a in range(ndim))
        if error <= 1e-9 * total + 1e-6:
            break
        if sweep % 25 == 24:  # stalled: the goals conflict (say noisy audio is nearly all "us")
            if error > 0.99 * best:
                seconds = _least_squares(seconds, avail, goals, total)
                break
            best = error
    # Caps are hard where goals are soft: a compromise that broke one is fitted back to the
    # capped dimensions' goals (which respect the caps), moving hours to other values.
    for round_ in range(200 if capped else 0):
        misfit = max(np.abs(marginal(seconds, a) - goals[a]).max() for a in capped)
        over = max(marginal(seconds, a).max() - caps[a] * total for a in capped)
        if over <= 1e-6 and (misfit <= 1e-9 * total + 1e-6 or seconds.sum() >= total - 1e-6):
            break
        if round_ == 0:  # least squares leaves cells at 0: multiplicative fitting cannot grow them
            seconds = np.maximum(seconds, 1e-3 * np.minimum(total * joint, avail))
        for axis in capped:
            seconds = _fitmarginal(seconds, avail, goals[axis], axis)
    if capped:
        seconds = _toward_caps(seconds, within_caps, caps)
    seconds = _top_up(seconds, avail, caps, total)
    at_cap = np.zeros(avail.shape, dtype=bool)
    for axis, cap in enumerate(caps):
        marg = marginal(seconds, axis)
        full = (marg >= cap * total * (1 - 1e-9)) & (marg_avail[axis] > marg + 1e-6)
        at_cap = at_cap | _along(full, axis, ndim)
    return Allocation(seconds, total, joint, at_cap)


def _largest_within_caps(avail: Floats, caps: list[float], budget: float) -> Floats:
    """Cells of the largest total (at most ``budget``) that keeps every value under its cap.

    Caps bind jointly (under 30% "us" and under 30% "none" when noisy audio is nearly all
    "us"), so the total comes from a linear program: maximise T with sum(cells) = T and, per
    capped value, sum(its cells) <= cap * T.
    """
    cells = np.flatnonzero(avail.ravel() > 0)
    size = len(cells)
    blocks, limits = [], []
    for axis, cap in enumerate(caps):
        if cap < 1:
            value = np.unravel_index(cells, avail.shape)[axis]
            member = sparse.csr_array(
                (np.ones(size), (value, np.arange(size))), shape=(avail.shape[axis], size)
            )
            blocks.append(sparse.hstack([member, np.full((avail.shape[axis], 1), -cap)]))
            limits.append(np.zeros(avail.shape[axis]))
    solution = optimize.linprog(
        c=np.append(np.zeros(size), -1.0),  # maximise T
        A_ub=sparse.vstack(blocks),
        b_ub=np.concatenate(limits),
        A_eq=sparse.csr_array(np.append(np.ones(size), -1.0)[None, :]),
        b_eq=[0.0],
        bounds=np.column_stack((np.zeros(size + 1), np.append(avail.ravel()[cells], budget))),
        method="highs",
    )
    out = np.zeros(avail.size)
    if solution.status == 0:
        out[cells] = np.minimum(np.maximum(solution.x[:size], 0.0), avail.ravel()[cells])
    return out.reshape(avail.shape)


def _toward_caps(seconds: Floats, within_caps: Floats, caps: list[float]) -> Floats:
    """``seconds`` if it keeps every cap, else the nearest point toward ``within_caps`` that does.

    Along the segment between them each value's excess over its cap is linear, so the step
    back is exact.
    """
    step = 1.0
    for axis, cap in enumerate(caps):
        if cap < 1:
            excess = marginal(seconds, axis) - cap * seconds.sum()
            slack = marginal(within_caps, axis) - cap * within_caps.sum()  # <= 0
            over = excess > 1e-6
            if over.any():
                step = min(step, float((slack[over] / (slack[over] - excess[over])).min()))
    return (1 - step) * within_caps + step * seconds


def _water_fill(upper: Floats, shares: Floats, total: float) -> Floats:
    """min(upper, λ·shares) summing to ``total``: short values give all, the rest share more."""
    positive = shares > 0
    if upper[positive].sum() <= total:
        return np.where(positive, upper, 0.0)
    low, high = 0.0, float((upper[positive] / shares[positive]).max())
    for _ in range(200):
        middle = (low + high) / 2
        if np.minimum(upper, middle * shares).sum() < total:
            low = middle
        else:
            high = middle
    return np.minimum(upper, high * shares)


def _fitmarginal(seconds: Floats, avail: Floats, goal: Floats, axis: int) -> Floats:
    """Scale each value's cells towards its goal; full cells stay full, the others take more."""
    ndim = seconds.ndim
    for _ in range(50):  # each pass fills at least one more cell or meets the goal
        marg = marginal(seconds, axis)
        full = seconds >= avail
        free = marginal(np.where(full, 0.0, seconds), axis)
        down = np.divide(goal, marg, out=np.zeros_like(goal), where=(goal < marg) & (marg > 0))
        down = np.where(goal < marg, down, 1.0)
        grow = np.where(
            marg < goal,
            np.divide(goal - (marg - free), free, out=np.ones_like(goal), where=free > 0),
            1.0,
        )
        seconds = seconds * _along(down, axis, ndim)
        seconds = np.where(full, seconds, np.minimum(seconds * _along(grow, axis, ndim), avail))
        if np.abs(marginal(seconds, axis) - goal).max() <= 1e-6:
            break
    return seconds


def _least_squares(start: Floats, avail: Floats, goals: list[Floats], total: float) -> Floats:
    """Cells whose marginals are nearest the goals (sum of squares, hours), when IPF cycles.

    Accelerated projected gradient (FISTA) over 0 <= cell <= available, sum = total.
    """
    ndim = start.ndim
    step = 1.0 / sum(start.size / size for size in start.shape)  # 1 / Lipschitz constant
    current, ahead, momentum = start, start, 1.0
    for _ in range(500):  # on skewed 1M-row manifests, later steps moved no share by 1e-4
        gradient = np.zeros_like(ahead)
        for axis in range(ndim):
            gradient = gradient + _along(marginal(ahead, axis) - goals[axis], axis, ndim)
        following = _project(ahead - step * gradient, avail, total)
        moved = float(np.abs(following - current).max())
        next_momentum = (1 + math.sqrt(1 + 4 * momentum**2)) / 2
        ahead = following + (momentum - 1) / next_momentum * (following - current)
        current, momentum = following, next_momentum
        if moved <= 1e-7 * total:  # a millisecond per hour: far below one utterance
            break
    return current


def _project(point: Floats, upper: Floats, total: float) -> Floats:
    """The nearest grid to ``point`` with 0 <= cell <= upper and sum == total (exact).

    It is clip(point - mu, 0, upper); the sum falls piecewise linearly in mu, with kinks at
    point - upper and point, so mu comes from the sorted kinks.
    """
    if total >= upper.sum():
        return upper.copy()
    kinks = np.concatenate(((point - upper).ravel(), point.ravel()))
    turns = np.concatenate((-np.ones(upper.size), np.ones(upper.size)))
    order = np.argsort(kinks, kind="stable")
    kinks = kinks[order]
    slope = np.cumsum(turns[order])  # d(sum)/d(mu) just after each kink
    sums = upper.sum() + np.concatenate(([0.0], np.cumsum(slope[:-1] * np.diff(kinks))))
    last = max(int(np.searchsorted(-sums, -total)), 1)  # first kink whose sum is <= total
    mu = float(kinks[last - 1] + (sums[last - 1] - total) / max(-slope[last - 1], 1e-300))
    return np.minimum(np.maximum(point - mu, 0.0), upper)


def _top_up(seconds: Floats, avail: Floats, caps: list[float], total: float) -> Floats:
    """Spread what joint constraints left unallocated over spare cells, never past a cap."""
    ndim = seconds.ndim
    for axis, cap in enumerate(caps):
        marg = marginal(seconds, axis)
        ratio = np.divide(cap * total, marg, out=np.ones_like(marg), where=marg > cap * total)
        seconds = seconds * _along(ratio, axis, ndim)
    for _ in range(20):
        residual = total - float(seconds.sum())
        spare = avail - seconds
        headroom = [cap * total - marginal(seconds, a) for a, cap in enumerate(caps)]
        for axis, room in enumerate(headroom):
            spare = np.where(_along(room > 1e-9, axis, ndim), spare, 0.0)
        if residual <= 1e-6 or spare.sum() <= 1e-9:
            break
        add = spare * min(1.0, residual / float(spare.sum()))
        for axis, room in enumerate(headroom):
            added = marginal(add, axis)
            room = np.maximum(room, 0.0)
            limit = np.divide(room, added, out=np.ones_like(added), where=added > room)
            add = add * _along(np.minimum(limit, 1.0), axis, ndim)
        seconds = seconds + add
    return seconds


# --- rows -----------------------------------------------------------------------------------
