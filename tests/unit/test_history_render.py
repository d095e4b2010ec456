"""``history``'s drawings: the terminal histogram, and ``--html``'s self-contained page (parsed back with a strict
HTML checker, and, where a Chromium is installed, rendered by it)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from tflock_reaper.domain.history import Bin, HistoryRecord, histogram, stale_per_day
from tflock_reaper.entrypoints.cli.history_render import FULL_BLOCK, PARTIAL_BLOCKS, html_page, terminal_histogram

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


# -- fixtures ------------------------------------------------------------------------------------------------
def record(
    path: str = "bucket/prod/app.tfstate",
    hold: timedelta = timedelta(minutes=1),
    *,
    acquired_at: datetime | None = None,
    held: bool = False,
    stale: bool = False,
    released_by: str = "terraform",
    who: str = "ci@runner",
    operation: str = "OperationTypeApply",
    lock_id: str = "0f3a",
) -> HistoryRecord:
    """An acquisition held for ``hold`` (ended ``hold`` after it began; still held: began ``hold`` before NOW). Stale:
    alerted a second after it began (so a release by ``terraform`` counts as a force-unlock)."""
    acquired = acquired_at or (NOW - hold if held else NOW - timedelta(days=1))
    return HistoryRecord(
        scope="locks",
        lock_path=path,
        lock_id=lock_id,
        who=who,
        operation=operation,
        acquired_at=acquired,
        released_at=None if held else acquired + hold,
        released_by=None if held else released_by,
        warned_at=acquired + timedelta(seconds=1) if stale else None,
    )


def rule_by_env(r: HistoryRecord) -> str:
    return "prod" if "/prod/" in r.lock_path else "dev"


def page(
    records: list[HistoryRecord],
    *,
    since: datetime | None = None,
    rule_of: Callable[[HistoryRecord], str] = rule_by_env,
) -> str:
    return html_page(
        title="tflock-reaper history: locks",
        generated_at=NOW,
        since=since,
        records=records,
        now=NOW,
        rule_of=rule_of,
    )


# -- a strict HTML checker -----------------------------------------------------------------------------------
VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"})


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None] = field(default_factory=dict)
    content: list[Node | str] = field(default_factory=list)
    parent: Node | None = None

    @property
    def children(self) -> list[Node]:
        return [c for c in self.content if isinstance(c, Node)]

    def iter(self) -> Iterator[Node]:
        for child in self.children:
            yield child
            yield from child.iter()

    def find_all(self, tag: str, cls: str | None = None) -> list[Node]:
        return [n for n in self.iter() if n.tag == tag and (cls is None or cls in (n.attrs.get("class") or "").split())]

    def find(self, tag: str, cls: str | None = None) -> Node:
        found = self.find_all(tag, cls)
        assert len(found) == 1, f"expected one <{tag} class={cls}>, found {len(found)}"
        return found[0]

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.content)

    def in_svg(self) -> bool:
        node: Node | None = self
        while node is not None:
            if node.tag == "svg":
                return True
            node = node.parent
        return False


class StrictTree(HTMLParser):
    """Builds a tree, and fails on anything a lenient browser would have to repair: an end tag that does not close
    the innermost open element, an end tag of a void element, a self-closed HTML (non-SVG) element, a duplicate
    attribute, an element left open at the end."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document")
        self.stack = [self.root]
        self.doctype: str | None = None

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def _node(self, tag: str, attrs: list[tuple[str, str | None]]) -> Node:
        names = [name for name, _ in attrs]
        assert len(names) == len(set(names)), f"duplicate attribute in <{tag}>: {names}"
        node = Node(tag, dict(attrs), parent=self.stack[-1])
        self.stack[-1].content.append(node)
        return node

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = self._node(tag, attrs)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = self._node(tag, attrs)
        assert tag in VOID or node.in_svg(), f"<{tag}/> self-closed outside SVG"

    def handle_endtag(self, tag: str) -> None:
        assert tag not in VOID, f"end tag of the void element {tag}"
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].content.append(data)


def parse(text: str) -> StrictTree:
    tree = StrictTree()
    tree.feed(text)
    tree.close()
    assert [n.tag for n in tree.stack] == ["#document"], f"left open: {[n.tag for n in tree.stack[1:]]}"
    return tree


