"""What people read: tables and colour (rich, imported only here and only when a table is printed: the Lambda never
imports this module), the sweep's reasons, explain's text, the lock shown before a deletion.

Colour only on a terminal and never with ``NO_COLOR`` set (https://no-color.org). Off a terminal the table is laid
out for grep and cut: one line per lock, no wrapping, no trailing spaces. Every value read from a lock (its path,
``Who``, ``Operation``, ID, ...) is written by whoever can write to the lock table: it is shown through
:func:`~tflock_reaper.domain.text.one_line` (no forged lines, no escape sequences for the terminal).
"""

from __future__ import annotations

import json
import os
import textwrap
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TextIO

from tflock_reaper.domain.durations import format_duration
from tflock_reaper.domain.liveness import describe_answers
from tflock_reaper.domain.lock import LockRecord, SkippedItem
from tflock_reaper.domain.notification import force_unlock_command
from tflock_reaper.domain.notifier import AlertingFailed, NotificationRecord
from tflock_reaper.domain.report import LockReport, SweepReport
from tflock_reaper.domain.text import one_line, shell_word
from tflock_reaper.entrypoints.cli.listing import ONE_OFF_NOTE, Kind, Status

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

_PREVIEW_MAX = 140
#: Off a terminal, a line is as long as its content: no wrapping.
_UNBOUNDED_WIDTH = 1_000_000
ID_CHARS = 8
_NOTE_WIDTH = 110
#: The columns that wrap on a narrow terminal.
_FLEXIBLE = frozenset({"PATH", "WHO", "STATUS"})

_STATUS_STYLES = {
    Kind.OK: "green",
    Kind.STALE: "yellow",
    Kind.WAITING: "yellow",
    Kind.IN_USE: "cyan",
    Kind.BLOCKED: "red",
    Kind.WOULD_REAP: "magenta",
    Kind.REAPED: "bold red",
    Kind.CHANGED: "dim",
    Kind.FAILED: "bold red",
}


def wants_color(out: TextIO) -> bool:
    """Colour on a terminal, unless ``NO_COLOR`` is set to anything but the empty string."""
    return _isatty(out) and not os.environ.get("NO_COLOR")


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


def _console(out: TextIO) -> Console:
    from rich.console import Console  # noqa: PLC0415 - the CLI's alone: the Lambda never imports rich

    color = wants_color(out)
    return Console(
        file=out,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        width=None if _isatty(out) else _UNBOUNDED_WIDTH,
        highlight=False,
        markup=False,
        emoji=False,
    )


def _write_table(out: TextIO, headers: Sequence[str], rows: Sequence[Sequence[str | Text]]) -> None:
    from rich.table import Table  # noqa: PLC0415 - see _console

    console = _console(out)
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style="bold", show_edge=False)
    for index, header in enumerate(headers):
        # A terminal narrower than the table: the path, the holder and the status wrap, every other column stays
        # whole (an ID or an age cut short would mislead).
        widest = max([len(header), *(len(str(row[index])) for row in rows)])
        flexible = header in _FLEXIBLE
        table.add_column(header, no_wrap=not flexible, overflow="fold", min_width=None if flexible else widest)
    for row in rows:
        table.add_row(*row)
    with console.capture() as captured:
        console.print(table)
    out.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def _styled(text: str, style: str | None) -> Text:
    from rich.text import Text  # noqa: PLC0415 - see _console

    return Text(text, style=style or "")


def short_id(lock_id: str) -> str:
    return one_line(lock_id[:ID_CHARS])


def where(lock: LockRecord) -> str:
    """The table and/or the bucket the lock is held in."""
    sides = [lock.table or "?"] if lock.in_table else []
    if lock.lockfile is not None:
        sides.append(f"s3://{lock.lockfile.bucket}")
    return one_line(" + ".join(sides))


def age(delta: timedelta) -> str:
    return format_duration(timedelta(seconds=int(delta.total_seconds())))


def _sources_line(report: SweepReport) -> str:
    tables = report.table
    sources = [*([f"Lock table{'s' if tables and ',' in tables else ''} {tables}"] if tables else [])]
    sources += [report.buckets] if report.buckets else []
    return f"{', '.join(sources)}: mode {report.mode}\n"


