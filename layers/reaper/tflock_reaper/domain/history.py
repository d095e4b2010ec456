"""Lock history: what the audit recorded of each acquisition, summed up, replayed against a policy, and turned into
suggested thresholds. Pure: the records come from the state table (``adapters.state_table.StateTable.history``).

The replay (:func:`backtest`) models the sweeper as it runs: a sweep every ``sweep_every`` (the stack's schedule, a
minute by default) on the epoch's grid of that period; a lock is seen by the first sweep at or after its server-side
acquisition time, alerted from the first sweep at which it is ``warn_after`` old (and again every ``renotify_every``
until it is gone or reaped), and reaped by the first sweep at which it is ``reap_after`` old and has been seen for
``min_observed``. A rule whose holder is ``assume: unknown`` without checks never reaps (its locks are alerted
about until released, as the sweeper does); for a rule with checks, the replay assumes they would have allowed the
reap (what they answered then is not recorded). It ignores ``mode`` and ``max_reaps_per_sweep``: it counts what the
thresholds would do, which is what a threshold change changes.

A reap is *wrongful* when the lock's holder released it itself afterwards: the stream recorded the release by a
Terraform principal after the reap would have happened. The stream cannot tell ``terraform force-unlock`` from the
holder's own unlock (both are a DeleteItem by a Terraform user), so a lock released by hand counts as released by
its holder: the backtest errs towards calling a reap wrongful, never the other way. Such releases that came after
the reaper had alerted about the lock are flagged (``after_alert``): those are most likely force-unlocks.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from tflock_reaper.domain.durations import format_duration
from tflock_reaper.domain.policy import EffectiveRule, Policy

#: ``released_by`` of a release by a Terraform principal (the holder, or a human's ``terraform force-unlock``).
BY_TERRAFORM = "terraform"
#: ``released_by`` of a release the reaper made (a sweep's reap, or ``tflock-reaper unlock``).
BY_REAPER = "tflock-reaper"
#: ``reaped_by`` prefix of a reap made by hand with ``tflock-reaper unlock``.
UNLOCK_PREFIX = "unlock"
#: ``reaped_by`` prefix of a reap made by hand from the Slack app (*Reap now*).
SLACK_PREFIX = "slack"
#: The sweeper's schedule the replay assumes by default (the stack's ``SweepSchedule`` default).
DEFAULT_SWEEP_EVERY = timedelta(minutes=1)
#: Below this many releases by their holders, a group's thresholds are not suggested: the data says too little.
MIN_SAMPLES = 20
#: ``reap_after`` is suggested at least this many times the p99 hold of the locks their holders released, above
#: ``warn_after`` (an alert comes first) and never below :data:`MIN_REAP_AFTER`.
REAP_HEADROOM = 2
MIN_REAP_AFTER = timedelta(minutes=15)
#: The thresholds ``suggest`` chooses from: round values a person would write.
LADDER = tuple(
    timedelta(minutes=m)
    for m in (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 360, 480, 720, 1080, 1440, 2880, 4320, 10080)
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


@dataclass(frozen=True)
class HistoryRecord:
    """One acquisition as the state table keeps it (``history-by-day`` index): server times, and what became of it."""

    scope: str
    lock_path: str
    lock_id: str
    who: str
    operation: str
    acquired_at: datetime
    released_at: datetime | None = None
    released_by: str | None = None
    """``terraform``, ``tflock-reaper``, ``ttl``, ``unknown``; None while held, or when a sweep found the lock gone
    before the stream recorded its release (``gone_at``)."""
    warned_at: datetime | None = None
    blocked_at: datetime | None = None
    reap_status: str | None = None
    reaped_by: str | None = None
    gone_at: datetime | None = None
    table: str | None = None

    @property
    def held(self) -> bool:
        return self.released_at is None and self.gone_at is None

    @property
    def ended_at(self) -> datetime | None:
        return self.released_at or self.gone_at

    def hold(self, now: datetime) -> timedelta:
        """How long the lock was (or, still held, has been) held, by the server's clock."""
        return max((self.ended_at or now) - self.acquired_at, timedelta(0))

    @property
    def reaped(self) -> bool:
        return self.released_by == BY_REAPER or self.reap_status == "reaped"

    @property
    def released_by_holder(self) -> bool:
        """Released by a Terraform principal: its holder, or a human's force-unlock (the stream cannot tell)."""
        return self.released_by == BY_TERRAFORM

    @property
    def after_alert(self) -> bool:
        """Released by a Terraform principal after the reaper alerted about it: most likely ``force-unlock``. (The
        reaper warns only about a lock it finds held, so the release came after; the stream's time of it is rounded
        down to the second, and may read a moment earlier than the warning.)"""
        return self.released_by_holder and self.warned_at is not None

    @property
    def by_hand(self) -> bool:
        """Unlocked by a person: ``tflock-reaper unlock``, the Slack app's *Reap now*, or (most likely)
        ``force-unlock`` after an alert."""
        return self.after_alert or (self.reaped_by or "").startswith((UNLOCK_PREFIX, SLACK_PREFIX))

    @property
    def stale(self) -> bool:
        """The reaper reported it stale (alerted), or blocked its reap."""
        return self.warned_at is not None or self.blocked_at is not None


