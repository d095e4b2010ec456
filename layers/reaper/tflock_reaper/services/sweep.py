"""The sweep: read every lock, judge it, and reap only what every safety gate allows.

Used unchanged by the scheduled Lambda and the operator CLI. Collaborators (the lock table, the state
store, holder checks, the clock) are parameters; the handler and the CLI wire the real ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Generic, TypeVar

from tflock_reaper.domain.decision import (
    STALE_OUTCOMES,
    Action,
    Outcome,
    SweepPlan,
    Verdict,
    decide,
    lock_ages,
    needs_holder_check,
    plan_sweep,
)
from tflock_reaper.domain.errors import AwsAccessError
from tflock_reaper.domain.liveness import (
    HolderCheck,
    HolderState,
    HolderStatus,
    ProviderBuilder,
    Unavailable,
    build_holder_check,
    safe_status,
)
from tflock_reaper.domain.lock import (
    Classified,
    DigestRecord,
    DynamoItem,
    LockfileObject,
    LockRecord,
    SkippedItem,
    classify_item,
    classify_lockfile,
    merge_backends,
    table_scope,
)
from tflock_reaper.domain.memory import HeldLock, LockKey, LockState, StateStore, lock_key
from tflock_reaper.domain.notifier import AlertingFailed, NotificationRecord
from tflock_reaper.domain.policy import EffectiveRule, HolderSpec, Policy
from tflock_reaper.domain.ports import AlertSink, LockfileSource, LockSource
from tflock_reaper.domain.reconcile import ReadPlan, SweepKind, cheaper_to_scan, full
from tflock_reaper.domain.report import LockReport, Mode, SourceRead, SweepReport
from tflock_reaper.services.reap import Targets, reap
from tflock_reaper.services.reconcile import NO_AUDIT, Reconciler, lockfiles_key

logger = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def resolve_mode(policy: Policy, requested: Mode) -> tuple[Mode, str | None]:
    """Two keys: reaping needs both the policy's ``mode: enforce`` and the run's (``--enforce``, ``Mode``).

    Returns the effective mode and, when the keys disagree, a note saying why it is a dry run.
    """
    if requested == "enforce" and policy.mode == "enforce":
        return "enforce", None
    if requested == "enforce":
        return "dry-run", "enforce was requested but the policy says mode: dry-run: running as a dry run"
    return "dry-run", None


class HolderChecks:
    """Builds each configured check once per sweep (so that checks can cache their queries for the sweep)
    and never lets one raise."""

    def __init__(
        self,
        factory: Callable[[HolderSpec], HolderCheck] | None = None,
        *,
        providers: Mapping[str, ProviderBuilder] | None = None,
    ) -> None:
        self._factory = factory or partial(build_holder_check, providers=providers)
        self._checks: dict[HolderSpec, HolderCheck] = {}

    def _build(self, spec: HolderSpec) -> HolderCheck:
        """A check that cannot even be built answers ``unknown`` for its locks; the sweep goes on."""
        try:
            return self._factory(spec)
        except Exception as err:
            logger.exception("holder check could not be built")
            return Unavailable("holder", f"the check could not be set up: {type(err).__name__}: {err}")

    def status(self, spec: HolderSpec, lock: LockRecord, now: datetime, acquired_by: datetime) -> HolderStatus:
        """``acquired_by``: the latest moment the lock can have been taken, by server-side evidence (see
        :func:`tflock_reaper.domain.decision.lock_ages`): a run that started after it cannot hold the lock."""
        check = self._checks.get(spec)
        if check is None:
            check = self._checks[spec] = self._build(spec)
        status = safe_status(check, lock, now, acquired_by)
        if status.state is HolderState.UNKNOWN and status.evidence.startswith("the check failed"):
            logger.warning("holder check failed", extra={"lock_path": lock.lock_path, "check": check.name})
        return status


def judge(
    lock: LockRecord,
    state: LockState,
    policy: Policy,
    now: datetime,
    holders: HolderChecks,
) -> Verdict:
    """The verdict for one lock, asking its holder check only when the lock is old enough to reap."""
    rule: EffectiveRule = policy.rule_for(lock)
    ages = lock_ages(lock, rule, first_seen=state.first_seen, now=now, acquired_at=state.acquired_at)
    holder = None
    if needs_holder_check(ages, rule):
        holder = holders.status(rule.holder, lock, now, ages.acquired_by)
    return decide(
        lock,
        rule=rule,
        first_seen=state.first_seen,
        now=now,
        holder=holder,
        acquired_at=state.acquired_at,
        holds=state.holds,
    )


@dataclass
class _SourceRead:
    """One source's read in a sweep (a lock table, or the buckets' lockfiles): how (the plan), and the locks an
    incremental read found that the open set did not list."""

    key: str
    """The source's reconciliation key: the table's scope, or the buckets' (``reconcile.lockfiles_key``)."""
    plan: ReadPlan
    unlisted: list[LockRecord] = field(default_factory=list)
    disagreement: str | None = None

    def check(self, states: Mapping[LockKey, LockState]) -> None:
        """A lock read at a path of the open set under an ID the open set did not list, and whose acquisition the
        stream has not recorded even now: the stream is behind or lost its record. The lock is judged from the read
        all the same; the next sweep reads every item, in case the stream lost more than this one. (Recorded since
        the open set was read: the stream is in step, the read merely came first.)"""
        missed = [lock for lock in self.unlisted if states[lock_key(lock)].acquired_at is None]
        if missed:
            more = f" and {len(missed) - 1} more" if len(missed) > 1 else ""
            self.disagreement = (
                f"lock {missed[0].lock_id} at {missed[0].lock_path}{more} read but not reported by the stream"
            )