def print_locks(
    report: SweepReport,
    shown: Sequence[tuple[LockReport, Status]],
    skipped: Sequence[SkippedItem],
    out: TextIO,
    *,
    statuses: Sequence[Status],
) -> None:
    """``locks``: one row per lock, oldest first (or as sorted), its status in words; the summary counts every lock
    read (``statuses``) by its status."""
    out.write(_sources_line(report))
    for note in report.notes:
        out.write(f"note: {note}\n")
    if shown:
        headers = ("PATH", "ID", "WORKSPACE", "TABLE", "OPERATION", "WHO", "AGE", "STATUS")
        rows = [
            (
                one_line(entry.lock.lock_path),
                short_id(entry.lock.lock_id),
                one_line(entry.lock.workspace),
                where(entry.lock),
                one_line(entry.lock.info.operation),
                one_line(entry.lock.info.who),
                age(entry.verdict.age),
                _styled(status.text, _STATUS_STYLES[status.kind]),
            )
            for entry, status in shown
        ]
        _write_table(out, headers, rows)
    else:
        out.write("(no locks held)\n" if not report.locks else "(no lock matches the filters)\n")
    if any(status.one_off for _, status in shown):
        out.write(textwrap.fill(ONE_OFF_NOTE, width=_NOTE_WIDTH) + "\n")
    by_kind = Counter(status.kind.value for status in statuses)
    counts = {"locks": len(report.locks), **{kind.value: by_kind[kind.value] for kind in Kind}}
    _print_tail(report, skipped, out, shown=len(shown), counts=counts)


def print_sweep(report: SweepReport, out: TextIO) -> None:
    """``sweep``: one row per lock, then every reason and alert of each."""
    out.write(_sources_line(report))
    for note in report.notes:
        out.write(f"note: {note}\n")
    if report.locks:
        headers = ("PATH", "ID", "TABLE", "OPERATION", "WHO", "AGE", "ACTION", "OUTCOME")
        rows = [
            (
                one_line(r.lock.lock_path),
                short_id(r.lock.lock_id),
                where(r.lock),
                one_line(r.lock.info.operation),
                one_line(r.lock.info.who),
                age(r.verdict.age),
                r.verdict.action.value,
                _styled(r.outcome.value, "bold red" if r.outcome.value in ("reaped", "failed") else None),
            )
            for r in report.locks
        ]
        _write_table(out, headers, rows)
        for entry in report.locks:
            lock = entry.lock
            out.write(
                f"\n{one_line(lock.lock_path)} ({short_id(lock.lock_id)}, {where(lock)}): {entry.outcome.value}\n"
            )
            for reason in entry.reasons:
                out.write(f"    - {one_line(reason)}\n")
            for sent in entry.notifications:
                out.write(f"    > {describe_notification(sent)}\n")
    else:
        out.write("(no locks held)\n")
    if report.breaker:
        out.write(f"{report.breaker}\n")
    _print_tail(report, report.skipped, out, shown=len(report.locks))


def _print_tail(
    report: SweepReport,
    skipped: Sequence[SkippedItem],
    out: TextIO,
    *,
    shown: int,
    counts: Mapping[str, int] | None = None,
) -> None:
    if skipped:
        out.write(f"Skipped {len(skipped)} item(s), never deleted:\n")
        for item in skipped:
            where_from = f" (in {one_line(item.table)})" if item.table else ""
            out.write(f"  {one_line(item.lock_id)}: {one_line(item.reason)}{where_from}\n")
    summary = report.summary()
    if counts is not None:  # a listing: each lock by its status, then what else was read
        summary = {**counts, **{key: summary[key] for key in ("digests", "skipped", "unreadable", "deferred")}}
    said = ", ".join(f"{value} {key.replace('_', '-')}" for key, value in summary.items() if value)
    filtered = f" ({shown} shown)" if shown != len(report.locks) else ""
    out.write(f"Summary: {said or 'nothing found'}{filtered}\n")


