"""One settings object for the whole service, read from ``MIP_*`` environment variables."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

Environment = Literal["development", "test", "production"]
# The models/ folder next to app/: packages shipped with the repository (read-only).
BUNDLED_MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


# A model name or alias as a request writes it (asr.manifest's package names, uuids).
_MODEL_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")


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
    # --- every request (app.kit.guard) ---
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="request body limit of endpoints without one of their own (JSON bodies)",
    )
    body_idle_seconds: float = Field(
        default=10.0, gt=0, description="a request body silent this long is a 408"
    )
    body_min_bytes_per_second: int = Field(
        default=1024, ge=0, description="after body_idle_seconds, a slower body is a 408"
    )
    # Optional installation secret used as a bootstrap admin key by docker-compose; stored hashed.
    bootstrap_admin_key: SecretStr | None = None

    # --- the encrypted sample store ---
    sampling_rate: float = Field(
        default=0.05, ge=0, le=1, description="share of opted-in requests kept"
    )
    # HMAC key of the sampling decision. Unset: a random secret kept in
    # data_dir/keys/sampling.secret (0600), created on first run. Every replica must share it.
    sampling_secret: SecretStr | None = None
    blob_url: str | None = Field(
        default=None, description="file:///abs/dir or s3://bucket/prefix; default data_dir/blobs"
    )
    s3_endpoint_url: str | None = Field(default=None, description="MinIO or another S3 API")
    s3_region: str | None = None
    key_provider: Literal["local", "aws-kms"] = "local"
    key_file: Path | None = Field(default=None, description="default data_dir/keys/kek.json")
    kms_key_id: str | None = None
    kms_endpoint_url: str | None = None
    signing_key_file: Path | None = Field(
        default=None,
        description="Ed25519 key signing audit checkpoints, exports and compliance reports, "
        "wrapped by the key provider; default data_dir/keys/signing.json",
    )
    max_sample_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    custom_max_archive_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="the largest training-data archive a custom model takes in one request",
    )
    custom_max_active_uploads: int = Field(
        default=4,
        ge=1,
        description="training-data uploads (pairs, archives, contributions) checked at once",
    )
    custom_max_active_uploads_per_tenant: int = Field(
        default=2,
        ge=1,
        description="of those, at most this many of one reseller or organization (429 beyond)",
    )
    custom_min_hours: float = Field(
        default=10.0,
        ge=0,
        description="hours of accepted audio a custom model's confirmed data set needs before "
        "it can be trained",
    )
    max_sample_seconds: float = Field(default=3600.0, gt=0)
    worker_purge_interval_seconds: float = Field(default=3600.0, gt=0)
    worker_seal_check_interval_seconds: float = Field(
        default=3600.0, gt=0, description="how often mip worker re-hashes the sealed months"
    )
    worker_checkpoint_interval_seconds: float = Field(
        default=3600.0, gt=0, description="how often mip worker signs an audit checkpoint"
    )

    # --- the model directory (app.engine) ---
    models_dir: Path | None = Field(
        default=None, description="model packages (*.dg) served; default data_dir/models"
    )
    bundled_models_dir: Path | None = Field(
        default=BUNDLED_MODELS_DIR,
        description="read-only packages shipped with the service (empty: none)",
    )
    models_poll_seconds: float = Field(
        default=5.0, gt=0, description="how often the model directories are rescanned"
    )
    default_model: str = Field(default="general", description="the model of a request naming none")
    model_aliases: dict[str, str] = Field(
        default_factory=dict,
        description="names a request may use for an installed model, as JSON, e.g. "
        '{"nova-3": "general"}; used only when no installed model has the name itself',
    )

    # --- training jobs and model promotion (app.training) ---
    job_heartbeat_seconds: float = Field(
        default=10.0, gt=0, description="how often a worker proves it is still running a job"
    )
    job_stale_seconds: float = Field(
        default=120.0,
        gt=0,
        description="a running job whose worker has been silent this long is taken back",
    )
    job_max_attempts: int = Field(
        default=2, ge=1, le=100, description="claims of a job before a dead worker fails it"
    )
    scratch_dir: Path | None = Field(
        default=None,
        description="a running job's decrypted data (removed after); default data_dir/scratch",
    )
    tainted_model_policy: Literal["flag", "demote"] = Field(
        default="flag",
        description="a served version whose training set was tainted: flag it (audited) or "
        "also demote it to the last clean version",
    )
    promotion_max_group_regression: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="largest WER rise (0.02 = 2 points) any group may take on promotion",
    )
    promotion_min_group_utterances: int = Field(
        default=5, ge=1, description="groups with fewer test utterances are not judged"
    )

    # --- /v1/listen ---
    max_active_requests: int = Field(
        default=4, ge=1, description="concurrent transcriptions; beyond it a 429"
    )
    max_active_requests_per_org: int | None = Field(
        default=None,
        ge=1,
        description="of those, one organization's at most; default half, at least one",
    )
    listen_max_audio_bytes: int = Field(default=256 * 1024 * 1024, gt=0)
    listen_max_audio_seconds: float = Field(default=4 * 3600.0, gt=0)
    listen_url_enabled: bool = Field(default=False, description='accept JSON {"url": …} bodies')
    listen_url_timeout_seconds: float = Field(default=30.0, gt=0)
    listen_url_allow_private: bool = Field(
        default=False, description="let URL sources reach private/loopback hosts (tests only)"
    )

    @field_validator(
        "bootstrap_admin_key",
        "database_url",
        "sampling_secret",
        "blob_url",
        "s3_endpoint_url",
        "s3_region",
        "key_file",
        "signing_key_file",
        "kms_key_id",
        "kms_endpoint_url",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # docker-compose passes "${VAR:-}" as an empty string when the variable is not set.
        return None if value == "" else value

    @field_validator("model_aliases")
    @classmethod
    def _aliases_are_names(cls, value: dict[str, str]) -> dict[str, str]:
        aliases = {}
        for alias, target in value.items():
            alias, target = alias.strip().lower(), target.strip().lower()
            if not _MODEL_NAME.fullmatch(alias) or not _MODEL_NAME.fullmatch(target):
                raise ValueError(
                    f"MIP_MODEL_ALIASES: {alias!r} -> {target!r}: names are lower-case letters, "
                    "digits, '.', '_' and '-'"
                )
            if alias == target:
                raise ValueError(f"MIP_MODEL_ALIASES: {alias!r} names itself")
            aliases[alias] = target
        return aliases

    @field_validator("models_dir", "bundled_models_dir", "scratch_dir", mode="before")
    @classmethod
    def _empty_dir_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        key = self.bootstrap_admin_key
        if self.env == "production" and key is not None:
            value = key.get_secret_value()
            if len(value) < 32 or value.lower() in {"changeme", "secret", "admin"}:
                raise ValueError("MIP_BOOTSTRAP_ADMIN_KEY is a placeholder; use 32+ random chars")
        secret = self.sampling_secret
        if self.env == "production" and (secret is None or len(secret.get_secret_value()) < 32):
            # Replicas that each invent their own secret would decide differently.
            raise ValueError("MIP_SAMPLING_SECRET must be set (32+ random chars) in production")
        if self.key_provider == "aws-kms" and not self.kms_key_id:
            raise ValueError("MIP_KEY_PROVIDER=aws-kms needs MIP_KMS_KEY_ID")
        return self

    @model_validator(mode="after")
    def _stale_after_several_heartbeats(self) -> Settings:
        # A job is taken back only after its worker missed heartbeats, never between two.
        if self.job_stale_seconds <= 2 * self.job_heartbeat_seconds:
            raise ValueError("MIP_JOB_STALE_SECONDS must exceed 2 x MIP_JOB_HEARTBEAT_SECONDS")
        return self

    @property
    def effective_max_active_requests_per_org(self) -> int:
        if self.max_active_requests_per_org is not None:
            return min(self.max_active_requests_per_org, self.max_active_requests)
        return max(1, self.max_active_requests // 2)

    @property
    def effective_blob_url(self) -> str:
        if self.blob_url:
            return self.blob_url
        return (self.data_dir / "blobs").resolve().as_uri()

    @property
    def effective_key_file(self) -> Path:
        return self.key_file or self.data_dir / "keys" / "kek.json"

    @property
    def effective_signing_key_file(self) -> Path:
        return self.signing_key_file or self.data_dir / "keys" / "signing.json"

    @property
    def effective_models_dir(self) -> Path:
        return self.models_dir or self.data_dir / "models"

    @property
    def effective_scratch_dir(self) -> Path:
        return self.scratch_dir or self.data_dir / "scratch"

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
