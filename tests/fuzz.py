"""Hypothesis strategies and settings profiles for the fuzz tests (tests/unit/test_fuzz_*.py).

Profiles (``HYPOTHESIS_PROFILE``): ``ci`` (the default: derandomized, modest example counts, so that the fuzz
files together stay well under a minute and every run tries the same inputs) and ``deep`` (random, many
more examples: run it by hand after touching lock.py, audit.py or policy.py).

``notifications()`` builds notifications of every kind from every lock shape the lock model accepts (any
``Created`` from year 1 to 9999 with any offset, hostile and huge text, text that tries to forge a line), for the
renderer properties in tests/unit/test_fuzz_notify.py.

Every generated lock-table item carries its expected class (``lock``, ``digest`` or ``skipped``), and every
generated ``.tflock`` object its own (``lock`` or ``skipped``), derived from how it was built, never from the code
under test: the properties compare the product with this oracle.
"""

from __future__ import annotations

import json
import os
import re
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from factories import NOW
from hypothesis import HealthCheck, assume, settings
from hypothesis import strategies as st
from tflock_reaper.domain.decision import Outcome
from tflock_reaper.domain.lock import LockfileObject, LockRecord, SkippedItem, classify_item, workspace_of
from tflock_reaper.domain.notification import Notification, NotificationKind
from tflock_reaper.domain.policy import parse_policy

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "deep",
    max_examples=2000,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: Everything a policy can open: past every age at once, observed long enough at once, holder declared gone,
#: no circuit breaker in practice. Only the lock model stands between a lock and its deletion.
AGGRESSIVE = parse_policy(
    """
mode: enforce
max_reaps_per_sweep: 1000000
defaults: {warn_after: 0s, reap_after: 0s, min_observed: 0s, trust_holder_clock: true, holder: {assume: gone}}
"""
)

FIELDS = ("ID", "Operation", "Info", "Who", "Version", "Created", "Path")

# -- text -------------------------------------------------------------------------------------------------
#: Any Unicode text (surrogates included: json.dumps escapes them, json.loads gives them back).
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
#: Big values, as a hostile writer of the lock table could store (an item holds up to 400 KB).
huge_text = st.builds(lambda ch, n: ch * n, st.characters(codec="utf-8"), st.integers(20_000, 120_000))
field_text = st.one_of(any_text, any_text, any_text, huge_text)

bucket = st.from_regex(r"[a-z0-9][a-z0-9.-]{1,30}", fullmatch=True)
_key_part = st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=20)
state_key = st.one_of(
    st.lists(_key_part, min_size=1, max_size=4).map("/".join),
    st.builds(lambda ws, k: f"env:/{ws}/{k}", _key_part, _key_part),
    st.builds(lambda k: f"{k}-md5", _key_part),  # a state key may end in -md5 itself: still a lock
    st.builds(lambda k: f"/{k}/", _key_part),  # odd slashes, still <bucket>/<something>
)
lock_path = st.builds(lambda b, k: f"{b}/{k}", bucket, state_key)


# -- Created ------------------------------------------------------------------------------------------------
def _rfc3339(when: datetime, digits: int, offset_minutes: int | None) -> str:
    """As Go prints it: ``digits`` fractional digits (up to 9: nanoseconds), ``Z`` or an explicit offset."""
    if offset_minutes is not None:
        when = when.astimezone(UTC) + timedelta(minutes=offset_minutes)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + (f"{when.microsecond:06d}" + "123")[:digits]
    if offset_minutes is None:
        return text + "Z"
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


def created_text(earliest: datetime, latest: datetime) -> st.SearchStrategy[str]:
    return st.builds(
        _rfc3339,
        st.datetimes(earliest.replace(tzinfo=None), latest.replace(tzinfo=None), timezones=st.just(UTC)),
        st.integers(0, 9),
        st.one_of(st.none(), st.integers(-23 * 60 - 59, 23 * 60 + 59)),
    )


#: A holder clock in the past (at least a day, so that no offset can push it past ``NOW``).
past_created = created_text(datetime(1970, 1, 2, tzinfo=UTC), NOW - timedelta(days=1))
#: More than the 5 minutes of tolerated skew ahead of ``NOW``.
future_created = created_text(NOW + timedelta(minutes=6), datetime(9999, 12, 30, tzinfo=UTC))
_looks_rfc3339 = st.from_regex(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})", fullmatch=True)


