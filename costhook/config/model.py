"""The config file's schema (pydantic). Imported only when the file changed or by the CLI."""

import re
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from costhook.errors import ConfigError
from costhook.usage import AGENT_CLIS, NANO


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelPrice(Strict):
    """USD per million tokens (web_search: USD per request). Numbers or decimal strings."""

    input: Decimal
    output: Decimal
    cache_write_5m: Decimal | None = None
    cache_write_1h: Decimal | None = None
    cache_read: Decimal | None = None
    web_search: Decimal | None = None
    match: list[str] = Field(default_factory=list)

    @field_validator("input", "output", "cache_write_5m", "cache_write_1h", "cache_read", "web_search")
    @classmethod
    def non_negative(cls, value):
        if value is not None and (not value.is_finite() or value < 0):
            raise ValueError("must be a non-negative number")
        return value


MAX_LIMIT_USD = 10**12  # a bigger limit is a typo, and 1e999 would not quantize to nano-dollars
MAX_LIMIT_TOKENS = 10**15  # a typo too; and TOML holds only 64-bit integers (config edits write it back)
SCOPE_KINDS = ("global", "session", "project", "model", "agent", "skill", "cron", "cli", "team", "user", "machine")
TEAM_KINDS = ("team", "user", "machine")  # always the team's spend (docs/team.md, team budgets)
PERIODS = ("session", "run", "daily", "weekly", "monthly")


class Budget(Strict):
    """scope × period × limit (USD or tokens) × warn_at × action."""

    id: str | None = None
    scope: str
    period: Literal["session", "run", "daily", "weekly", "monthly"]
    limit: Decimal | None = None  # USD
    tokens: int | None = None
    warn_at: list[float] = Field(default_factory=lambda: [0.8])
    action: Literal["warn", "block"] = "warn"
    on_error: Literal["allow", "block"] = "allow"
    team: bool = False  # the whole team's spend (last pull + this machine's unpushed calls)

    @field_validator("scope")
    @classmethod
    def known_scope(cls, value: str) -> str:
        kind, _, target = value.partition(":")
        if kind not in SCOPE_KINDS:
            raise ValueError(f"unknown scope {value!r}; use one of global, session, project:<path or name>, "
                             "model:<id>, agent:<type>, skill:<name>, cron:<job>, cli:<agent CLI>, team, user:<name>, "
                             "machine:<name>")
        if kind in ("global", "session", "team") and target:
            raise ValueError(f"scope {kind!r} takes no target")
        if kind not in ("global", "session", "team") and not target.strip():
            raise ValueError(f"scope {kind!r} needs a target, e.g. {kind}:<name>")
        if kind == "cli" and target.strip() not in AGENT_CLIS:
            raise ValueError(f"unknown agent CLI {target.strip()!r} in scope {value!r}; use one of "
                             + ", ".join(f"cli:{name}" for name in AGENT_CLIS))
        return f"{kind}:{target.strip()}" if target else kind

    @field_validator("limit")
    @classmethod
    def positive_usd(cls, value):
        if value is not None and (not value.is_finite() or value <= 0):
            raise ValueError("must be a positive amount of USD")
        if value is not None and value > MAX_LIMIT_USD:
            raise ValueError(f"more than ${MAX_LIMIT_USD:,} is not a budget")
        if value is not None and value != value.quantize(Decimal("1e-9")):
            raise ValueError("at most 9 decimals (nano-dollars)")
        return value

    @field_validator("tokens")
    @classmethod
    def positive_tokens(cls, value):
        if value is not None and value <= 0:
            raise ValueError("must be a positive number of tokens")
        if value is not None and value > MAX_LIMIT_TOKENS:
            raise ValueError(f"more than {MAX_LIMIT_TOKENS:,} tokens is not a budget")
        return value

    @field_validator("warn_at")
    @classmethod
    def fractions(cls, value):
        if any(not 0 < f <= 1 for f in value):
            raise ValueError("fractions must be in (0, 1], e.g. [0.5, 0.8]")
        return sorted(set(value))

    @model_validator(mode="after")
    def one_limit(self):
        if (self.limit is None) == (self.tokens is None):
            raise ValueError("give exactly one of `limit` (USD) or `tokens`")
        if self.period == "run" and not self.scope.startswith(("cron:", "session")):
            raise ValueError("period 'run' applies to cron:<job> and session scopes")
        kind = self.scope.partition(":")[0]
        self.team = self.team or kind in TEAM_KINDS
        if self.team and (kind == "session" or self.period in ("session", "run")):
            raise ValueError("team budgets are daily, weekly or monthly (sessions stay on their machine)")
        if self.team and kind == "project" and self.scope.startswith("project:/"):
            raise ValueError("a team project budget names the project as the team sees it (paths never leave the machine)")
        if self.id is None:
            self.id = budget_id(self.period, self.scope if kind in TEAM_KINDS or not self.team else f"team-{self.scope}")
        return self


