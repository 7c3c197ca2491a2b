"""The config file's schema (pydantic). Imported only when the file changed or by the CLI."""

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from costhook.config import ConfigError


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


class Dashboard(Strict):
    vault: str | None = None
    note: str = "costhook/Cost dashboard.md"
    refresh_on_session_end: bool = False


class Config(Strict):
    timezone: str | None = None
    prices: dict[str, ModelPrice] = Field(default_factory=dict)
    dashboard: Dashboard = Field(default_factory=Dashboard)


def validate_data(raw: dict, source: str = "config") -> dict:
    """Validate parsed TOML; returns JSON-safe plain data (decimals as strings)."""
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_error(exc, source)) from None
    return config.model_dump(mode="json", exclude_none=True)


def format_error(exc: ValidationError, source: str) -> str:
    problems = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        problems.append(f"{key}: {error['msg']}")
    return f"{source}: invalid config: " + "; ".join(problems)