_SPEC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")


def _not_a_timestamp(text: str) -> bool:
    """Not RFC 3339 as Go writes it (shared/TERRAFORM_LOCKING.md), or not a real date and time."""
    if not _SPEC.fullmatch(text):
        return True
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return True
    return False


bad_created = st.one_of(
    _looks_rfc3339.filter(_not_a_timestamp),  # 2026-13-45T99:99:99Z
    st.sampled_from(["", "yesterday", "2026-11-26", "2026-11-26 12:00:00Z", "2026-11-26T12:00:00", "1764158400"]),
    any_text.filter(_not_a_timestamp),
)


# -- Info and items -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """A generated lock-table item and what it must be classified as."""

    item: dict[str, Any]
    kind: str  # "lock" | "digest" | "skipped"
    why: str

    @property
    def lock_id(self) -> str | None:
        value = self.item.get("LockID", {}).get("S")
        return value if isinstance(value, str) else None


def _dumps(info: dict[str, Any], style: tuple[bool, bool, bool]) -> str:
    compact, ascii_only, shuffled = style
    if shuffled:
        info = dict(reversed(list(info.items())))
    return json.dumps(info, ensure_ascii=ascii_only, separators=(",", ":") if compact else None)


json_style = st.tuples(st.booleans(), st.booleans(), st.booleans())
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), any_text)
json_value = st.recursive(
    json_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(any_text, inner, max_size=3))
)


@st.composite
def lock_infos(draw: st.DrawFn, path: str, created: st.SearchStrategy[str] = past_created) -> dict[str, Any]:
    info: dict[str, Any] = {
        "ID": draw(st.one_of(st.uuids().map(str), field_text.filter(bool))),
        "Operation": draw(st.one_of(st.sampled_from(["OperationTypeApply", "OperationTypePlan", "init"]), field_text)),
        "Info": draw(st.one_of(st.just(""), field_text)),
        "Who": draw(st.one_of(st.just("runner@ci-host-1"), field_text)),
        "Version": draw(st.one_of(st.just("1.15.5"), field_text)),
        "Created": draw(created),
        "Path": path,
    }
    # Terraform's encoder (Go) writes U+FFFD for a lone surrogate. An escaped one in ID is not a lock to the lock
    # model (ID's min_length makes pydantic read it as UTF-8), unlike in the other fields: left unpinned here.
    info["ID"] = re.sub("[\ud800-\udfff]", "\ufffd", info["ID"])
    # Keys Terraform does not write (a newer version's, a hostile writer's) are ignored: still a lock.
    extra = draw(st.dictionaries(any_text.filter(lambda k: k not in FIELDS), json_value, max_size=2))
    return {**info, **extra}


@st.composite
def well_formed_locks(draw: st.DrawFn) -> Case:
    path = draw(lock_path)
    raw = _dumps(draw(lock_infos(path)), draw(json_style))
    return Case({"LockID": {"S": path}, "Info": {"S": raw}}, "lock", "well-formed lock")


def _mutated_info(draw: st.DrawFn, path: str) -> tuple[str, str]:
    """A raw Info that is not a Terraform LockInfo on ``path``, and why."""
    info = draw(lock_infos(path))
    style = draw(json_style)
    how = draw(
        st.sampled_from(
            ["truncated", "text", "not-object", "missing", "wrong-type", "empty-id", "bad-created", "future", "path"]
        )
    )
    if how == "truncated":  # a proper prefix of a JSON object is never valid JSON
        raw = _dumps(info, style)
        return raw[: draw(st.integers(0, len(raw) - 1))], how
    if how == "text":
        return draw(any_text.filter(lambda t: not _is_json(t))), how
    if how == "not-object":
        return json.dumps(draw(json_value.filter(lambda v: not isinstance(v, dict)))), how
    if how == "missing":
        del info[draw(st.sampled_from(FIELDS))]
    elif how == "wrong-type":
        info[draw(st.sampled_from(FIELDS))] = draw(json_value.filter(lambda v: not isinstance(v, str)))
    elif how == "empty-id":
        info["ID"] = ""
    elif how == "bad-created":
        info["Created"] = draw(bad_created)
    elif how == "future":
        info["Created"] = draw(future_created)
    else:
        info["Path"] = draw(st.one_of(lock_path, any_text).filter(lambda p: p != path))
    return _dumps(info, style), how


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