def _read_table(
    table: LockSource, plan: ReadPlan, state: StateStore, now: datetime, report: SweepReport
) -> tuple[list[Classified], _SourceRead]:
    """Read one table as planned. The open set is read first, in both kinds: an entry that the read then does not
    find was released before the read (:meth:`StateStore.settle` closes it). A Scan is planned instead when it costs
    fewer read units than the open set's locks one by one."""
    scope = table_scope(table.arn, table.name)
    held = state.held(scope)
    if plan.kind is SweepKind.INCREMENTAL and (dearer := cheaper_to_scan(len(held), table.size_bytes())):
        plan = full(dearer)
    return _read_planned(
        _Source(table.name, scope, table.read, table.scan),
        plan,
        held,
        lambda item: classify_item(item, now, table=table.name, table_arn=table.arn),
        report,
    )


def _read_lockfiles(
    lockfiles: LockfileSource, plan: ReadPlan, state: StateStore, now: datetime, report: SweepReport
) -> tuple[list[LockRecord | SkippedItem], _SourceRead]:
    """The buckets' lockfiles, read as planned: incrementally, a GetObject per lockfile of their open sets (no
    listing); in full, listed. The open sets are read first in both kinds, as a table's is."""
    held = [entry for scope in lockfiles.scopes for entry in state.held(scope)]
    source = _Source(lockfiles.name, lockfiles_key(lockfiles), lockfiles.read, lockfiles.scan)
    return _read_planned(source, plan, held, lambda obj: classify_lockfile(obj, now), report)


_Item = TypeVar("_Item")
_Entry = TypeVar("_Entry", bound="LockRecord | DigestRecord | SkippedItem")


@dataclass(frozen=True)
class _Source(Generic[_Item]):
    name: str
    key: str
    """Its reconciliation key: a table's scope, or the buckets' (``reconcile.lockfiles_key``)."""
    read: Callable[[Sequence[str]], Sequence[_Item]]
    scan: Callable[[], Iterable[_Item]]


def _read_planned(
    source: _Source[_Item],
    plan: ReadPlan,
    held: Sequence[HeldLock],
    classify: Callable[[_Item], _Entry],
    report: SweepReport,
) -> tuple[list[_Entry], _SourceRead]:
    """The open set's locks (incremental: read one by one), or every item (full); an incremental read that fails
    falls back to a full one. Reported and logged with its kind and reason."""
    items: Sequence[_Item] | None = None
    if plan.kind is SweepKind.INCREMENTAL:
        try:
            items = source.read([entry.lock_path for entry in held])
        except AwsAccessError as err:
            logger.warning("incremental read failed, reading every item", extra={"source": source.name})
            plan = full(f"the incremental read failed: {err}")
    if items is None:
        items = list(source.scan())
    entries = [classify(item) for item in items]
    report.reads.append(SourceRead(source.name, plan.kind, plan.reason, len(held), len(items)))
    read = _SourceRead(source.key, plan)
    if plan.kind is SweepKind.INCREMENTAL:
        read.unlisted = _unlisted(held, entries)
    logger.info("lock source read", extra=report.reads[-1].to_dict())
    return entries, read