# -- summaries ------------------------------------------------------------------------------------------------
def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ``ordered`` (sorted, not empty): a value that was
    observed, never an interpolation."""
    rank = max(math.ceil(q / 100 * len(ordered)), 1)
    return ordered[rank - 1]


@dataclass(frozen=True)
class HoldStats:
    """Hold times (seconds) and outcomes of a group of acquisitions."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float
    stale: int
    reaped: int
    by_hand: int
    held_now: int
    longest_held_now: HistoryRecord | None
    longest_held_seconds: float | None

    def as_json(self) -> dict[str, object]:
        longest = self.longest_held_now
        return {
            "count": self.count,
            "hold_seconds": {"p50": self.p50, "p95": self.p95, "p99": self.p99, "max": self.max},
            "stale": self.stale,
            "reaped": self.reaped,
            "force_unlocked": self.by_hand,
            "held_now": self.held_now,
            "longest_held_now": None
            if longest is None
            else {
                "lock_path": longest.lock_path,
                "lock_id": longest.lock_id,
                "who": longest.who,
                "acquired_at": longest.acquired_at.isoformat(),
                "held_seconds": self.longest_held_seconds,
            },
        }


def hold_stats(records: Sequence[HistoryRecord], now: datetime) -> HoldStats:
    holds = sorted(r.hold(now).total_seconds() for r in records)
    held = [r for r in records if r.held]
    longest = min(held, key=lambda r: r.acquired_at) if held else None

    def pct(q: float) -> float:
        return percentile(holds, q) if holds else 0.0

    return HoldStats(
        count=len(records),
        p50=pct(50),
        p95=pct(95),
        p99=pct(99),
        max=holds[-1] if holds else 0.0,
        stale=sum(r.stale for r in records),
        reaped=sum(r.reaped for r in records),
        by_hand=sum(r.by_hand for r in records),
        held_now=len(held),
        longest_held_now=longest,
        longest_held_seconds=longest.hold(now).total_seconds() if longest else None,
    )


def group_by(records: Iterable[HistoryRecord], key: Callable[[HistoryRecord], str]) -> dict[str, list[HistoryRecord]]:
    groups: dict[str, list[HistoryRecord]] = defaultdict(list)
    for record in records:
        groups[key(record)].append(record)
    return dict(sorted(groups.items()))


def select(
    records: Iterable[HistoryRecord], *, since: datetime | None = None, path_glob: str | None = None
) -> list[HistoryRecord]:
    """The acquisitions at or after ``since`` whose path matches ``path_glob`` (``*`` also matches ``/``)."""
    return [
        r
        for r in records
        if (since is None or r.acquired_at >= since) and (path_glob is None or fnmatchcase(r.lock_path, path_glob))
    ]


#: Hold-time histogram bins (upper bounds); the last bin is open.
HISTOGRAM_BOUNDS = tuple(
    timedelta(seconds=s) for s in (60, 300, 600, 1800, 3600, 7200, 4 * 3600, 12 * 3600, 86400, 3 * 86400)
)


@dataclass(frozen=True)
class Bin:
    low: timedelta
    high: timedelta | None
    count: int

    @property
    def label(self) -> str:
        if self.high is None:
            return f">= {format_duration(self.low)}"
        return f"< {format_duration(self.high)}"