attribute_value = st.one_of(
    st.builds(lambda v: {"S": v}, any_text),
    st.builds(lambda v: {"N": str(v)}, st.integers()),
    st.builds(lambda v: {"B": v}, st.binary(max_size=20)),
    st.builds(lambda v: {"BOOL": v}, st.booleans()),
    st.just({"NULL": True}),
    st.builds(lambda v: {"L": [{"S": s} for s in v]}, st.lists(any_text, max_size=3)),
    st.builds(lambda v: {"M": {k: {"S": k} for k in v}}, st.lists(any_text, max_size=3)),
    st.builds(lambda v: {"SS": v}, st.lists(any_text, min_size=1, max_size=3, unique=True)),
)
non_string_attribute = attribute_value.filter(lambda a: "S" not in a) | st.sampled_from(
    [{}, {"S": 5}, {"S": None}, {"S": ["x"]}, {"S": {"S": "x"}}]
)
attribute_name = any_text.filter(lambda n: n not in ("LockID", "Info"))
digest_text = st.from_regex(r"[0-9a-f]{32}", fullmatch=True)


@st.composite
def broken_items(draw: st.DrawFn) -> Case:
    """Items with a string LockID that are neither a well-formed lock nor a digest."""
    path = draw(lock_path)
    how = draw(st.sampled_from(["info", "info-type", "extra-attr", "no-slash", "no-info", "digest-bad", "md5-both"]))
    if how == "info":
        raw, why = _mutated_info(draw, path)
        return Case({"LockID": {"S": path}, "Info": {"S": raw}}, "skipped", why)
    if how == "info-type":
        return Case({"LockID": {"S": path}, "Info": draw(non_string_attribute)}, "skipped", how)
    if how == "extra-attr":
        good = draw(well_formed_locks()).item
        good[draw(attribute_name)] = draw(attribute_value)
        return Case(good, "skipped", how)
    if how == "no-slash":  # a LockID that is not <bucket>/<state path>, with an Info that agrees with it
        key = draw(st.builds(lambda b, s: s + b + s, bucket, st.sampled_from(["", "/", "//"])))
        raw = _dumps(draw(lock_infos(key)), draw(json_style))
        return Case({"LockID": {"S": key}, "Info": {"S": raw}}, "skipped", how)
    if how == "no-info":  # no Info, and not a digest (other key, or other attributes)
        attrs = draw(st.dictionaries(attribute_name.filter(lambda n: n != "Digest"), attribute_value, max_size=3))
        key = path + "-md5" if attrs else path.removesuffix("-md5") + "-x"
        return Case({"LockID": {"S": key}, **attrs}, "skipped", how)
    if how == "digest-bad":
        return Case({"LockID": {"S": path + "-md5"}, "Digest": draw(non_string_attribute)}, "skipped", how)
    good = draw(well_formed_locks()).item  # an -md5 key with Info and Digest: extra attribute beside Info
    return Case({**good, "Digest": {"S": draw(digest_text)}}, "skipped", how)


@st.composite
def digest_items(draw: st.DrawFn) -> Case:
    key = draw(lock_path) + "-md5"
    if draw(st.booleans()):
        return Case({"LockID": {"S": key}, "Digest": {"S": draw(st.one_of(digest_text, any_text))}}, "digest", "md5")
    return Case({"LockID": {"S": key}}, "digest", "terragrunt's bare -md5 item")


lock_table_cases = st.one_of(well_formed_locks(), broken_items(), broken_items(), digest_items())
no_lock_id_cases = st.builds(
    lambda attr, info: Case({**({"LockID": attr} if attr is not None else {}), "Info": {"S": info}}, "skipped", "id"),
    st.one_of(st.none(), non_string_attribute),
    st.just("{}"),
)

# -- lockfiles --------------------------------------------------------------------------------------------------
printable_key = st.text(string.ascii_letters + string.digits + "-_./:", min_size=1, max_size=30)