def _unlisted(held: Sequence[HeldLock], entries: Sequence[object]) -> list[LockRecord]:
    listed = {(entry.lock_path, entry.lock_id) for entry in held}
    return [e for e in entries if isinstance(e, LockRecord) and (e.lock_path, e.lock_id) not in listed]


def _read_locks(
    tables: Sequence[LockSource],
    lockfiles: LockfileSource | None,
    *,
    state: StateStore,
    reconciler: Reconciler | None,
    now: datetime,
    report: SweepReport,
) -> tuple[list[LockRecord], list[_SourceRead]]:
    """Every well-formed lock, table items and lockfiles merged (dual backends: one record); digests are
    counted, everything else is reported as skipped. Each lock knows the table it was read from."""
    table_locks: list[LockRecord] = []
    reads: list[_SourceRead] = []
    for table in tables:
        plan = reconciler.plan(table, now) if reconciler is not None else full(NO_AUDIT)
        entries, read = _read_table(table, plan, state, now, report)
        reads.append(read)
        table_locks += _locks_of(entries, report)
    file_locks: list[LockRecord] = []
    if lockfiles is not None:
        plan = reconciler.plan_lockfiles(lockfiles, now) if reconciler is not None else full(NO_AUDIT)
        parsed, read = _read_lockfiles(lockfiles, plan, state, now, report)
        reads.append(read)
        file_locks = _locks_of(parsed, report)
    return merge_backends(table_locks, file_locks), reads


def _locks_of(entries: Sequence[LockRecord | DigestRecord | SkippedItem], report: SweepReport) -> list[LockRecord]:
    """The well-formed locks of what was read; digests are counted, everything else is reported as skipped."""
    locks: list[LockRecord] = []
    for entry in entries:
        if isinstance(entry, LockRecord):
            locks.append(entry)
        elif isinstance(entry, DigestRecord):
            report.digests += 1
        else:
            _skip(entry, report)
    return locks


def _skip(skipped: SkippedItem, report: SweepReport) -> None:
    report.skipped.append(skipped)
    fields = {"lock_id": skipped.lock_id, "lock_table": skipped.table, "reason": skipped.reason, "item": skipped.item}
    if skipped.unreadable:
        # It blocks every plan on its state as a lock does, and nobody may reap it: a human must look.
        logger.warning("unreadable lock", extra=fields)
    else:
        # INFO: the report lists skipped items; the Lambda logs at INFO, so each is on record there too.
        logger.info("item skipped", extra=fields)


def _server_time(lock_state: LockState, lock: LockRecord) -> LockState:
    """A lockfile's LastModified is the server's acquisition time: age and skew are judged from it (unless the
    stream already gave one for the lock item of a dual backend, taken a moment after the file)."""
    if lock.lockfile is None or lock_state.acquired_at is not None:
        return lock_state
    return replace(lock_state, acquired_at=lock.lockfile.last_modified)


#: Seconds of the invocation a sweep keeps in reserve: when fewer remain, it stops judging and acting, and
#: still records what it saw (see :meth:`StateStore.settle`) and reports.
TIME_RESERVE_SECONDS = 20.0


def _new_report(
    tables: Sequence[LockSource], lockfiles: LockfileSource | None, policy: Policy, mode: Mode, now: datetime
) -> SweepReport:
    effective, note = resolve_mode(policy, mode)
    if note:
        logger.warning("mode downgraded", extra={"note": note})
    return SweepReport(
        table=", ".join(table.name for table in tables) or None,
        buckets=lockfiles.name if lockfiles is not None else None,
        mode=effective,
        started_at=now,
        notes=[note] if note else [],
    )