def histogram(records: Iterable[HistoryRecord], now: datetime) -> list[Bin]:
    """Hold times in :data:`HISTOGRAM_BOUNDS` bins (from a minute to three days, then longer)."""
    counts = [0] * (len(HISTOGRAM_BOUNDS) + 1)
    for record in records:
        hold = record.hold(now)
        index = next((i for i, bound in enumerate(HISTOGRAM_BOUNDS) if hold < bound), len(HISTOGRAM_BOUNDS))
        counts[index] += 1
    lows = (timedelta(0), *HISTOGRAM_BOUNDS)
    highs: tuple[timedelta | None, ...] = (*HISTOGRAM_BOUNDS, None)
    return [Bin(low, high, count) for low, high, count in zip(lows, highs, counts, strict=True)]


def stale_per_day(records: Iterable[HistoryRecord]) -> dict[str, int]:
    """Acquisitions the reaper reported stale, per day of their acquisition (UTC)."""
    days: dict[str, int] = {}
    for record in records:
        day = record.acquired_at.astimezone(UTC).date().isoformat()
        days[day] = days.get(day, 0) + record.stale
    return dict(sorted(days.items()))


# -- the replay -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Thresholds:
    """What the replay takes of a rule."""

    warn_after: timedelta
    reap_after: timedelta
    min_observed: timedelta
    renotify_every: timedelta
    reaps: bool = True
    """False for a rule whose holder is ``assume: unknown`` without checks: the sweeper never reaps by it."""

    @classmethod
    def of(cls, rule: EffectiveRule) -> Thresholds:
        reaps = bool(rule.holder.checks) or rule.holder.assume == "gone"
        return cls(rule.warn_after, rule.reap_after, rule.min_observed, rule.renotify_every, reaps)


@dataclass(frozen=True)
class Replayed:
    """What the replayed sweeps would have done to one acquisition."""

    alerts: int
    reap_at: datetime | None
    """The sweep that would have reaped it; None if none would have."""


def _us(when: datetime) -> int:
    return (when - _EPOCH) // _US