TFLOCK = ".tflock"

#: Server times of acquisitions, at least a day back (see ``past_created``).
_acquired = st.datetimes(
    datetime(1970, 1, 2, tzinfo=UTC).replace(tzinfo=None),
    (NOW - timedelta(days=1)).replace(tzinfo=None),
    timezones=st.just(UTC),
)
etag = st.integers(0, 2**128 - 1).map(lambda n: f'"{n:032x}"')


@dataclass(frozen=True)
class LockfileCase:
    """A generated ``.tflock`` object, the lock path its key stands for, and what it must be classified as."""

    obj: LockfileObject
    kind: str  # "lock" | "skipped"
    why: str
    path: str
    """``<bucket>/<key without .tflock>`` as built (for a key without the suffix: ``<bucket>/<key>``)."""


@st.composite
def _created_and_written(draw: st.DrawFn) -> tuple[str, datetime]:
    """A holder's ``Created`` and S3's ``LastModified`` of one acquisition: the object is written up to 4 minutes
    after ``Created`` is stamped (``-lock-timeout`` retries), within the tolerated skew between the two clocks."""
    when = draw(_acquired)
    created = _rfc3339(when, draw(st.integers(0, 9)), draw(st.one_of(st.none(), st.integers(-1439, 1439))))
    return created, when + timedelta(seconds=draw(st.integers(0, 240)))


def _utf8(info: dict[str, Any], style: tuple[bool, bool, bool]) -> bytes:
    """The body as Terraform writes it, UTF-8 JSON. A lone surrogate (``any_text`` has them) has no UTF-8 form:
    such an Info is written escaped (``\\udc80``), as the JSON it still is."""
    try:
        return _dumps(info, style).encode("utf-8")
    except UnicodeEncodeError:
        return _dumps(info, (style[0], True, style[2])).encode("utf-8")


@st.composite
def well_formed_lockfiles(draw: st.DrawFn) -> LockfileCase:
    bucket_name, key = draw(bucket), draw(state_key)
    path = f"{bucket_name}/{key}"
    created, written = draw(_created_and_written())
    info = draw(lock_infos(path, st.just(created)))
    why = "well-formed lockfile"
    if draw(st.integers(0, 7)) == 0:  # a huge body: keys Terraform does not write are ignored, whatever their size
        info[draw(st.sampled_from(["Padding", "LockTags", "\u00e9t\u00e9"]))] = draw(
            st.characters(codec="utf-8")
        ) * draw(st.integers(200_000, 1_000_000))
        why = "huge body"
    body = _utf8(info, draw(json_style))
    return LockfileCase(LockfileObject(bucket_name, key + TFLOCK, body, draw(etag), written), "lock", why, path)


#: Byte sequences no UTF-8 decoder accepts, wherever they land in an ASCII text.
_INVALID_UTF8 = [
    b"\xff",
    b"\xfe",
    b"\x80",
    b"\xc0\xaf",
    b"\xe2\x82",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xf8\x88\x80\x80\x80",
]


def _near_misses(bucket_name: str, key: str) -> list[str]:
    """Paths a careless comparison with ``<bucket>/<key>`` might accept."""
    path = f"{bucket_name}/{key}"
    return [
        path + TFLOCK,
        key,
        key + TFLOCK,
        bucket_name + key,
        "/" + path,
        path + "/",
        f"{bucket_name}//{key}",
        f"s3://{path}",
        f"{bucket_name}-x/{key}",
        path.upper(),
        path + " ",
        path + "\n",
    ]