def test_the_checker_catches_what_it_claims_to() -> None:
    for broken in (
        "<div><span></div></span>",
        "<div>",
        "<p></br></p>",
        "<div/>",
        '<p class="a" class="b"></p>',
    ):
        with pytest.raises(AssertionError):
            parse(broken)
    parse("<div><svg><line/></svg><br><img src=x></div>")


# -- the terminal --------------------------------------------------------------------------------------------
def bins(*counts: int) -> list[Bin]:
    bounds = [timedelta(minutes=m) for m in (1, 5, 10, 30, 60)]
    lows = [timedelta(0), *bounds]
    highs: list[timedelta | None] = [*bounds, None]
    return [Bin(low, high, count) for low, high, count in zip(lows, highs, counts, strict=False)]


def eighths(bar: str) -> int:
    """A bar's length in eighths of a cell; fails on anything but full blocks then at most one partial block."""
    body = bar.rstrip()
    full = len(body) - len(body.lstrip(FULL_BLOCK))
    rest = body[full:]
    assert len(rest) <= 1, f"not a bar: {bar!r}"
    return full * 8 + (PARTIAL_BLOCKS.index(rest) if rest else 0)


def split(line: str, label_width: int, width: int) -> tuple[str, str, int]:
    return line[:label_width], line[label_width + 1 : label_width + 1 + width], int(line[label_width + 1 + width :])


def test_terminal_histogram_bars_are_proportional_to_the_largest_bin() -> None:
    given = bins(8, 4, 0, 1, 3, 8)
    lines = terminal_histogram(given, width=10)
    assert len(lines) == len(given)
    label_width = max(len(b.label) for b in given)
    assert len({len(line) for line in lines}) == 1, "bars are padded: the counts line up"
    for line, b in zip(lines, given, strict=True):
        label, bar, count = split(line, label_width, 10)
        assert label == b.label.rjust(label_width)
        assert count == b.count
        assert eighths(bar) == round(b.count * 10 * 8 / 8)
    assert split(lines[0], label_width, 10)[1] == FULL_BLOCK * 10
    assert split(lines[1], label_width, 10)[1] == (FULL_BLOCK * 5).ljust(10)
    assert split(lines[4], label_width, 10)[1] == (FULL_BLOCK * 3 + "▊").ljust(10)  # 3/8 of 10 cells: 3 and 6 eighths


def test_terminal_histogram_draws_an_empty_bin_bare_and_a_tiny_one_visible() -> None:
    lines = terminal_histogram(bins(1000, 0, 1), width=40)
    label_width = max(len(b.label) for b in bins(1000, 0, 1))
    assert split(lines[0], label_width, 40)[1] == FULL_BLOCK * 40
    _, bar, count = split(lines[1], label_width, 40)
    assert (bar.strip(), count) == ("", 0)
    _, bar, count = split(lines[2], label_width, 40)
    assert (bar.strip(), count) == ("▏", 1), "one lock in a thousand still shows"
    assert all("\x1b" not in line and line == line.rstrip() for line in lines), "plain text, no trailing spaces"


def test_terminal_histogram_of_no_locks_has_counts_and_no_bars() -> None:
    lines = terminal_histogram(histogram([], NOW))
    assert len(lines) == 11
    assert all(line.endswith(" 0") and FULL_BLOCK not in line for line in lines)
    with pytest.raises(ValueError, match="width"):
        terminal_histogram(bins(1), width=0)


def test_terminal_histogram_of_records_uses_the_domain_bins() -> None:
    records = [record(hold=timedelta(seconds=s)) for s in (10, 20, 30, 400, 90000)]
    lines = terminal_histogram(histogram(records, NOW), width=30)
    assert [line.split()[-1] for line in lines] == ["3", "0", "1", "0", "0", "0", "0", "0", "0", "1", "0"]
    assert lines[0].strip().startswith("< 1m " + FULL_BLOCK * 30)
    assert lines[-1].strip().startswith(">= 3d")