def budget_id(period: str, scope: str) -> str:
    """A readable default id, one per exact scope: "daily-global", "monthly-project-acme-api".

    Where the readable form loses something (a path, a space, capitals, another colon), a
    short hash of the exact scope follows ("monthly-project-home-dev-acme-api-5f1c9b2e"), so
    `project:/home/dev/acme-api` and `project:/home/dev/acme/api` never share an id, and
    setting one never replaces the other."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{period}-{scope}").strip("-").lower()
    kind, _, target = scope.partition(":")
    if not target or re.fullmatch(r"[a-z0-9_.-]+", target):
        return readable
    import hashlib

    return f"{readable}-{hashlib.sha256(scope.encode()).hexdigest()[:8]}"


class Notify(Strict):
    """Where fired alerts are also sent: a JSON webhook (Slack-compatible) or an apprise URL."""

    type: Literal["webhook", "apprise"]
    url: str
    timeout: float = 5.0


class Dashboard(Strict):
    vault: str | None = None
    note: str = "costhook/Cost dashboard.md"
    refresh_on_session_end: bool = False
    min_interval_seconds: float = Field(default=60, ge=0)  # SessionEnd refreshes at most this often
    cli: Literal[AGENT_CLIS] | None = None  # a note of one agent CLI's calls only (claude, openclaw, codex)


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # a user or machine name: also a folder name


class Team(Strict):
    """Beyond one machine: a shared ledger (`url`, PostgreSQL) or a sync folder (`folder`).
    The password is never here: libpq reads it from PGPASSWORD, ~/.pgpass or a service file."""

    url: str | None = None  # libpq URL or "key=value" string; COSTHOOK_TEAM_URL wins
    user: str | None = Field(default=None, pattern=NAME_PATTERN)  # default: the login name
    machine: str | None = Field(default=None, pattern=NAME_PATTERN)  # default: the host name (a folder name too)
    project_name: Literal["git-remote", "basename", "path"] = "git-remote"  # git-remote: else the basename
    folder: str | None = None
    min_interval_seconds: float = Field(default=60, ge=0)  # detached syncs after SessionEnd, at most this often

    @field_validator("url")
    @classmethod
    def no_password(cls, value):
        if value is not None:
            from urllib.parse import urlsplit

            url = value.startswith(("postgresql://", "postgres://"))
            if (url and urlsplit(value).password is not None) or "password=" in value.replace(" ", "").lower():
                raise ValueError("holds a password; put it in ~/.pgpass or PGPASSWORD, not in the config")
        return value

    @field_validator("folder")
    @classmethod
    def absolute_folder(cls, value):
        # the detached sync runs from /: a relative folder would be another folder there
        if value is not None and not value.startswith(("/", "~")):
            raise ValueError(f"the sync folder must be an absolute path or start with ~, not {value!r}")
        return value


class Config(Strict):
    timezone: str | None = None
    prices: dict[str, ModelPrice] = Field(default_factory=dict)
    budgets: list[Budget] = Field(default_factory=list)
    notify: list[Notify] = Field(default_factory=list)
    dashboard: Dashboard = Field(default_factory=Dashboard)
    team: Team = Field(default_factory=Team)

    @field_validator("timezone")
    @classmethod
    def known_zone(cls, value):
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Berlin)") from None
        return value

    @model_validator(mode="after")
    def unique_budget_ids(self):
        seen = set()
        for budget in self.budgets:
            if budget.id in seen:
                raise ValueError(f"two budgets share the id {budget.id!r}; give one an explicit `id`")
            seen.add(budget.id)
        return self


def validate_data(raw: dict, source: str = "config") -> dict:
    """Validate parsed TOML; returns JSON-safe plain data (decimals as strings)."""
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_error(exc, source)) from None
    data = config.model_dump(mode="json", exclude_none=True)
    for budget in data["budgets"]:  # the hook compares integers, never decimals
        if "limit" in budget:
            budget["limit_nanousd"] = int(Decimal(budget["limit"]) * NANO)
    return data


def format_error(exc: ValidationError, source: str) -> str:
    """The config's problems in plain words, one per wrong value: `budgets[0].limit: not a
    number: 'abc'` (never pydantic's own wording)."""
    return f"{source}: invalid config: " + "; ".join(f"{error_key(e['loc'])}: {describe(e)}" for e in exc.errors())


def error_key(loc) -> str:
    """Where a value sits in the file: `budgets[0].limit`, `prices."my-model".input`."""
    key = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            key += f"[{part}]"
        elif i > 0 and loc[i - 1] == "prices":
            key += f'."{part}"'
        else:
            key += ("." if key else "") + str(part)
    return key or "(top level)"


_NUMBER = ("decimal_parsing", "decimal_type", "float_parsing", "float_type", "finite_number")
_WHOLE = ("int_parsing", "int_type", "int_from_float")
_TABLE = ("dict_type", "model_type", "model_attributes_type")


def describe(error: dict) -> str:
    """One pydantic error as plain words with the value found (shown short and escaped)."""
    kind, ctx = error["type"], error.get("ctx") or {}
    found = _shown(error.get("input"))
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", "not a valid value")).removeprefix("Assertion failed, ")
    if kind in _NUMBER:
        return f"not a number: {found}"
    if kind in _WHOLE:
        return f"not a whole number: {found}"
    if kind in ("string_type", "string_unicode"):
        return f"not text: {found}"
    if kind in ("bool_parsing", "bool_type"):
        return f"not true or false: {found}"
    if kind == "literal_error":
        return f"{found} is not one of {ctx.get('expected', 'the allowed values')}"
    if kind == "string_pattern_mismatch":
        return f"not a name: {found} (letters, digits, '.', '_' and '-', at most 64)"
    if kind == "missing":
        return "missing"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "list_type":
        return f"not a list: {found}"
    if kind in _TABLE:
        return f"not a table: {found}"
    for bound, words in (("ge", "at least"), ("gt", "more than"), ("le", "at most"), ("lt", "less than")):
        if bound in ctx:
            limit = ctx[bound]
            return f"must be {words} {int(limit) if limit == int(limit) else limit}, not {found}"
    return f"not a valid value: {found}"


def _shown(value) -> str:
    """A value from the file in a message: repr (control characters escaped), at most 60 characters."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