@st.composite
def broken_lockfiles(draw: st.DrawFn) -> LockfileCase:
    """Objects that are not a well-formed ``<state key>.tflock`` lock: a bad body, a body on another path, or a
    well-formed body under a key that is not a lockfile's."""
    bucket_name, key = draw(bucket), draw(state_key)
    name = key + TFLOCK
    how = draw(
        st.sampled_from(["info", "info", "info", "path-near-miss", "not-utf8", "utf16", "bom", "key", "bare-suffix"])
    )
    if how == "key":
        name = draw(
            st.one_of(
                st.sampled_from([key, key + ".tflock.bak", key + ".TFLOCK", key + ".tflock ", key + ".tfstate"]),
                printable_key,
            ).filter(lambda k: not k.endswith(TFLOCK))
        )
        key = name  # what a reader that took it for a lockfile would call its state key
    elif how == "bare-suffix":  # no state key in front of the suffix
        name, key = TFLOCK, ""
    path = f"{bucket_name}/{key}"
    info = draw(lock_infos(path))
    style = draw(json_style)
    if how == "info":
        raw, how = _mutated_info(draw, path)
        try:
            body = raw.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate written raw: not UTF-8 at all
            body, how = raw.encode("utf-8", "surrogatepass"), "not-utf8"
    elif how == "path-near-miss":
        info["Path"] = draw(st.sampled_from(_near_misses(bucket_name, key)).filter(lambda p: p != path))
        body = _utf8(info, style)
    elif how == "not-utf8":
        ascii_body = _dumps(info, (style[0], True, style[2])).encode("ascii")
        at = draw(st.integers(0, len(ascii_body)))
        body = ascii_body[:at] + draw(st.sampled_from(_INVALID_UTF8)) + ascii_body[at:]
    elif how == "utf16":  # the JSON of a text editor's "Unicode": a byte order mark that UTF-8 has no use for
        body = _dumps(info, (style[0], True, style[2])).encode(draw(st.sampled_from(["utf-16", "utf-32"])))
    elif how == "bom":  # valid UTF-8, but JSON text never starts with U+FEFF
        body = b"\xef\xbb\xbf" + _utf8(info, style)
    else:
        body = _utf8(info, style)
    return LockfileCase(LockfileObject(bucket_name, name, body, draw(etag), draw(_acquired)), "skipped", how, path)


lockfile_cases = st.one_of(well_formed_lockfiles(), broken_lockfiles(), broken_lockfiles())


# -- notifications ----------------------------------------------------------------------------------------------
def written_created(when: datetime, digits: int, offset: str) -> str:
    """``Created`` as a holder's clock wrote it: ``when``'s fields (its time zone is ignored) are the wall-clock
    time *at* ``offset``, not converted, so
    that years 1 and 9999 come with every offset, even where the UTC equivalent would leave the calendar
    (``0001-01-01T00:00:00+01:00``). Formatted by hand: strftime does not pad years before 1000 everywhere."""
    text = f"{when.year:04d}-{when.month:02d}-{when.day:02d}T{when.hour:02d}:{when.minute:02d}:{when.second:02d}"
    if digits:
        text += "." + (f"{when.microsecond:06d}" + "987")[:digits]
    return text + offset


#: Every offset RFC 3339 and the lock model allow: ``Z``, ``-00:00`` and ``+/-HH:MM`` up to 23:59.
offset_text = st.one_of(
    st.sampled_from(["Z", "+00:00", "-00:00", "+23:59", "-23:59", "+14:00", "-12:00", "+05:45"]),
    st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(
        lambda m: f"{'-' if m < 0 else '+'}{abs(m) // 60:02d}:{abs(m) % 60:02d}"
    ),
)
_calendar_edges = st.sampled_from(
    [
        datetime.min.replace(tzinfo=UTC),
        datetime.min.replace(hour=23, minute=59, second=59, microsecond=999_999, tzinfo=UTC),
        datetime.max.replace(tzinfo=UTC),
        datetime.max.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC),
    ]
)
_first_days = (datetime(1, 1, 1, tzinfo=UTC).replace(tzinfo=None), datetime(1, 1, 3, tzinfo=UTC).replace(tzinfo=None))
#: Any ``Created`` the lock model accepts, the ends of the calendar often: years 1 to 9999, 0 to 9 fractional
#: digits, any offset. The notifications built from them are not judged against a clock (a resolved lock's
#: Created may lie anywhere), so future times are included.
any_created = st.builds(
    written_created,
    st.one_of(
        _calendar_edges, st.datetimes(timezones=st.just(UTC)), st.datetimes(*_first_days, timezones=st.just(UTC))
    ),
    st.integers(0, 9),
    offset_text,
)