def out_of_time(remaining_seconds: Callable[[], float] | None) -> bool:
    """Fewer than ``TIME_RESERVE_SECONDS`` left of the invocation (never, without a clock)."""
    return remaining_seconds is not None and remaining_seconds() < TIME_RESERVE_SECONDS


def sweep(
    *,
    lock_table: LockSource | Sequence[LockSource] | None,
    state: StateStore,
    policy: Policy,
    mode: Mode,
    clock: Callable[[], datetime] = utcnow,
    holders: HolderChecks | None = None,
    alerts: AlertSink | None = None,
    lockfiles: LockfileSource | None = None,
    remaining_seconds: Callable[[], float] | None = None,
    confirm: Callable[[Sequence[LockReport]], bool] | None = None,
    reconciler: Reconciler | None = None,
) -> SweepReport:
    """One sweep of one lock table and/or the lockfiles of some buckets. ``mode`` is the run's request; see
    :func:`resolve_mode`. ``remaining_seconds`` (the Lambda's remaining time) lets a sweep stop before it is cut
    off: the locks it has not judged or acted on yet are reported as deferred, for the next sweep.

    ``reconciler`` decides, per lock table, whether to read only the locks of the open set (incremental) or every
    item (full), and records the full reads; without one every read is full. Either way a lock is judged, and
    deleted, only from the item read in this sweep.

    ``confirm`` (the CLI on a terminal): shown the locks an enforcing sweep is about to reap, after every verdict and
    before the first delete; unless it returns True, nothing is reaped and the sweep finishes as a dry run.

    Raises :class:`AwsAccessError` only when the locks or the state table cannot be read: then nothing is deleted.
    """
    holders = holders or HolderChecks()
    now = clock()
    tables = _tables(lock_table)
    report = _new_report(tables, lockfiles, policy, mode, now)

    no_time_left = partial(out_of_time, remaining_seconds)
    locks, reads = _read_locks(tables, lockfiles, state=state, reconciler=reconciler, now=now, report=report)
    states = _observe(locks, reads, state, now)
    verdicts = _judge_all(locks, states, policy=policy, now=now, holders=holders, no_time_left=no_time_left)
    plan = plan_sweep(verdicts, enforce=report.mode == "enforce", max_reaps=policy.max_reaps_per_sweep)
    if confirm is not None:
        plan = _confirmed(plan, report, confirm, locks=locks, verdicts=verdicts, states=states)
    report.breaker = plan.breaker
    if plan.breaker:
        logger.error("circuit breaker tripped", extra={"reason": plan.breaker})

    stale: tuple[list[LockRecord], list[LockRecord]] = ([], [])
    for lock, verdict, planned in zip(locks, verdicts, plan.outcomes, strict=False):
        if no_time_left():
            break
        entry = LockReport(lock, verdict, planned, states[lock_key(lock)])
        if verdict.action is Action.REAP and plan.breaker:
            entry.notes.append(plan.breaker)
        if planned is Outcome.REAPED:
            entry.outcome, extra, entry.deleted_item = reap(lock, verdict, Targets(tables, lockfiles), state, clock)
            entry.notes.extend(extra)
        if alerts is not None:
            entry.notifications = _alert(alerts, entry, now)
        _remember_stale(entry, *stale)
        report.locks.append(entry)
        _log_verdict(entry, quiet_kept=report.sweep_kind is SweepKind.INCREMENTAL)
    if alerts is not None:
        _alert_unreadables(alerts, report, no_time_left, now)
    _finish(report, locks, state, stale, now, reconciled=partial(_reconciled, reconciler, reads, now))
    return report


def _remember_stale(entry: LockReport, warned: list[LockRecord], blocked: list[LockRecord]) -> None:
    """The locks first reported stale by this sweep, and those whose reap it blocked (the history keeps both)."""
    if entry.outcome in STALE_OUTCOMES and entry.state.warned_at is None:
        warned.append(entry.lock)
    if entry.outcome is Outcome.BLOCKED:
        blocked.append(entry.lock)


