"""Time words: zones, calendar periods, 15-minute buckets, UTC stamps, query windows.

Calls are stored with UTC times (`2026-11-18T09:00:04.120Z`); the `spend` rollup sums
them per 15-minute UTC bucket (`2026-11-18T09:00`), which every real zone's midnight
falls on; budgets and reports group them into the user's days, weeks and months.
Standard library only: the hook and the statusline use it.
"""

import os
import time

try:  # the C classes alone: datetime.py first builds its pure-Python fallback (~2 ms of the statusline)
    from _datetime import datetime, timedelta, timezone
except ImportError:
    from datetime import datetime, timedelta, timezone

UTC_NAMES = ("UTC", "Etc/UTC")
NO_TIME_BUCKET = "0000-00-00T00:00"  # the bucket of a call without a time: no date, in no window
QUARTER = timedelta(minutes=15)
CALENDAR = ("daily", "weekly", "monthly")


def local_zone(name: str | None):
    """The zone periods follow: `name` (IANA), else the machine's zone. UTC is
    `timezone.utc`, the same periods without importing zoneinfo (~5 ms on the statusline)."""
    if name in UTC_NAMES:
        return timezone.utc
    if name:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    return machine_zone()


def machine_zone():
    """The machine's zone with its rules: today's offset alone would put a summer call on
    the wrong day in winter. A zone without DST keeps its fixed offset (no zoneinfo needed);
    one with DST is `$TZ` (an IANA name), else the zone /etc/localtime links to (or holds)."""
    fixed = datetime.now().astimezone().tzinfo
    if not time.daylight:
        return fixed
    from zoneinfo import ZoneInfo

    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ValueError, OSError):  # a POSIX rule string, or an unknown name
            return fixed
    target = os.path.realpath("/etc/localtime")
    if "/zoneinfo/" in target:  # a link into the tz database names the zone
        try:
            return ZoneInfo(target.split("/zoneinfo/", 1)[1])
        except (ValueError, OSError):
            pass
    try:
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (ValueError, OSError):
        return fixed


# ------------------------------------------------------------------- stamps -------


def now_iso() -> str:
    """The current UTC time as a call time: `2026-11-18T09:00:04.120Z`."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def utc_iso(moment: datetime) -> str:
    """An aware datetime as a UTC call time on the second: `2026-11-18T09:00:00.000Z`."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


NOW_YEARS = (1000, 9000)


_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_MILLIS_FORM = b"0000-00-00T00:00:00.000Z"


def utc_millis(value: str) -> bool:
    """Whether `value` is exactly `YYYY-MM-DDTHH:MM:SS.mmmZ` (ASCII digits; no `re` here).
    (Its ASCII bytes, every digit made 0, against the form: one C pass, ~4x quicker than
    slicing out the digits; an import asks this of every line.)"""
    return len(value) == 24 and value.isascii() and value.encode().translate(_DIGITS_TO_ZERO) == _MILLIS_FORM


def utc_timestamp(value) -> str | None:
    """An ISO 8601 date-time (any offset; none means UTC) as UTC with milliseconds, the one
    form calls are stored and compared in ("2026-11-18T09:00:04.120Z", what Claude Code and
    OpenClaw write, is returned as is); None for anything else, so no odd text (a lone
    surrogate, other digits, a 3-digit year) reaches the price lookup as a date, and no
    impossible time (month 13, hour 99, February 30) reaches a view that makes a datetime
    of its bucket (`trends` and `anomalies` failed on every later run)."""
    if not isinstance(value, str) or not 19 <= len(value) <= 40 or value[4:5] != "-" or value[10:11] != "T":
        return None
    if utc_millis(value) and "01" <= value[5:7] <= "12" and "01" <= value[8:10] <= "28" \
            and value[11:13] <= "23" and value[14:16] <= "59" and value[17:19] <= "59":
        return value  # (days 29-31 are left to datetime, below: it knows the months' lengths)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    text = moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return text if utc_millis(text) else None


def parse_now(text: str | None) -> datetime:
    """`--now` for reproducible output: an ISO 8601 moment (UTC if no offset)."""
    if not text:
        return datetime.now(timezone.utc)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time") from None
    # Views step back up to 9,999 days and forward a year from it: near year 1 or 9999 that
    # leaves what datetime can hold (an OverflowError deep inside a view).
    if not NOW_YEARS[0] <= moment.year <= NOW_YEARS[1]:
        raise ValueError(f"{text!r} is not between the years {NOW_YEARS[0]} and {NOW_YEARS[1]}")
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