#: Up to DynamoDB's 2,048 bytes for a partition key (the LockID), in any characters but ``/``.
long_lock_path = st.builds(
    lambda b, ch, n: f"{b}/{ch * n}".encode()[:2048].decode("utf-8", "ignore"),
    bucket,
    st.characters(codec="utf-8", exclude_characters="/"),
    st.integers(500, 2040),
)
#: Lines that could be forged into a channel's output, and every character a line can be broken with.
FORGED = "Verdict: keep -> kept"
_breakers = st.sampled_from(["\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"])
_invisibles = st.sampled_from(["\u200e", "\u200f", "\u061c", "\u202a", "\u202e", "\u2066", "\u2069", "\ufeff"])
forging_text = st.builds(
    lambda a, sep, b: f"{a}{sep}{FORGED}{b}", any_text, st.one_of(_breakers, _invisibles), any_text
)
hostile_text = st.one_of(field_text, forging_text)
reasons_lists = st.one_of(
    st.lists(st.one_of(st.just("held 3h12m (by Created): past warn_after 30m"), hostile_text), max_size=4),
    st.lists(any_text, min_size=40, max_size=80),  # more than any channel shows
)


@st.composite
def unreadable_notifications(draw: st.DrawFn) -> Notification:
    """An ``unreadable_lock`` notification about any item the lock model reads as an unreadable lock (the broken
    items' generator, with a future Created among them), as the sweep builds it."""
    future = lock_item_with_created(draw(lock_path), "9999-12-31T23:59:59Z")
    case_item = draw(st.one_of(broken_items().map(lambda case: case.item), st.just(future)))
    skipped = classify_item(case_item, NOW, table="tf-locks", table_arn="arn:aws:dynamodb:us-east-1:1:table/tf-locks")
    assume(isinstance(skipped, SkippedItem) and skipped.unreadable)
    assert isinstance(skipped, SkippedItem)
    return Notification.for_unreadable(
        skipped.lock_path,
        reason=skipped.reason,
        item=skipped.item,
        scope=skipped.scope,
        table=skipped.table or "tf-locks",
        rule=draw(st.one_of(st.just("defaults"), any_text)),
        seen=NOW,
        workspace=workspace_of(skipped.lock_path),
    )


def lock_item_with_created(path: str, created: str) -> dict[str, Any]:
    info = {"ID": "x", "Operation": "OperationTypeApply", "Info": "", "Who": "a@b", "Version": "1.15.5"}
    return {"LockID": {"S": path}, "Info": {"S": json.dumps({**info, "Created": created, "Path": path})}}


def notifications() -> st.SearchStrategy[Notification]:
    """Notifications of every kind: about a lock of any shape the model accepts, or an unreadable one."""
    return st.one_of(lock_notifications(), unreadable_notifications())


@st.composite
def lock_notifications(draw: st.DrawFn) -> Notification:
    """A notification of any kind about a lock of any shape the lock model accepts (hostile text in every field
    a lock-table writer controls, huge values, any ``Created``), as the sweep or the stream function builds it."""
    path = draw(st.one_of(lock_path, lock_path, long_lock_path))
    info = draw(lock_infos(path, any_created))
    if draw(st.booleans()):
        info[draw(st.sampled_from(["ID", "Who", "Operation", "Version"]))] = draw(forging_text)
    item = {"LockID": {"S": path}, "Info": {"S": _dumps(info, draw(json_style))}}
    lock = classify_item(item, None)
    assert isinstance(lock, LockRecord), lock  # the generator's promise: a shape the lock model accepts
    kind = draw(st.sampled_from(list(NotificationKind)))
    return Notification.for_lock(
        kind,
        lock,
        table=draw(st.one_of(st.just("tf-locks"), bucket)),
        age_seconds=draw(st.one_of(st.integers(0, 10**6), st.integers(-(10**12), 10**12))),
        verdict=draw(st.sampled_from(["keep", "warn", "reap"])),
        outcome=draw(st.sampled_from([*(o.value for o in Outcome), "released"])),
        reasons=draw(reasons_lists),
        rule=draw(st.one_of(st.just("rules[0] tf-state/dev/*"), any_text)),
        deleted_item=item if kind is NotificationKind.REAPED else None,
        sequence=draw(st.integers(1, 10**6)) if kind is NotificationKind.STILL_STALE else 0,
    )
