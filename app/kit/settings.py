"""One settings object for the whole service, read from ``MIP_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

Environment = Literal["development", "test", "production"]


class Settings(BaseSettings):
    """Effective configuration. ``mip config show`` prints it with secrets masked."""

    model_config = SettingsConfigDict(env_prefix="MIP_", extra="ignore")

    env: Environment = "development"
    data_dir: Path = Field(default=Path("var"), description="SQLite file, blobs and local keys")
    database_url: str | None = Field(default=None, description="default: SQLite in data_dir")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    max_batch_events: int = Field(default=10_000, ge=1, le=100_000)
    # Optional installation secret used as a bootstrap admin key by docker-compose; stored hashed.
    bootstrap_admin_key: SecretStr | None = None

    @field_validator("bootstrap_admin_key", "database_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # docker-compose passes "${VAR:-}" as an empty string when the variable is not set.
        return None if value == "" else value

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        key = self.bootstrap_admin_key
        if self.env == "production" and key is not None:
            value = key.get_secret_value()
            if len(value) < 32 or value.lower() in {"changeme", "secret", "admin"}:
                raise ValueError("MIP_BOOTSTRAP_ADMIN_KEY is a placeholder; use 32+ random chars")
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'mip.sqlite3').resolve()}"

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain values, every secret replaced by ``***``."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                out[name] = "***" if value.get_secret_value() else ""
            elif isinstance(value, Path):
                out[name] = str(value)
            else:
                out[name] = value
        url = make_url(self.effective_database_url)
        out["database_url"] = url.render_as_string(hide_password=True)
        return out


@lru_cache
def get_settings() -> Settings:
    return Settings()