# -- the page ------------------------------------------------------------------------------------------------
def two_rules() -> list[HistoryRecord]:
    return [
        record("bucket/prod/a.tfstate", timedelta(seconds=30)),
        record("bucket/prod/b.tfstate", timedelta(seconds=30), stale=True, operation="OperationTypePlan"),
        record("bucket/prod/c.tfstate", timedelta(minutes=2), stale=True, released_by="tflock-reaper"),
        record("bucket/prod/d.tfstate", timedelta(minutes=90), stale=True),
        record("bucket/dev/e.tfstate", timedelta(minutes=10), operation="OperationTypePlan"),
        record("bucket/dev/f.tfstate", timedelta(days=4), held=True, who="alice@laptop", lock_id="beef"),
    ]


def rows(table: Node, section: str = "tbody") -> dict[str, list[str]]:
    body = table.find(section)
    return {tr.find("th").text(): [td.text() for td in tr.find_all("td")] for tr in body.find_all("tr")}


def test_page_is_well_formed_html5() -> None:
    tree = parse(page(two_rules(), since=NOW - timedelta(days=7)))
    assert tree.doctype is not None
    assert tree.doctype.lower() == "doctype html"
    (html,) = tree.root.children
    assert html.tag == "html"
    assert html.attrs["lang"] == "en"
    assert [c.tag for c in html.children] == ["head", "body"]
    head = html.children[0]
    assert head.find_all("meta")[0].attrs == {"charset": "utf-8"}
    assert head.find("title").text() == "tflock-reaper history: locks"
    assert len(head.find_all("style")) == 1


def test_summary_table_has_a_row_per_rule_with_its_hold_stats() -> None:
    tree = parse(page(two_rules()))
    summary = tree.root.find("table", "summary")
    headers = [th.text() for th in summary.find("thead").find_all("th")]
    assert headers == [
        "rule",
        "count",
        "p50",
        "p95",
        "p99",
        "max",
        "stale",
        "reaped",
        "force-unlocked",
        "held now",
        "longest held now",
    ]
    got = rows(summary)
    assert list(got) == ["dev", "prod"]
    # prod: holds 30s, 30s, 2m, 1h30m (nearest rank: p50 is the 2nd, p95 and p99 the 4th); three alerted, of which
    # one reaped and two released by Terraform after the alert (force-unlocked)
    assert got["prod"] == ["4", "30s", "1h30m", "1h30m", "1h30m", "3", "1", "2", "0", "—"]
    # dev: 10m released, and one held for 4 days now
    assert got["dev"][:9] == ["2", "10m", "4d", "4d", "4d", "0", "0", "0", "1"]
    assert got["dev"][9] == "bucket/dev/f.tfstateOperationTypeApply by alice@laptop, held 4d (ID beef)"
    total = rows(summary, "tfoot")
    assert list(total) == ["all"]
    assert total["all"][:9] == ["6", "2m", "4d", "4d", "4d", "3", "1", "2", "1"]


def test_operations_table_has_a_row_per_operation() -> None:
    got = rows(parse(page(two_rules())).root.find("table", "operations"))
    assert list(got) == ["OperationTypeApply", "OperationTypePlan"]
    assert [got[op][0] for op in got] == ["4", "2"]
    assert got["OperationTypePlan"][4] == "10m"  # max of 30s and 10m


def test_page_has_a_hold_distribution_chart_per_rule_with_a_bar_per_nonempty_bin() -> None:
    records = two_rules()
    tree = parse(page(records))
    charts = {svg.attrs["data-rule"] or "": svg for svg in tree.root.find_all("svg", "hold-distribution")}
    assert sorted(charts) == ["dev", "prod"]
    expected = {
        "prod": [("< 1m", 2), ("< 5m", 1), ("< 2h", 1)],
        "dev": [("< 30m", 1), (">= 3d", 1)],
    }
    for rule, svg in charts.items():
        mine = [r for r in records if rule_by_env(r) == rule]
        nonempty = [b for b in histogram(mine, NOW) if b.count]
        bars = svg.find_all("rect")
        assert len(bars) == len(nonempty)
        assert [(b.attrs["data-bin"], int(b.attrs["data-count"] or "")) for b in bars] == expected[rule]
        assert [b.find("title").text() for b in bars] == [
            f"hold {label}: {count} lock{'s' if count > 1 else ''}" for label, count in expected[rule]
        ]
        labels = [t.text() for t in svg.find_all("text", "x-label")]
        assert labels == [b.label for b in histogram(mine, NOW)], "every bin is on the axis, empty or not"
        assert {t.text() for t in svg.find_all("text", "axis-title")} == {"hold time", "locks"}
        assert svg.find_all("text", "tick")[0].text() == "0"
    prod_bars = charts["prod"].find_all("rect")
    heights = [float(b.attrs["height"] or "") for b in prod_bars]
    assert heights[0] == pytest.approx(2 * heights[1])
    assert heights[1] == pytest.approx(heights[2])


