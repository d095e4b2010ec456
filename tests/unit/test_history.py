"""The history's summaries, the policy backtest and the suggested thresholds (domain.history), checked against a
brute-force replay: a sweep every minute over the whole timeline, judging every held lock as the sweeper does."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from tflock_reaper.domain import history
from tflock_reaper.domain.history import HistoryRecord, Thresholds
from tflock_reaper.domain.policy import Policy, parse_policy

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
#: The defaults, with holders assumed gone: only then do the thresholds alone decide a reap.
GONE = parse_policy("defaults: {holder: {assume: gone}}")
MINUTE = timedelta(minutes=1)

POLICY = """
defaults:
  warn_after: 30m
  reap_after: 2h
  min_observed: 10m
  notify: {renotify_every: 1h}
  holder: {assume: gone}
rules:
  - match: "tf-state/prod/*"
    operations: [OperationTypeApply]
    warn_after: 1h
    reap_after: 4h
    notify: {renotify_every: 90s}
  - match: "tf-state/dev/*"
    warn_after: 15m
    reap_after: 45m
    min_observed: 30m
  - match: "other/*"
    operations: [OperationTypePlan]
    holder: {assume: unknown}
"""


def record(
    acquired: datetime,
    hold: timedelta | None,
    *,
    path: str = "tf-state/app.tfstate",
    operation: str = "OperationTypeApply",
    by: str = history.BY_TERRAFORM,
    warned: datetime | None = None,
    lock_id: str = "id",
) -> HistoryRecord:
    return HistoryRecord(
        scope="arn:aws:dynamodb:eu-west-1:123456789012:table/tf-locks",
        lock_path=path,
        lock_id=lock_id,
        who="runner@ci",
        operation=operation,
        acquired_at=acquired,
        released_at=acquired + hold if hold is not None else None,
        released_by=by if hold is not None else None,
        warned_at=warned,
    )


def generated(count: int, seed: int) -> list[HistoryRecord]:
    """``count`` acquisitions over 30 days with known holds: mostly short runs, a tail of long applies, some
    reaped, some removed by TTL, a few still held, at any microsecond."""
    rng = random.Random(seed)  # noqa: S311 - test data, not a secret
    paths = ["tf-state/prod/net.tfstate", "tf-state/prod/app.tfstate", "tf-state/dev/app.tfstate", "other/x.tfstate"]
    operations = ["OperationTypeApply", "OperationTypePlan", "OperationTypeRefresh"]
    records = []
    for n in range(count):
        acquired = NOW - timedelta(days=30) + timedelta(microseconds=rng.randrange(30 * 86400 * 10**6))
        kind = rng.random()
        if kind < 0.002:
            hold = None  # still held
        elif kind < 0.8:
            hold = timedelta(seconds=rng.expovariate(1 / 600))  # a run: ten minutes on average
        else:
            hold = timedelta(seconds=rng.uniform(600, 8 * 3600))  # long applies, and stuck locks
        if hold is not None and acquired + hold >= NOW:
            hold = None
        by = rng.choice([history.BY_TERRAFORM] * 6 + [history.BY_REAPER, "ttl"])
        records.append(
            record(acquired, hold, path=rng.choice(paths), operation=rng.choice(operations), by=by, lock_id=f"id-{n}")
        )
    return records


@dataclass
class BruteForce:
    alerts: int = 0
    alerted: int = 0
    reaped: int = 0
    wrongful: int = 0


def brute_force(records: list[HistoryRecord], policy: Policy, sweep_every: timedelta = MINUTE) -> BruteForce:
    """A sweep at every tick of the grid from the first acquisition to now: each lock held at that tick (acquired
    at or before it, not yet released) is judged by its rule as the sweeper judges it (age from the acquisition,
    observation from its first sweep, re-notified every renotify_every), and a reap removes it."""
    result = BruteForce()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    period = sweep_every
    start = min(r.acquired_at for r in records)
    tick = epoch + ((start - epoch) // period) * period
    pending = sorted(records, key=lambda r: r.acquired_at)
    active: dict[int, tuple[HistoryRecord, Thresholds, datetime]] = {}
    last_alert: dict[int, datetime] = {}
    next_index = 0
    while tick <= NOW:
        while next_index < len(pending) and pending[next_index].acquired_at <= tick:
            r = pending[next_index]
            rule = policy.rule_for_fields(r.lock_path, r.operation, r.who)
            active[next_index] = (r, Thresholds.of(rule), tick)
            next_index += 1
        for key, (r, limits, first) in list(active.items()):
            if r.released_at is not None and r.released_at <= tick:
                del active[key]
                continue
            age = tick - r.acquired_at
            if limits.reaps and age >= limits.reap_after and tick - first >= limits.min_observed:
                result.reaped += 1
                result.wrongful += r.released_by == history.BY_TERRAFORM
                del active[key]
            elif age >= limits.warn_after and (
                key not in last_alert or tick - last_alert[key] >= limits.renotify_every
            ):
                result.alerted += key not in last_alert
                result.alerts += 1
                last_alert[key] = tick
        tick += period
    return result


def test_the_backtest_of_10000_acquisitions_gives_the_brute_force_replays_exact_counts():
    records = generated(10_000, seed=17)
    policy = parse_policy(POLICY)
    result = history.backtest("candidate", records, policy, NOW)
    expected = brute_force(records, policy)
    assert result.locks == 10_000
    assert (result.alerts, result.alerted_locks, len(result.reaps), len(result.wrongful)) == (
        expected.alerts,
        expected.alerted,
        expected.reaped,
        expected.wrongful,
    )
    # The data exercises every branch: alerts, re-notifications, reaps, and wrongful ones.
    assert expected.alerts > expected.alerted > 0
    assert expected.reaped > expected.wrongful > 0


@pytest.mark.parametrize("sweep_every", [timedelta(minutes=5), timedelta(seconds=45)])
def test_the_backtest_follows_the_sweep_schedule(sweep_every: timedelta):
    records = generated(1500, seed=3)
    policy = parse_policy(POLICY)
    result = history.backtest("candidate", records, policy, NOW, sweep_every=sweep_every)
    expected = brute_force(records, policy, sweep_every)
    assert (result.alerts, result.alerted_locks, len(result.reaps), len(result.wrongful)) == (
        expected.alerts,
        expected.alerted,
        expected.reaped,
        expected.wrongful,
    )


def test_a_reap_is_wrongful_only_when_the_holder_released_the_lock_itself():
    policy = parse_policy("defaults: {warn_after: 30m, reap_after: 1h, min_observed: 0s, holder: {assume: gone}}")
    start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    records = [
        record(start, timedelta(hours=3), lock_id="holder", by=history.BY_TERRAFORM),
        record(start, timedelta(hours=3), lock_id="reaper", by=history.BY_REAPER),
        record(start, timedelta(hours=3), lock_id="ttl", by="ttl"),
        record(start, None, lock_id="held"),
        record(start, timedelta(minutes=59), lock_id="short"),
        # Released exactly at reap_after: the sweep at that minute finds it gone.
        record(start, timedelta(hours=1), lock_id="boundary"),
    ]
    result = history.backtest("p", records, policy, NOW)
    assert sorted(r.record.lock_id for r in result.reaps) == ["held", "holder", "reaper", "ttl"]
    [wrongful] = result.wrongful
    assert wrongful.record.lock_id == "holder"
    assert wrongful.at == start + timedelta(hours=1)
    assert wrongful.as_json()["wrongful"] is True


def test_a_release_by_terraform_after_an_alert_is_counted_by_hand_and_marked_in_the_backtest():
    start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    forced = record(start, timedelta(hours=5), warned=start + timedelta(minutes=30), lock_id="forced")
    reaped_by_hand = replace(record(start, timedelta(hours=1), by=history.BY_REAPER), reaped_by="unlock by me@host")
    swept = replace(record(start, timedelta(hours=2), by=history.BY_REAPER), reaped_by="sweep")
    plain = record(start, timedelta(minutes=5))
    assert [r.by_hand for r in (forced, reaped_by_hand, swept, plain)] == [True, True, False, False]
    stats = history.hold_stats([forced, reaped_by_hand, swept, plain], NOW)
    assert (stats.by_hand, stats.reaped, stats.stale) == (2, 2, 1)
    result = history.backtest(
        "p", [forced], parse_policy("defaults: {reap_after: 2h, min_observed: 0s, holder: {assume: gone}}"), NOW
    )
    assert result.wrongful[0].as_json()["after_alert"] is True


def test_hold_stats_are_nearest_rank_percentiles_of_the_server_side_hold_times():
    start = datetime(2026, 12, 1, tzinfo=UTC)
    records = [record(start, timedelta(minutes=m)) for m in range(1, 101)]
    records.append(record(NOW - timedelta(hours=7), None, lock_id="held"))
    stats = history.hold_stats(records, NOW)
    assert stats.count == 101
    assert (stats.p50, stats.p95, stats.p99) == (51 * 60, 96 * 60, 100 * 60)
    assert stats.max == 7 * 3600
    assert stats.held_now == 1
    assert stats.longest_held_now is not None
    assert stats.longest_held_now.lock_id == "held"
    assert stats.longest_held_seconds == 7 * 3600


def test_the_histogram_puts_each_hold_in_its_bin():
    start = datetime(2026, 12, 1, tzinfo=UTC)
    holds = [timedelta(seconds=30), timedelta(minutes=1), timedelta(minutes=4), timedelta(days=5)]
    bins = history.histogram([record(start, h) for h in holds], NOW)
    counts = {b.label: b.count for b in bins}
    assert counts["< 1m"] == 1
    assert counts["< 5m"] == 2
    assert counts[">= 3d"] == 1
    assert sum(counts.values()) == 4


def test_stale_per_day_counts_the_alerted_acquisitions_of_each_day():
    day1, day2 = datetime(2026, 12, 1, 23, tzinfo=UTC), datetime(2026, 12, 2, 1, tzinfo=UTC)
    records = [record(day1, MINUTE, warned=day1), record(day1, MINUTE), record(day2, MINUTE)]
    assert history.stale_per_day(records) == {"2026-12-01": 1, "2026-12-02": 0}


def test_select_keeps_the_window_and_the_glob():
    old, new = NOW - timedelta(days=40), NOW - timedelta(days=1)
    records = [record(old, MINUTE), record(new, MINUTE, path="tf-state/prod/a"), record(new, MINUTE, path="b/x")]
    chosen = history.select(records, since=NOW - timedelta(days=30), path_glob="tf-state/*")
    assert [r.lock_path for r in chosen] == ["tf-state/prod/a"]


# -- suggest --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_suggest_never_proposes_a_threshold_the_backtest_rejects(seed: int):
    records = generated(4000, seed=seed)
    policy = parse_policy(POLICY)
    suggestions = history.suggest(records, policy, NOW)
    assert {s.rule for s in suggestions} == {
        "defaults",
        "rules[0] tf-state/prod/*",
        "rules[1] tf-state/dev/*",
        "rules[2] other/*",
    }
    suggested = parse_policy(yaml.safe_dump(history.apply_suggestions(yaml.safe_load(POLICY), suggestions)))
    result = history.backtest("suggested", records, suggested, NOW)
    assert result.wrongful == ()
    assert brute_force(records, suggested).wrongful == 0
    for s in suggestions:
        assert s.warn_after <= s.reap_after
        if s.changed:
            assert any(line.startswith("p99 hold of ") for line in s.reasoning)
            assert "would have reaped 0 live locks" in s.reasoning[-2]


def test_suggest_says_why_and_lower_thresholds_would_have_reaped_live_locks():
    start = NOW - timedelta(days=10)
    records = [record(start + timedelta(hours=n), timedelta(minutes=10 + n % 30), lock_id=f"{n}") for n in range(200)]
    records.append(record(start, timedelta(minutes=95), lock_id="slow"))
    [s] = history.suggest(records, GONE, NOW)
    assert s.rule == "defaults"
    assert s.changed
    assert (
        s.reasoning[0]
        == "p99 hold of OperationTypeApply under every state is 39m over 201 locks released by their holders"
    )
    assert s.warn_after == timedelta(minutes=45)
    # 2x the p99 is 78m: 90m is the first ladder step, but the 95-minute hold rules it out.
    assert s.reap_after == timedelta(hours=2)
    assert "reap_after 1h30m would have reaped 1 live locks" in s.reasoning[1]
    assert "reap_after 2h would have reaped 0 live locks" in s.reasoning[1]


def test_too_few_releases_keep_the_rules_thresholds():
    records = [
        record(NOW - timedelta(days=1), timedelta(minutes=5), lock_id=f"{n}") for n in range(history.MIN_SAMPLES - 1)
    ]
    [s] = history.suggest(records, Policy(), NOW)
    assert not s.changed
    assert (s.warn_after, s.reap_after) == (timedelta(minutes=30), timedelta(hours=2))
    assert "too few to suggest" in s.reasoning[0]


def test_per_glob_rules_are_suggested_for_the_defaults_locks_where_the_data_says_so():
    start = NOW - timedelta(days=10)
    fast = [
        record(start + timedelta(hours=n), timedelta(minutes=3), path=f"quick/s{n}.tfstate", lock_id=f"q{n}")
        for n in range(60)
    ]
    slow = [
        record(start + timedelta(hours=n), timedelta(hours=3), path=f"big/estate/s{n}.tfstate", lock_id=f"b{n}")
        for n in range(60)
    ]
    suggestions = history.suggest(fast + slow, GONE, NOW)
    globs = {s.glob: s for s in suggestions if s.glob}
    assert set(globs) == {"quick/*"}
    data = history.apply_suggestions({"defaults": {"holder": {"assume": "gone"}}}, suggestions)
    assert data["rules"][0]["match"] == "quick/*"
    policy = parse_policy(yaml.safe_dump(data))
    assert history.backtest("s", fast + slow, policy, NOW).wrongful == ()
    assert policy.rule_for_fields("quick/s1.tfstate", "OperationTypeApply", "x").reap_after < timedelta(hours=1)


def test_apply_suggestions_changes_only_the_thresholds_of_the_rules_it_names():
    data = yaml.safe_load(POLICY)
    s = history.Suggestion("rules[1] tf-state/dev/*", None, 10, 10, timedelta(minutes=20), timedelta(hours=1), (), True)
    result = history.apply_suggestions(data, [s])
    assert result["rules"][1] == {**data["rules"][1], "warn_after": "20m", "reap_after": "1h"}
    assert result["rules"][0] == data["rules"][0]
    assert data["rules"][1]["reap_after"] == "45m"  # the input is not modified


def test_a_rule_that_cannot_check_its_holder_never_reaps_and_keeps_alerting():
    """``assume: unknown`` without checks: the sweeper blocks every reap and re-notifies until the release."""
    policy = parse_policy("defaults: {warn_after: 30m, reap_after: 1h, min_observed: 0s}")
    start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    result = history.backtest("p", [record(start, timedelta(hours=5))], policy, NOW)
    assert result.reaps == ()
    assert result.alerts == 5  # at 30m, then every renotify_every (1h) while held: 1h30m, 2h30m, 3h30m, 4h30m