# ------------------------------------------------------------------- buckets ------


def bucket_of(timestamp: str | None) -> str:
    """The 15-minute UTC bucket of a call time ("2026-11-18T09:47:12Z" → "2026-11-18T09:45")."""
    if not timestamp or len(timestamp) < 16:
        return NO_TIME_BUCKET
    return f"{timestamp[:14]}{int(timestamp[14:16]) // 15 * 15:02d}"


def bucket(moment: datetime) -> str:
    """The bucket holding this UTC moment (15-minute floor)."""
    return f"{moment:%Y-%m-%dT%H}:{moment.minute // 15 * 15:02d}"


def floor_bucket(moment: datetime) -> datetime:
    """The moment, in UTC, floored to its quarter hour."""
    moment = moment.astimezone(timezone.utc)
    return moment.replace(minute=moment.minute // 15 * 15, second=0, microsecond=0)


def bucket_on_boundary(moment: datetime | None, default: str) -> str:
    """The bucket starting at `moment`, which must be on a quarter hour; `default` for None."""
    if moment is None:
        return default
    moment = moment.astimezone(timezone.utc)
    if moment.minute % 15 or moment.second or moment.microsecond:
        raise ValueError(f"{moment} is not on a 15-minute boundary")
    return moment.strftime("%Y-%m-%dT%H:%M")


def bucket_time(bucket: str) -> datetime:
    """"2026-11-18T09:45" → an aware UTC datetime (strptime is ~20× slower)."""
    return datetime(int(bucket[:4]), int(bucket[5:7]), int(bucket[8:10]), int(bucket[11:13]), int(bucket[14:16]),
                    tzinfo=timezone.utc)


# ------------------------------------------------------------------- periods ------


def period_bounds(period: str, now: datetime, tz) -> tuple[str, datetime, datetime]:
    """The calendar period (daily, weekly, monthly) holding `now` in zone `tz`:
    (key, start, end) with UTC datetimes."""
    local = now.astimezone(tz)
    day = local.date()
    if period == "daily":
        first, last, key = day, day + timedelta(days=1), day.isoformat()
    elif period == "weekly":
        first = day - timedelta(days=day.weekday())
        last = first + timedelta(days=7)
        year, week, _ = day.isocalendar()
        key = f"{year}-W{week:02d}"
    elif period == "monthly":
        first = day.replace(day=1)
        last = (first + timedelta(days=32)).replace(day=1)
        key = first.strftime("%Y-%m")
    else:
        raise ValueError(f"not a calendar period: {period}")
    start = datetime.combine(first, datetime.min.time(), tz).astimezone(timezone.utc)
    end = datetime.combine(last, datetime.min.time(), tz).astimezone(timezone.utc)
    return key, start, end


class Window:
    """The calls of a half-open UTC interval [start, end) of call times as ISO strings
    (None = unbounded), and of one agent CLI (`cli`: claude, openclaw, codex) or all."""

    __slots__ = ("start", "end", "cli")

    def __init__(self, start: str | None = None, end: str | None = None, cli: str | None = None):
        self.start = start
        self.end = end
        self.cli = cli

    def where(self) -> tuple[str, list]:
        """SQL over `requests` (its `timestamp` and `agent` columns) and its arguments."""
        clauses, args = [], []
        if self.start:
            clauses.append("timestamp >= ?")
            args.append(self.start)
        if self.end:
            clauses.append("timestamp < ?")
            args.append(self.end)
        if self.cli:
            clauses.append("agent = ?")
            args.append(self.cli)
        return (" AND ".join(clauses) or "1"), args


def dates_window(since, until, tz) -> Window:
    """Local calendar dates (inclusive; None = open) → the UTC interval they cover."""

    def midnight(day, days_after=0):
        try:
            return utc_iso(datetime.combine(day + timedelta(days=days_after), datetime.min.time(), tz))
        except OverflowError:  # `--until 9999-12-31`, `--since 0001-01-01` east of UTC: before or after
            return None        # anything datetime holds, so the window is open on that side

    return Window(start=midnight(since) if since else None, end=midnight(until, 1) if until else None)


PERIOD_NAMES = ("today", "yesterday", "week", "last-week", "month", "last-month", "7d", "30d", "90d", "all")
PERIOD_HELP = "today, yesterday, week, last-week, month, last-month, 7d, 30d, <N>d or all."


class Period:
    """A named stretch of time: `start` on a quarter hour (UTC), `end` exclusive; None =
    open (`all`; rolling periods run up to now and anything later). `cli`, when set
    (`only`), narrows it to the calls of one agent CLI: every view reads a stretch of
    calls through its window or its rollup rows, so one attribute filters them all."""

    __slots__ = ("name", "label", "start", "end", "cli")

    def __init__(self, name: str, label: str, start: datetime | None, end: datetime | None, cli: str | None = None):
        self.name, self.label, self.start, self.end, self.cli = name, label, start, end, cli

    def __repr__(self) -> str:
        return f"Period({self.name!r}, {self.label!r}, {self.start!r}, {self.end!r}, {self.cli!r})"

    def only(self, cli: str | None) -> "Period":
        """The same stretch of time, the calls of agent CLI `cli` only (None: every CLI)."""
        return Period(self.name, self.label, self.start, self.end, cli)

    def window(self) -> Window:
        return Window(start=utc_iso(self.start) if self.start else None, end=utc_iso(self.end) if self.end else None,
                      cli=self.cli)

    def buckets(self) -> tuple[str, str]:
        """[first, last) rollup buckets; calls without a time are in no period's range."""
        return bucket_on_boundary(self.start, "0000-00-00T00:01"), bucket_on_boundary(self.end, "9999")

    def to_json(self) -> dict:
        out = {
            "name": self.name,
            "label": self.label,
            "start": utc_iso(self.start) if self.start else None,
            "end": utc_iso(self.end) if self.end else None,
        }
        if self.cli:
            out["cli"] = self.cli
        return out


def this_year(now: datetime, tz) -> Period:
    """The calendar year holding `now` in zone `tz` (the dashboard's "This year")."""
    first = now.astimezone(tz).date().replace(month=1, day=1)
    start = datetime.combine(first, datetime.min.time(), tz).astimezone(timezone.utc)
    end = datetime.combine(first.replace(year=first.year + 1), datetime.min.time(), tz).astimezone(timezone.utc)
    return Period("year", f"this year ({first.year})", start, end)


def calendar_months(now: datetime, tz, count: int) -> list:
    """The `count` calendar months up to the one holding `now` in zone `tz`, oldest first;
    each Period is named by its key (`2026-11`)."""
    months, moment = [], now
    for _ in range(count):
        key, start, end = period_bounds("monthly", moment, tz)
        months.append(Period(key, key, start, end))
        moment = start - timedelta(seconds=1)
    return months[::-1]


def period(name: str, now: datetime, tz) -> Period:
    """A named period in zone `tz`: calendar ones (today, week, month, last-…) or rolling
    ones (`7d`, `30d`, any `<N>d`: the last N×24 h, from the quarter hour)."""
    if name == "all":
        return Period(name, "all time", None, None)
    count = name[:-1]
    if name.endswith("d") and 1 <= len(count) <= 4 and count.isascii() and count.isdigit():
        days = int(count)
        if days < 1:
            raise ValueError("a rolling period needs at least 1 day")
        return Period(name, f"last {days} days", floor_bucket(now) - timedelta(days=days), None)
    calendar = {"today": "daily", "yesterday": "daily", "week": "weekly", "last-week": "weekly",
                "month": "monthly", "last-month": "monthly"}
    if name not in calendar:
        raise ValueError(f"unknown period {name!r}; use one of {', '.join(PERIOD_NAMES)} or <N>d")
    kind = calendar[name]
    key, start, end = period_bounds(kind, now, tz)
    if name.startswith("last-") or name == "yesterday":
        key, start, end = period_bounds(kind, start - timedelta(seconds=1), tz)
    labels = {"today": f"today ({key})", "yesterday": f"yesterday ({key})", "week": f"this week ({key})",
              "last-week": f"last week ({key})", "month": f"this month ({key})", "last-month": f"last month ({key})"}
    return Period(name, labels[name], start, end)