def test_page_has_the_stale_locks_per_day_with_every_day_of_the_window() -> None:
    day = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    records = [
        record(acquired_at=day, stale=True),
        record(acquired_at=day + timedelta(hours=3), stale=True),
        record(acquired_at=day + timedelta(hours=5)),
        record(acquired_at=day + timedelta(days=1)),
        record(acquired_at=day + timedelta(days=3, hours=14), stale=True),
    ]
    tree = parse(page(records, since=day - timedelta(days=2)))
    svg = tree.root.find("svg", "stale-over-time")
    bars = {b.attrs["data-day"]: b for b in svg.find_all("rect")}
    assert {d: int(b.attrs["data-stale"] or "") for d, b in bars.items()} == {"2026-03-02": 2, "2026-03-05": 1}
    assert {d: n for d, n in stale_per_day(records).items() if n} == {"2026-03-02": 2, "2026-03-05": 1}
    assert bars["2026-03-02"].find("title").text() == "2026-03-02: 2 stale of 3 acquisitions"
    assert float(bars["2026-03-02"].attrs["height"] or "") == pytest.approx(
        2 * float(bars["2026-03-05"].attrs["height"] or "")
    )
    # every day of the window (from `since` to now) has its slot, labelled every other day here: bars sit by day
    labels = {t.text(): float(t.attrs["x"] or "") for t in svg.find_all("text", "x-label")}
    assert list(labels) == ["2026-02-28", "2026-03-02", "2026-03-04", "2026-03-06", "2026-03-08", "2026-03-10"]
    slot = (labels["2026-03-04"] - labels["2026-03-02"]) / 2

    def centre(bar: Node) -> float:
        return float(bar.attrs["x"] or "") + float(bar.attrs["width"] or "") / 2

    assert centre(bars["2026-03-02"]) == pytest.approx(labels["2026-03-02"], abs=0.02)  # SVG has 2 decimals
    assert centre(bars["2026-03-05"]) == pytest.approx(labels["2026-03-02"] + 3 * slot, abs=0.02)
    assert "3 locks reported stale, per day of acquisition (UTC)." in tree.root.text()


def test_a_window_without_stale_locks_says_so() -> None:
    tree = parse(page([record(), record(hold=timedelta(hours=2))]))
    assert tree.root.find("svg", "stale-over-time").find_all("rect") == []
    assert "No lock was reported stale in the window." in tree.root.text()