def _observe(
    locks: Sequence[LockRecord], reads: Sequence[_SourceRead], state: StateStore, now: datetime
) -> dict[LockKey, LockState]:
    """Each lock's state (server-side times where known); and whether an incremental read was out of step."""
    observed = state.observe(locks, now)
    for read in reads:
        read.check(observed)
    return {lock_key(lock): _server_time(observed[lock_key(lock)], lock) for lock in locks}


def _reconciled(reconciler: Reconciler | None, reads: Sequence[_SourceRead], now: datetime) -> None:
    if reconciler is None:
        return
    for read in reads:
        reconciler.finished(read.key, read.plan, now, disagreement=read.disagreement)


def _confirmed(
    plan: SweepPlan,
    report: SweepReport,
    confirm: Callable[[Sequence[LockReport]], bool],
    *,
    locks: Sequence[LockRecord],
    verdicts: Sequence[Verdict],
    states: Mapping[LockKey, LockState],
) -> SweepPlan:
    """The plan, or (when the reaps it plans are not confirmed) the same plan as a dry run's."""
    planned = zip(locks, verdicts, plan.outcomes, strict=False)
    reaps = [
        LockReport(lock, v, outcome, states[lock_key(lock)])
        for lock, v, outcome in planned
        if outcome is Outcome.REAPED
    ]
    if not reaps or confirm(reaps):
        return plan
    report.mode = "dry-run"
    report.notes.append("the reaps were not confirmed: nothing was reaped, the sweep ran as a dry run")
    logger.warning("reaps not confirmed", extra={"locks": len(reaps)})
    outcomes = tuple(Outcome.WOULD_REAP if outcome is Outcome.REAPED else outcome for outcome in plan.outcomes)
    return SweepPlan(outcomes, plan.breaker)


def _judge_all(
    locks: Sequence[LockRecord],
    states: Mapping[LockKey, LockState],
    *,
    policy: Policy,
    now: datetime,
    holders: HolderChecks,
    no_time_left: Callable[[], bool],
) -> list[Verdict]:
    """Each lock's verdict, in order, until the time reserve is reached (a holder check may take seconds: the clock
    is checked before each)."""
    verdicts: list[Verdict] = []
    for lock in locks:
        if no_time_left():
            break
        verdicts.append(judge(lock, states[lock_key(lock)], policy, now, holders))
    return verdicts


def _finish(
    report: SweepReport,
    locks: list[LockRecord],
    state: StateStore,
    stale: tuple[list[LockRecord], list[LockRecord]],
    now: datetime,
    *,
    reconciled: Callable[[], None],
) -> None:
    """Report what the sweep had no time for, and record its observations (best effort); once they are recorded,
    ``reconciled`` (the open set then holds every lock a full read found)."""
    report.deferred = [lock.lock_path for lock in locks[len(report.locks) :]]
    if report.deferred:
        logger.error(
            "sweep stopped early to finish within its time limit",
            extra={"deferred": len(report.deferred), "acted_on": len(report.locks), "locks": len(locks)},
        )
    try:
        warned, blocked = stale
        state.settle(warned, now, blocked)
    except AwsAccessError as err:
        logger.error("cannot record the sweep's observations", extra={"error": str(err)})
        return
    reconciled()


def _alert_unreadables(alerts: AlertSink, report: SweepReport, no_time_left: Callable[[], bool], now: datetime) -> None:
    """Alert about each unreadable lock, as about a stale one (it blocks its state, and nobody may reap it). A
    failing alert path never stops the sweep."""
    for item in report.unreadable:
        if no_time_left():
            return
        try:
            sent = alerts.on_unreadable(item, now)
        except Exception as err:
            logger.exception("alerting failed", extra={"lock_path": item.lock_path})
            sent = [AlertingFailed(f"{type(err).__name__}: {err}")]
        report.unreadable_notifications[item.lock_id] = list(sent)


def _alert(alerts: AlertSink, entry: LockReport, now: datetime) -> list[NotificationRecord]:
    """A failing alert path never stops the sweep."""
    try:
        return list(alerts.on_entry(entry, now))
    except Exception as err:
        logger.exception("alerting failed", extra={"lock_path": entry.lock.lock_path})
        return [AlertingFailed(f"{type(err).__name__}: {err}")]