def describe_notification(record: NotificationRecord) -> str:
    if isinstance(record, AlertingFailed):
        return f"alerting failed: {one_line(record.error)}"
    event = record.event + (f" #{record.sequence}" if record.sequence else "")
    channels = ", ".join(f"{name} ({status})" for name, status in record.channels.items()) or "no channels"
    previews = [f"\n        {name}: {_preview(body)}" for name, body in (record.rendered or {}).items()]
    errors = [f"\n        {name} failed: {one_line(error)}" for name, error in record.errors.items()]
    return f"{event} -> {channels}" + "".join(previews) + "".join(errors)


def _preview(rendered: Mapping[str, Any]) -> str:
    """One line of what a channel would receive: Slack's fallback text, the SNS subject, PagerDuty's summary."""
    text = rendered.get("text") or rendered.get("Subject") or rendered.get("payload", {}).get("summary")
    text = text or rendered.get("error") or json.dumps(rendered, default=str)
    line = one_line(str(text).splitlines()[0]) if str(text) else ""
    return line if len(line) <= _PREVIEW_MAX else line[: _PREVIEW_MAX - 1] + "…"


def unlock_command(lock: LockRecord) -> str:
    """``tflock-reaper unlock PATH --id ID --table T [--bucket B]``: this acquisition only, from anywhere."""
    words = ["tflock-reaper", "unlock", shell_word(lock.lock_path), "--id", shell_word(lock.lock_id)]
    if lock.in_table and lock.table:
        words += ["--table", shell_word(lock.table)]
    if lock.lockfile is not None:
        words += ["--bucket", shell_word(lock.lockfile.bucket)]
    return " ".join(words)


def release_commands(report: LockReport) -> dict[str, str | None]:
    """The commands that release the lock by hand (None for a lock the verdict keeps: nothing to release)."""
    if report.verdict.action.value == "keep":
        return {"force_unlock_command": None, "unlock_command": None}
    return {
        "force_unlock_command": force_unlock_command(report.lock.workspace, report.lock.lock_id),
        "unlock_command": unlock_command(report.lock),
    }


def explain_text(report: LockReport) -> str:
    lock, info, verdict = report.lock, report.lock.info, report.verdict
    lines = [
        f"Lock      {one_line(lock.lock_path)}  (backend {lock.backend})",
        f"Held in   {where(lock)}",
        f"ID        {one_line(info.id)}",
        f"Operation {one_line(info.operation)}",
        f"Who       {one_line(info.who)}",
        f"Version   {one_line(info.version)}",
        f"Created   {info.created.isoformat()}  (workspace {one_line(lock.workspace)})",
        f"Age       {format_duration(verdict.age)} (by {verdict.age_basis})",
        f"Reap age  {format_duration(verdict.reap_age)} (by {verdict.reap_age_basis}; gates the reap)",
        f"Rule      {verdict.rule.name}",
        f"Verdict   {verdict.action.value} -> {report.outcome.value}",
        "Reasons:",
        *(f"  - {one_line(reason)}" for reason in report.reasons),
        "Holder:",
        *_holder_lines(report),
    ]
    commands = release_commands(report)
    if commands["force_unlock_command"]:
        lines += [
            "By hand, from the root module that uses this state:",
            f"  {commands['force_unlock_command']}",
            "or from anywhere (deletes this acquisition only, conditionally; logged and recorded):",
            f"  {commands['unlock_command']}",
        ]
    return "\n".join(lines)


def _holder_lines(report: LockReport) -> list[str]:
    """Each check's answer and evidence, one line per check."""
    status = report.verdict.holder
    if status is None:
        return ["  not asked: holder checks run only for locks past reap_after"]
    return [f"  {one_line(line)}" for line in describe_answers(status)]


def lock_preview(lock: LockRecord, now: datetime) -> str:
    """The lock as shown before it is deleted."""
    info = lock.info
    held = age(now - (lock.lockfile.last_modified if lock.lockfile is not None else info.created))
    by = "the lockfile's LastModified" if lock.lockfile is not None else "its Created, the holder's clock"
    return "\n".join(
        [
            f"  Lock      {one_line(lock.lock_path)}  (backend {lock.backend}, in {where(lock)})",
            f"  ID        {one_line(info.id)}",
            f"  Operation {one_line(info.operation)}",
            f"  Who       {one_line(info.who)}",
            f"  Created   {info.created.isoformat()}  (workspace {one_line(lock.workspace)}; held {held} by {by})",
        ]
    )