def _ceil(value: int, step: int) -> int:
    return -(-value // step) * step


def replay(record: HistoryRecord, limits: Thresholds, now: datetime, sweep_every: timedelta) -> Replayed:
    """The sweeps of the grid of ``sweep_every`` that see the lock: those at ``t`` with acquisition <= t < end (its
    release, or the sweep that found it gone; a lock still held is seen up to ``now``)."""
    period = sweep_every // _US
    acquired = _us(record.acquired_at)
    ended = record.ended_at
    last = (_us(ended) - 1) // period * period if ended is not None else _us(now) // period * period
    first = _ceil(acquired, period)
    if first > last:
        return Replayed(0, None)
    warn = max(_ceil(acquired + limits.warn_after // _US, period), first)
    reap = max(_ceil(acquired + limits.reap_after // _US, period), _ceil(first + limits.min_observed // _US, period))
    reaped = limits.reaps and reap <= last
    alert_until = reap - period if reaped else last
    alerts = 0
    if warn <= alert_until:
        step = _ceil(max(limits.renotify_every // _US, 1), period)
        alerts = (alert_until - warn) // step + 1
    reap_at = _EPOCH + reap * _US if reaped else None
    return Replayed(alerts, reap_at)


@dataclass(frozen=True)
class WouldReap:
    record: HistoryRecord
    at: datetime
    rule: str

    @property
    def wrongful(self) -> bool:
        """Its holder released it itself, after the reap would have happened."""
        return self.record.released_by_holder

    def as_json(self) -> dict[str, object]:
        r = self.record
        return {
            "lock_path": r.lock_path,
            "lock_id": r.lock_id,
            "who": r.who,
            "operation": r.operation,
            "rule": self.rule,
            "acquired_at": r.acquired_at.isoformat(),
            "would_reap_at": self.at.isoformat(),
            "released_at": r.released_at.isoformat() if r.released_at else None,
            "released_by": r.released_by,
            "after_alert": r.after_alert,
            "wrongful": self.wrongful,
        }


@dataclass(frozen=True)
class BacktestResult:
    """One policy replayed over the history."""

    name: str
    locks: int
    alerts: int
    alerted_locks: int
    reaps: tuple[WouldReap, ...]

    @property
    def wrongful(self) -> tuple[WouldReap, ...]:
        return tuple(r for r in self.reaps if r.wrongful)

    def as_json(self) -> dict[str, object]:
        return {
            "policy": self.name,
            "locks": self.locks,
            "alerts": self.alerts,
            "alerted_locks": self.alerted_locks,
            "reaps": len(self.reaps),
            "wrongful_reaps": len(self.wrongful),
            "wrongful": [r.as_json() for r in self.wrongful],
        }


def backtest(
    name: str,
    records: Iterable[HistoryRecord],
    policy: Policy,
    now: datetime,
    *,
    sweep_every: timedelta = DEFAULT_SWEEP_EVERY,
) -> BacktestResult:
    """``policy`` replayed over ``records``: the alerts it would have sent, the locks it would have reaped, and which
    of those reaps would have been wrongful."""
    locks = alerts = alerted = 0
    reaps: list[WouldReap] = []
    for record in records:
        rule = policy.rule_for_fields(record.lock_path, record.operation, record.who)
        replayed = replay(record, Thresholds.of(rule), now, sweep_every)
        locks += 1
        alerts += replayed.alerts
        alerted += replayed.alerts > 0
        if replayed.reap_at is not None:
            reaps.append(WouldReap(record, replayed.reap_at, rule.name))
    return BacktestResult(name, locks, alerts, alerted, tuple(reaps))


# -- suggestions ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Suggestion:
    """Thresholds for one rule (``rule`` as the deployed policy names it) or, for ``glob``, a new rule."""

    rule: str
    glob: str | None
    locks: int
    released_by_holder: int
    warn_after: timedelta
    reap_after: timedelta
    reasoning: tuple[str, ...]
    changed: bool

    def as_json(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "match": self.glob,
            "locks": self.locks,
            "released_by_holder": self.released_by_holder,
            "warn_after": format_duration(self.warn_after),
            "reap_after": format_duration(self.reap_after),
            "changed": self.changed,
            "reasoning": list(self.reasoning),
        }


@dataclass(frozen=True)
class _Group:
    rule: EffectiveRule
    records: list[HistoryRecord] = field(default_factory=list)


def _wrongful(records: Iterable[HistoryRecord], limits: Thresholds, now: datetime, sweep_every: timedelta) -> int:
    return sum(1 for r in records if r.released_by_holder and replay(r, limits, now, sweep_every).reap_at is not None)


def path_glob(lock_path: str, depth: int = 2) -> str | None:
    """The glob of a path's first ``depth`` directories (``bucket/prod/*`` of ``bucket/prod/net/x.tfstate``): where
    a per-glob suggestion applies; None for a path without a directory."""
    directories = lock_path.split("/")[:-1][:depth]
    return "/".join(directories) + "/*" if directories else None


def _describe_holds(records: Sequence[HistoryRecord], where: str, now: datetime) -> list[str]:
    lines = []
    for operation, group in group_by(records, lambda r: r.operation).items():
        holds = sorted(r.hold(now).total_seconds() for r in group)
        lines.append(
            f"p99 hold of {operation} under {where} is "
            f"{format_duration(timedelta(seconds=percentile(holds, 99)))} over {len(group)} locks released by their "
            "holders"
        )
    return lines


def _propose(  # noqa: PLR0917 - one call site, each argument named there
    name: str,
    glob: str | None,
    rule: EffectiveRule,
    records: Sequence[HistoryRecord],
    now: datetime,
    sweep_every: timedelta,
) -> Suggestion:
    where = glob or ("every state" if name == "defaults" else name)
    by_holder = [r for r in records if r.released_by_holder]
    current = Thresholds.of(rule)
    if len(by_holder) < MIN_SAMPLES:
        return Suggestion(
            name,
            glob,
            len(records),
            len(by_holder),
            rule.warn_after,
            rule.reap_after,
            (
                (
                    f"{len(by_holder)} locks under {where} were released by their holders (fewer than "
                    f"{MIN_SAMPLES}): too few to suggest; warn_after {format_duration(rule.warn_after)} and "
                    f"reap_after {format_duration(rule.reap_after)} kept"
                ),
            ),
            changed=False,
        )
    holds = sorted(r.hold(now).total_seconds() for r in by_holder)
    p99 = timedelta(seconds=percentile(holds, 99))
    reasoning = _describe_holds(by_holder, where, now)
    warn = next((step for step in LADDER if step >= p99), LADDER[-1])
    floor = max(p99 * REAP_HEADROOM, MIN_REAP_AFTER)
    reap = None
    tried: list[tuple[timedelta, int]] = []
    for step in (s for s in LADDER if s >= floor and s > warn):
        wrongful = _wrongful(by_holder, replace(current, warn_after=warn, reap_after=step), now, sweep_every)
        tried.append((step, wrongful))
        if wrongful == 0:
            reap = step
            break
    if reap is None:
        # Nothing on the ladder clears every hold: past the longest hold, on the sweep grid.
        reap = timedelta(seconds=holds[-1]) + 2 * sweep_every
        reap = timedelta(seconds=math.ceil(reap.total_seconds() / 60) * 60)
    below = [s for s in LADDER if s < reap][-2:]
    comparisons = [
        f"reap_after {format_duration(s)} would have reaped "
        f"{_wrongful(by_holder, replace(current, reap_after=s, warn_after=min(warn, s)), now, sweep_every)} "
        "live locks"
        for s in (*below, reap)
    ]
    reasoning.append("; ".join(comparisons))
    reasoning.append(
        f"suggested warn_after {format_duration(warn)} (the p99 hold, rounded up), reap_after "
        f"{format_duration(reap)} (at least {REAP_HEADROOM}x the p99 hold, above warn_after, at least "
        f"{format_duration(MIN_REAP_AFTER)}, and no live lock reaped)"
    )
    changed = (warn, reap) != (rule.warn_after, rule.reap_after)
    return Suggestion(name, glob, len(records), len(by_holder), warn, reap, tuple(reasoning), changed)


def suggest(
    records: Iterable[HistoryRecord],
    policy: Policy,
    now: datetime,
    *,
    sweep_every: timedelta = DEFAULT_SWEEP_EVERY,
) -> list[Suggestion]:
    """Thresholds per rule of ``policy`` from the holds of the locks each rule judged, and per path glob for the
    locks no rule matches when a glob's holds call for thresholds of their own (at least :data:`MIN_SAMPLES`
    releases, and a ``reap_after`` half or double the rest's). No suggestion would have reaped a lock its holder
    released: each is checked by replaying it."""
    groups: dict[str, _Group] = {}
    for record in records:
        rule = policy.rule_for_fields(record.lock_path, record.operation, record.who)
        groups.setdefault(rule.name, _Group(rule)).records.append(record)
    suggestions: list[Suggestion] = []
    for name, group in sorted(groups.items()):
        overall = _propose(name, None, group.rule, group.records, now, sweep_every)
        if name == "defaults" and overall.changed:
            suggestions += _per_glob(overall, group, now, sweep_every)
        suggestions.append(overall)
    return suggestions


def _per_glob(overall: Suggestion, group: _Group, now: datetime, sweep_every: timedelta) -> list[Suggestion]:
    """Per-glob rules for the defaults' locks, where a glob's own thresholds differ from the rest's by 2x or more."""
    found = []
    for glob, records in group_by(group.records, lambda r: path_glob(r.lock_path) or "").items():
        if not glob or sum(r.released_by_holder for r in records) < MIN_SAMPLES:
            continue
        own = _propose("defaults", glob, group.rule, records, now, sweep_every)
        if own.reap_after <= overall.reap_after / 2 or own.reap_after >= overall.reap_after * 2:
            found.append(own)
    return found


def apply_suggestions(data: dict[str, Any], suggestions: Iterable[Suggestion]) -> dict[str, Any]:
    """The policy file's data (as YAML loads it) with the suggested thresholds: each rule's own, the defaults', and
    each per-glob suggestion as a new rule after the existing ones (so that it only takes locks no rule matched)."""
    result = copy.deepcopy(data)
    rules: list[dict[str, Any]] = result.setdefault("rules", [])
    for suggestion in suggestions:
        if not suggestion.changed:
            continue
        values = {
            "warn_after": format_duration(suggestion.warn_after),
            "reap_after": format_duration(suggestion.reap_after),
        }
        if suggestion.glob is not None:
            rules.append({"match": suggestion.glob, **values})
        elif suggestion.rule == "defaults":
            result.setdefault("defaults", {}).update(values)
        else:
            index = int(suggestion.rule.removeprefix("rules[").split("]", 1)[0])
            rules[index].update(values)
    if not rules:
        del result["rules"]
    return result