def test_page_references_nothing_on_the_network() -> None:
    text = page(two_rules(), since=NOW - timedelta(days=30))
    tree = parse(text)
    assert "http://" not in text
    assert "https://" not in text
    assert "url(" not in text
    assert "@import" not in text
    forbidden = {"script", "link", "img", "iframe", "object", "embed", "base", "image", "use", "a", "form"}
    tags = {n.tag for n in tree.root.iter()}
    assert not tags & forbidden
    for node in tree.root.iter():
        for name in node.attrs:
            assert name not in {"src", "href", "xlink:href", "srcset", "action", "poster", "data"}, (node.tag, name)
            assert not name.startswith("on"), (node.tag, name)
    csp = [m for m in tree.root.find_all("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy"]
    assert len(csp) == 1
    assert "default-src 'none'" in (csp[0].attrs["content"] or "")
    assert len(tree.root.find_all("svg", "chart")) == 3


HOSTILE_PATH = 'bucket/prod/"><script>alert("path")</script>.tfstate'
HOSTILE_WHO = "<script>alert('who')</script>"
HOSTILE_OPERATION = "<img src=x onerror=alert(1)>"
HOSTILE_RULE = 'r" onmouseover="alert(1)" x="<b>'


def test_hostile_record_text_is_escaped_everywhere() -> None:
    records = [
        *two_rules(),
        record(
            HOSTILE_PATH,
            timedelta(days=9),
            held=True,
            who=HOSTILE_WHO,
            operation=HOSTILE_OPERATION,
            lock_id="</td></tr></table><script>x()</script>",
        ),
    ]
    text = page(records, rule_of=lambda r: HOSTILE_RULE if r.who == HOSTILE_WHO else rule_by_env(r))
    tree = parse(text)
    tags = {n.tag for n in tree.root.iter()}
    assert not tags & {"script", "img", "b"}, "no value became markup"
    assert "<script>" not in text
    assert "&lt;script&gt;" in text
    assert not any(name.startswith("on") for n in tree.root.iter() for name in n.attrs)
    # the values are all there, as text: the hostile holder is the longest held now of its rule and of all
    summary = tree.root.find("table", "summary")
    hostile = rows(summary)[HOSTILE_RULE]
    assert (
        hostile[9]
        == f"{HOSTILE_PATH}{HOSTILE_OPERATION} by {HOSTILE_WHO}, held 9d (ID </td></tr></table><script>x()</script>)"
    )
    assert rows(summary, "tfoot")["all"][9].startswith(HOSTILE_PATH)
    assert HOSTILE_OPERATION in rows(tree.root.find("table", "operations"))
    assert HOSTILE_RULE in {svg.attrs["data-rule"] for svg in tree.root.find_all("svg", "hold-distribution")}


def test_record_text_is_shown_on_one_line() -> None:
    text = page([record("bucket/prod/a\nforged line\u202e.tfstate", held=True, who="x\x1b[31m")])
    row = rows(parse(text).root.find("table", "summary"))["prod"]
    assert row[9].startswith("bucket/prod/a\ufffdforged line\ufffd.tfstate")
    assert "\x1b" not in text
    assert "\u202e" not in text


def test_empty_history_renders_a_page_that_says_so() -> None:
    text = page([], since=NOW - timedelta(days=30))
    tree = parse(text)
    body = tree.root.find("body")
    assert tree.root.find("title").text() == "tflock-reaper history: locks"
    assert "No lock history in the window (2026-02-08 12:00 UTC to 2026-03-10 12:00 UTC)." in body.text()
    assert tree.root.find_all("svg") == []
    assert tree.root.find_all("table") == []


# -- in a browser --------------------------------------------------------------------------------------------
def chromium() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(f"no Chromium on PATH ({', '.join(CHROMIUM_NAMES)}): on Debian, apt-get install chromium")


def test_chromium_renders_the_charts(tmp_path: Path) -> None:
    binary = chromium()
    records = [
        *two_rules(),
        record("bucket/dev/x.tfstate", who=HOSTILE_WHO, operation=HOSTILE_OPERATION, held=True, hold=timedelta(days=9)),
    ]
    source = page(records, since=NOW - timedelta(days=7))
    html_file = tmp_path / "history.html"
    html_file.write_text(source, encoding="utf-8")
    shot = tmp_path / "history.png"
    common = [
        binary,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-extensions",
        "--disable-sync",
    ]
    dumped = subprocess.run(
        [*common, "--dump-dom", html_file.as_uri()], capture_output=True, text=True, timeout=120, check=False
    )
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = parse(dumped.stdout).root
    mine = parse(source).root
    assert len(dom.find_all("svg", "hold-distribution")) == 2
    assert len(dom.find_all("svg", "stale-over-time")) == 1
    for cls in ("hold-distribution", "stale-over-time"):
        assert [len(s.find_all("rect")) for s in dom.find_all("svg", cls)] == [
            len(s.find_all("rect")) for s in mine.find_all("svg", cls)
        ], "the browser's tree has the bars the page was written with"
    assert dom.find_all("script") == []
    assert dom.find_all("img") == []
    assert HOSTILE_WHO in dom.find("table", "summary").text()
    drawn = subprocess.run(
        [*common, "--window-size=1280,2000", f"--screenshot={shot}", html_file.as_uri()],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert drawn.returncode == 0, drawn.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
