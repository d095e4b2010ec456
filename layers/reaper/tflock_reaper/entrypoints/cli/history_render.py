"""What ``history`` draws: the hold-time histogram in the terminal, and ``--html``'s page.

The page is one self-contained HTML5 file (inline style, inline SVG, no script, nothing fetched: it opens from a
mail attachment or an artifact store as it is). Its Content-Security-Policy forbids scripts and every fetch, so
that even a value this module failed to escape could neither run nor call out. Every value read from a record
(path, ``Who``, operation, lock ID) is written by whoever runs Terraform: it goes through
:func:`~tflock_reaper.domain.text.one_line` and :func:`html.escape` (quotes too: some land in attributes). Rule
names come from the policy file and are escaped all the same.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta

from tflock_reaper.domain.durations import format_duration
from tflock_reaper.domain.history import Bin, HistoryRecord, HoldStats, group_by, histogram, hold_stats, stale_per_day
from tflock_reaper.domain.text import one_line

# -- the terminal --------------------------------------------------------------------------------------------
FULL_BLOCK = "█"
#: A bar's last cell, in eighths of a cell: index 1 is one eighth (``▏``) ... 7 is seven eighths (``▉``).
PARTIAL_BLOCKS = ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")


def _bar(count: int, peak: int, width: int) -> str:
    eighths = round(count * width * 8 / peak) if peak else 0
    if count and not eighths:  # a bin with a lock is never drawn empty
        eighths = 1
    return FULL_BLOCK * (eighths // 8) + PARTIAL_BLOCKS[eighths % 8]


def terminal_histogram(bins: Sequence[Bin], width: int = 40) -> list[str]:
    """One line per bin: its label right-aligned, a bar of ``width`` cells at most (the largest bin's), its count.

    Bars are drawn in eighths of a cell; a bin with any lock gets at least one eighth, an empty bin none. Plain
    text: colour, if any, is the caller's."""
    if width < 1:
        raise ValueError(f"width must be at least 1, not {width}")
    peak = max((b.count for b in bins), default=0)
    label_width = max((len(b.label) for b in bins), default=0)
    count_width = len(str(peak))
    return [f"{b.label:>{label_width}} {_bar(b.count, peak, width):<{width}} {b.count:>{count_width}}" for b in bins]


# -- the page ------------------------------------------------------------------------------------------------
_CSS = """
:root { color-scheme: light dark; --fg: #1f2328; --muted: #656d76; --line: #d0d7de; --bar: #4c78a8;
  --stale: #d9480f; --bg: #ffffff; --zebra: #f6f8fa; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --muted: #8d96a0; --line: #30363d; --bar: #6ea8fe; --stale: #ff8a4c; --bg: #0d1117;
    --zebra: #161b22; }
}
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg);
  margin: 2rem auto; max-width: 1200px; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid var(--line); padding-bottom: .25rem; }
.meta, .note, figcaption { color: var(--muted); }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: .3rem .6rem; border-bottom: 1px solid var(--line); text-align: right; vertical-align: top; }
th:first-child, td:first-child, .longest { text-align: left; }
tbody tr:nth-child(even) { background: var(--zebra); }
tfoot td { font-weight: 600; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; word-break: break-all; }
.charts { display: flex; flex-wrap: wrap; gap: 0 2rem; }
.charts figure { flex: 1 1 480px; max-width: 640px; }
figure { margin: 1rem 0 1.5rem; }
figcaption { margin-bottom: .25rem; }
svg.chart { max-width: 100%; height: auto; }
svg.chart text { fill: var(--muted); font-size: 11px; }
svg.chart .axis { stroke: var(--muted); stroke-width: 1; }
svg.chart .grid { stroke: var(--line); stroke-width: 1; }
svg.chart .bar { fill: var(--bar); }
svg.chart .bar.stale { fill: var(--stale); }
svg.chart .bar:hover { opacity: .75; }
.empty { font-size: 1.1rem; padding: 1rem; border: 1px dashed var(--line); }
"""

#: No script, no fetch of any kind: only the inline style applies.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

_CHART_WIDTH = 640
_CHART_HEIGHT = 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 16, 56
#: The stale chart labels at most this many days on its axis (every day has a bar).
_DAY_LABELS = 6
#: Bars fill this share of their slot.
_BAR_FILL = 0.8


def _e(value: str) -> str:
    """A value escaped for HTML text and attribute values alike."""
    return html.escape(value, quote=True)


def _u(value: str) -> str:
    """A value from a record (written by whoever runs Terraform): on one line, then escaped."""
    return _e(one_line(value))


def _n(value: float) -> str:
    """An SVG coordinate: no needless decimals."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _d(seconds: float) -> str:
    return format_duration(timedelta(seconds=seconds))


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _steps() -> Iterator[int]:
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            yield factor * magnitude
        magnitude *= 10


def _ticks(peak: int) -> list[int]:
    """Round y-axis ticks from 0 to at least ``peak``, five steps at most."""
    if peak <= 0:
        return [0, 1]
    step = next(s for s in _steps() if math.ceil(peak / s) <= 5)  # noqa: PLR2004 - five steps
    return list(range(0, step * math.ceil(peak / step) + 1, step))


def _axes(ticks: Sequence[int], width: int, x_title: str, y_title: str) -> list[str]:
    """The y axis with its ticks and grid, the x axis, and both titles, of a chart ``width`` wide."""
    plot_h = _CHART_HEIGHT - _TOP - _BOTTOM
    bottom = _TOP + plot_h
    parts = []
    for tick in ticks:
        y = bottom - plot_h * tick / ticks[-1]
        parts.append(f'<line class="grid" x1="{_LEFT}" y1="{_n(y)}" x2="{width - _RIGHT}" y2="{_n(y)}"/>')
        parts.append(f'<text class="tick" x="{_LEFT - 6}" y="{_n(y + 4)}" text-anchor="end">{tick}</text>')
    parts.append(f'<line class="axis" x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{bottom}"/>')
    parts.append(f'<line class="axis" x1="{_LEFT}" y1="{bottom}" x2="{width - _RIGHT}" y2="{bottom}"/>')
    middle = _LEFT + (width - _LEFT - _RIGHT) / 2
    parts.append(
        f'<text class="axis-title" x="{_n(middle)}" y="{_CHART_HEIGHT - 8}" text-anchor="middle">{_e(x_title)}</text>'
    )
    y_mid = _TOP + plot_h / 2
    parts.append(
        f'<text class="axis-title" x="14" y="{_n(y_mid)}" text-anchor="middle" '
        f'transform="rotate(-90 14 {_n(y_mid)})">{_e(y_title)}</text>'
    )
    return parts


def _rect(slot_x: float, slot: float, fraction: float, *, classes: str, attrs: str, tooltip: str) -> str:
    """A bar in the slot at ``slot_x``, ``fraction`` of the plot's height, with its tooltip (escaped already)."""
    plot_h = _CHART_HEIGHT - _TOP - _BOTTOM
    height = plot_h * fraction
    x = slot_x + slot * (1 - _BAR_FILL) / 2
    return (
        f'<rect class="{classes}" x="{_n(x)}" y="{_n(_TOP + plot_h - height)}" width="{_n(slot * _BAR_FILL)}" '
        f'height="{_n(height)}" {attrs}><title>{tooltip}</title></rect>'
    )


def _x_label(x: float, text: str) -> str:
    y = _CHART_HEIGHT - _BOTTOM + 16
    return f'<text class="x-label" x="{_n(x)}" y="{y}" text-anchor="middle">{_e(text)}</text>'


def _hold_chart(rule: str, bins: Sequence[Bin]) -> str:
    """An SVG bar chart of one rule's hold-time bins: a bar (with its count as tooltip) per bin with a lock."""
    ticks = _ticks(max((b.count for b in bins), default=0))
    slot = (_CHART_WIDTH - _LEFT - _RIGHT) / max(len(bins), 1)
    label = f"Hold times of {_plural(sum(b.count for b in bins), 'lock')} under {rule}"
    svg = (
        f'<svg class="chart hold-distribution" data-rule="{_e(rule)}" viewBox="0 0 {_CHART_WIDTH} {_CHART_HEIGHT}" '
        f'width="{_CHART_WIDTH}" height="{_CHART_HEIGHT}" role="img" aria-label="{_e(label)}">'
    )
    parts = [
        svg,
        *_axes(ticks, _CHART_WIDTH, "hold time", "locks"),
    ]
    for index, b in enumerate(bins):
        slot_x = _LEFT + index * slot
        parts.append(_x_label(slot_x + slot / 2, b.label))
        if b.count:
            tooltip = _e(f"hold {b.label}: {_plural(b.count, 'lock')}")
            attrs = f'data-bin="{_e(b.label)}" data-count="{b.count}"'
            parts.append(_rect(slot_x, slot, b.count / ticks[-1], classes="bar", attrs=attrs, tooltip=tooltip))
    parts.append("</svg>")
    return "\n".join(parts)


def _day(record: HistoryRecord) -> str:
    # The same day as stale_per_day's.
    return record.acquired_at.astimezone(UTC).date().isoformat()


def _days(first: date, last: date) -> list[str]:
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def _stale_chart(records: Sequence[HistoryRecord], since: datetime | None, now: datetime) -> str:
    """An SVG bar chart of the locks reported stale per day (UTC) of their acquisition, every day of the window."""
    stale = stale_per_day(records)
    acquired = {day: len(rs) for day, rs in group_by(records, _day).items()}
    first = (
        min(date.fromisoformat(min(stale)), since.astimezone(UTC).date()) if since else date.fromisoformat(min(stale))
    )
    days = _days(first, max(date.fromisoformat(max(stale)), now.astimezone(UTC).date()))
    plot_w = max(_CHART_WIDTH - _LEFT - _RIGHT, 4 * len(days))
    width = _LEFT + plot_w + _RIGHT
    slot = plot_w / len(days)
    ticks = _ticks(max(stale.values()))
    every = math.ceil(len(days) / _DAY_LABELS)
    svg = (
        f'<svg class="chart stale-over-time" viewBox="0 0 {width} {_CHART_HEIGHT}" width="{width}" '
        f'height="{_CHART_HEIGHT}" role="img" aria-label="Locks reported stale per day of their acquisition">'
    )
    parts = [
        svg,
        *_axes(ticks, width, "day of acquisition (UTC)", "stale locks"),
    ]
    for index, day in enumerate(days):
        slot_x = _LEFT + index * slot
        if index % every == 0:
            parts.append(_x_label(slot_x + slot / 2, day))
        count = stale.get(day, 0)
        if count:
            tooltip = _e(f"{day}: {count} stale of {_plural(acquired.get(day, 0), 'acquisition')}")
            attrs = f'data-day="{day}" data-stale="{count}" data-acquired="{acquired.get(day, 0)}"'
            parts.append(_rect(slot_x, slot, count / ticks[-1], classes="bar stale", attrs=attrs, tooltip=tooltip))
    parts.append("</svg>")
    return "\n".join(parts)


_COLUMNS = ("count", "p50", "p95", "p99", "max", "stale", "reaped", "force-unlocked", "held now", "longest held now")


def _longest(stats: HoldStats) -> str:
    record = stats.longest_held_now
    if record is None or stats.longest_held_seconds is None:
        return "&mdash;"
    return (
        f"<code>{_u(record.lock_path)}</code><br>{_u(record.operation)} by {_u(record.who)}, held "
        f"{_d(stats.longest_held_seconds)} (ID <code>{_u(record.lock_id)}</code>)"
    )


def _row(label: str, stats: HoldStats) -> str:
    cells = [
        str(stats.count),
        _d(stats.p50),
        _d(stats.p95),
        _d(stats.p99),
        _d(stats.max),
        str(stats.stale),
        str(stats.reaped),
        str(stats.by_hand),
        str(stats.held_now),
    ]
    body = "".join(f"<td>{cell}</td>" for cell in cells)
    return f'<tr><th scope="row">{label}</th>{body}<td class="longest">{_longest(stats)}</td></tr>'


def _table(
    css_class: str, heading: str, groups: dict[str, list[HistoryRecord]], total: HoldStats | None, now: datetime
) -> str:
    """One row per group (labels already escaped by the caller), and a total row when given."""
    head = "".join(f'<th scope="col">{_e(c)}</th>' for c in (heading, *_COLUMNS[:-1]))
    head += f'<th scope="col" class="longest">{_e(_COLUMNS[-1])}</th>'
    rows = "\n".join(_row(label, hold_stats(records, now)) for label, records in groups.items())
    foot = f"<tfoot>{_row('all', total)}</tfoot>" if total is not None else ""
    return f'<table class="{css_class}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>{foot}\n</table>'


def _window(since: datetime | None, generated_at: datetime) -> str:
    if since is None:
        return f"all recorded history up to {_when(generated_at)}"
    return f"{_when(since)} to {_when(generated_at)}"


_NOTES = (
    "Hold times are nearest-rank percentiles of the time each lock was held (still held: held so far), by the state "
    "table's clock. <em>stale</em>: the reaper alerted about the lock or blocked its reap. <em>force-unlocked</em>: "
    "released with <code>tflock-reaper unlock</code>, or by a Terraform principal after an alert (most likely "
    "<code>terraform force-unlock</code>: the stream cannot tell it from the holder's own release)."
)


def _body(
    records: Sequence[HistoryRecord], since: datetime | None, now: datetime, by_rule: dict[str, list[HistoryRecord]]
) -> list[str]:
    rule_labels = {_e(rule): rs for rule, rs in by_rule.items()}
    total = hold_stats(records, now) if len(by_rule) > 1 else None
    by_operation = {_u(op): rs for op, rs in group_by(records, lambda r: r.operation).items()}
    parts = [
        '<section id="summary">\n<h2>By rule</h2>',
        _table("summary", "rule", rule_labels, total, now),
        "</section>",
        '<section id="hold-distribution">\n<h2>Hold times</h2>\n<div class="charts">',
    ]
    for rule, rs in by_rule.items():
        caption = f"{_e(rule)}: {_plural(len(rs), 'lock')}"
        parts.append(
            f"<figure>\n<figcaption>{caption}</figcaption>\n{_hold_chart(rule, histogram(rs, now))}\n</figure>"
        )
    parts.append("</div>\n</section>")
    stale = sum(stale_per_day(records).values())
    none = '<p class="note">No lock was reported stale in the window.</p>' if not stale else ""
    parts += [
        '<section id="stale-over-time">\n<h2>Stale locks over time</h2>',
        f'<p class="meta">{_plural(stale, "lock")} reported stale, per day of acquisition (UTC).</p>',
        _stale_chart(records, since, now),
        none,
        "</section>",
        '<section id="operations">\n<h2>By operation</h2>',
        _table("operations", "operation", by_operation, None, now),
        "</section>",
        f'<p class="note">{_NOTES}</p>',
    ]
    return parts


def html_page(
    *,
    title: str,
    generated_at: datetime,
    since: datetime | None,
    records: Sequence[HistoryRecord],
    now: datetime,
    rule_of: Callable[[HistoryRecord], str],
) -> str:
    """The history as one self-contained HTML5 page: per-rule summary and hold-time charts, stale locks per day,
    per-operation table. With no records, a page that says there is no history in the window."""
    by_rule = group_by(records, rule_of)
    meta = (
        f"Window: {_window(since, generated_at)}. {_plural(len(records), 'acquisition')}. "
        f"Generated {_when(generated_at)}."
    )
    header = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">{meta}</p>',
    ]
    if records:
        body = _body(records, since, now, by_rule)
    else:
        body = [f'<p class="empty">No lock history in the window ({_window(since, generated_at)}).</p>']
    return "\n".join([*header, *body, "</body>", "</html>", ""])