def _tables(lock_table: LockSource | Sequence[LockSource] | None) -> list[LockSource]:
    if lock_table is None:
        return []
    return list(lock_table) if isinstance(lock_table, Sequence) else [lock_table]


def _log_verdict(entry: LockReport, *, quiet_kept: bool = False) -> None:
    """One ``lock verdict`` line per lock, at INFO; with ``quiet_kept`` (an incremental sweep, every minute) a kept
    lock's at DEBUG: the full sweeps (hourly, at least) still log every held lock, and every sweep every stale one,
    while the lines of healthy locks no longer dominate the logs' cost (docs/performance.md)."""
    level = logging.DEBUG if quiet_kept and entry.outcome is Outcome.KEPT else logging.INFO
    if not logger.isEnabledFor(level):
        return
    # Prefixed names: ``created`` (and others) are LogRecord attributes that ``extra`` may not overwrite.
    fields = {("lock_" + k if k in ("path", "id", "created") else k): v for k, v in entry.to_dict().items()}
    logger.log(level, "lock verdict", extra=fields)


def explain(
    lock_path: str,
    *,
    item: DynamoItem | None,
    state: StateStore,
    policy: Policy,
    clock: Callable[[], datetime] = utcnow,
    holders: HolderChecks | None = None,
    lockfile: LockfileObject | None = None,
    table: str | None = None,
    table_arn: str | None = None,
) -> LockReport | SkippedItem | DigestRecord | None:
    """The verdict one sweep would give the lock at ``lock_path`` (its table item and/or its lockfile),
    without acting on it."""
    if item is None and lockfile is None:
        return None
    now = clock()
    classified = classify_item(item, now, table=table, table_arn=table_arn) if item is not None else None
    if classified is not None and not isinstance(classified, LockRecord):
        return classified
    from_file = classify_lockfile(lockfile, now) if lockfile is not None else None
    if isinstance(from_file, SkippedItem):
        return from_file
    merged = merge_backends([classified] if classified else [], [from_file] if from_file else [])
    # Same path, different IDs (two acquisitions): the sweep would judge both; explain shows the table's.
    lock = merged[0]
    lock_state = _server_time(state.observe([lock], now)[lock_key(lock)], lock)
    verdict = judge(lock, lock_state, policy, now, holders or HolderChecks())
    # explain never acts: a reap verdict shows as would-reap whatever the mode.
    planned = plan_sweep([verdict], enforce=False, max_reaps=policy.max_reaps_per_sweep)
    return LockReport(lock, verdict, planned.outcomes[0], lock_state)


def unlock(
    lock: LockRecord,
    *,
    tables: Sequence[LockSource],
    lockfiles: LockfileSource | None,
    state: StateStore,
    policy: Policy,
    reason: str,
    clock: Callable[[], datetime] = utcnow,
    alerts: AlertSink | None = None,
    by: str = "unlock",
) -> LockReport:
    """Reap the one acquisition a human named (``tflock-reaper unlock``), as a sweep reaps: :func:`reap`'s record of
    the intent, conditional delete (on ``lock`` exactly as it was read and shown), log line and outcome, then the
    ``reaped`` alert on the lock's rule's channels. The policy's gates are not asked: the human is the gate.
    ``reason`` is recorded with the reap, and ``by`` (``unlock by <user@host>``) as who asked for it."""
    now = clock()
    lock_state = _server_time(state.observe([lock], now)[lock_key(lock)], lock)
    rule = policy.rule_for(lock)
    ages = lock_ages(lock, rule, first_seen=lock_state.first_seen, now=now, acquired_at=lock_state.acquired_at)
    observed = max(now - lock_state.first_seen, timedelta(0))
    verdict = Verdict(
        Action.REAP, (reason,), ages.age, ages.basis, observed, rule, None, False, ages.reap_age, ages.reap_basis
    )
    entry = LockReport(lock, verdict, Outcome.REAPED, lock_state)
    entry.outcome, notes, entry.deleted_item = reap(lock, verdict, Targets(tables, lockfiles), state, clock, by=by)
    entry.notes.extend(notes)
    if alerts is not None and entry.outcome is Outcome.REAPED:
        entry.notifications = _alert(alerts, entry, now)
    _log_verdict(entry)
    return entry
