"""All service settings, read from the environment with the ``SENTIMENT_`` prefix."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from sentiment_core.manifest import NAME_PATTERN

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = "sentiment-general"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
_BOOLEAN_WORDS = {"true": True, "1": True, "yes": True, "on": True}
_BOOLEAN_WORDS |= {"false": False, "0": False, "no": False, "off": False}
NO_MODELS_HINT = (
    "expected <models root>/<name>/<version>/manifest.json and <name>/PROMOTED naming the "
    "version to serve (sentiment-promote NAME VERSION), or set SENTIMENT_MODEL_DIR"
)
HOUR_S = 3600.0  # the most any timeout may be: beyond it, a typo (or inf) that never fires
# What a browser sends as Origin (scheme://host[:port]); CORS compares it whole.
_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://(\[[0-9a-f:.]+\]|[^\s/?#:@\[\]]+)(:\d{1,5})?$", re.I)


def read_keys_file(path: Path) -> list[str]:
    """The API keys in ``path``: one per line, blank and ``#`` lines skipped (``OSError``,
    ``UnicodeDecodeError`` as they come)."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()  # (-sig: a BOM is no key)
    return [key for key in (line.strip() for line in lines) if key and not key.startswith("#")]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SENTIMENT_", extra="ignore", allow_inf_nan=False)

    # server
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_level: str = Field("info", description=f"one of {', '.join(LOG_LEVELS)}")
    log_json: Literal["auto"] | bool = Field(
        "auto", description="JSON log lines; auto: JSON unless stderr is a terminal"
    )
    otel_telemetry: bool = Field(
        False, description="FastAPI's OpenTelemetry spans/metrics via the global OTel providers"
    )
    workers: int = Field(
        1, ge=1, le=16, description="uvicorn worker processes (each loads the model: RAM × N)"
    )
    drain_timeout_s: float = Field(
        30.0, gt=0, le=HOUR_S, description="SIGTERM: finish accepted work within"
    )
    lame_duck_s: float = Field(
        5.0,
        ge=0,
        le=600,
        description="SIGTERM: report not ready but serve on this long first, so that load "
        "balancers polling /health/ready stop sending (0 where a preStop hook does it)",
    )

    # models: each served name is <models_root>/<name>/<the version its PROMOTED file names>
    models_root: Path = PROJECT_ROOT / "models"
    models: Annotated[list[str], NoDecode] = Field(
        [], description="model names to serve (comma-separated); empty: every promoted model"
    )
    default_model: str = Field(
        DEFAULT_MODEL, description="for requests that name no model; if not served, the first"
    )
    model_dir: Path | None = Field(None, description="serve this one bundle directory alone")
    model_name: str | None = Field(None, description="serve only this model (models=[name])")
    model_variant: Literal["float", "int8"] = "float"
    # Set by sentiment-serve for its worker processes: PROMOTED read once, so that a worker
    # restarted after a crash serves the version its siblings serve.
    pinned_versions: dict[str, str] = Field({}, description="model -> version, set for workers")

    # batching and inference (defaults chosen with bench/, see docs/performance.md)
    max_batch_size: int = Field(128, ge=1, le=4096)
    max_wait_ms: float = Field(
        2.0, ge=0, le=1000, description="extra wait for company, only when busy"
    )
    queue_size: int = Field(2048, ge=1, description="texts waiting; beyond it: 503")
    request_timeout_s: float = Field(10.0, gt=0, le=HOUR_S)
    inference_workers: int = Field(2, ge=1, le=64)
    intra_op_threads: int = Field(1, ge=1, le=64)

    # speed-ups: each has a simple reference implementation beside it (off = reference);
    # docs/performance.md measures what each one buys
    fast_path: bool = Field(
        True, description="serve well-formed /predict requests outside FastAPI's routing"
    )
    python_encoder: bool = Field(
        True, description="encode in Python where provably equal; off: the Rust tokenizer only"
    )
    vocab_table: bool = Field(
        True, description="a batch request's token ids in numpy (needs python_encoder)"
    )
    encode_on_loop: bool = Field(
        True, description="encode cheap requests on the event loop; off: always in a thread"
    )
    grouped_runs: bool = Field(
        True, description="several length groups per onnxruntime call; off: one call each"
    )
    shared_arena: bool = Field(
        True,
        description="one onnxruntime memory arena for all sessions; off: one per session "
        "(sentiment-score: off unless set)",
    )
    pin_inference_threads: Literal["auto", "on", "off"] = Field(
        "auto",
        description="pin each inference thread to its own CPU; auto: when there are no more "
        "usable CPUs than inference threads and intra_op_threads is 1",
    )

    # request limits
    max_texts_per_request: int = Field(256, ge=1)
    max_text_chars: int = Field(20_000, ge=1)
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    body_timeout_s: float = Field(
        15.0,
        ge=0,
        le=HOUR_S,
        description="most seconds between two parts of a request body (else 408); 0: no limit",
    )

    # explanations (service/explain/) and the web page (service/http/ui.py)
    explain_max_tokens: int = Field(
        512, ge=1, description="POST /explain: most tokens one text may have (else 422)"
    )
    max_sentences_per_request: int = Field(
        1024, ge=1, description='/predict with "sentences": true: most sentences in one request'
    )
    ui: bool = Field(True, description="serve the web page at / (off: no page, API unchanged)")

    # security
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        [],
        description="comma-separated API keys; when set, every route but health, "
        "metrics and the docs needs one (Authorization: Bearer <key>)",
    )
    api_keys_file: Path | None = Field(
        None, description="a file of API keys, one per line; re-read when it changes"
    )
    admin_token: SecretStr | None = None  # enables POST /admin/model when set
    cors_origins: Annotated[list[str], NoDecode] = Field(
        [], description="origins allowed by CORS: a JSON list or comma-separated; empty: off"
    )

    @field_validator("model_dir", "models_root", "model_name", mode="before")
    @classmethod
    def empty_means_default(cls, value: object, info: ValidationInfo) -> object:
        # SENTIMENT_MODEL_DIR= (set but empty, as compose files often pass it) is "unset",
        # not the current directory.
        if isinstance(value, str) and not value.strip():
            return cls.model_fields[info.field_name].get_default()
        return value

    @field_validator("models", "model_name", "default_model")
    @classmethod
    def model_names(cls, value: list[str] | str | None) -> list[str] | str | None:
        # A name is a folder under the models root: ".." or "a/b" would read outside it.
        for name in value if isinstance(value, list) else [value]:
            if name is not None and not re.fullmatch(NAME_PATTERN, name):
                raise ValueError(
                    f"{name[:100]!r} is not a model name (letters, digits, '.', '_', '-', "
                    "starting with a letter or digit)"
                )
        return value

    @field_validator("cors_origins")
    @classmethod
    def origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin[:100]!r} is not an origin (scheme://host[:port] or *)")
        return value

    @field_validator("models", "api_keys", "cors_origins", mode="before")
    @classmethod
    def comma_separated(cls, value: object) -> object:
        if isinstance(value, str) and value.lstrip().startswith("["):
            return json.loads(value)  # a JSON list, as SENTIMENT_CORS_ORIGINS once required
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def known_log_level(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in LOG_LEVELS:
            return value.strip().lower()
        raise ValueError(f"{value!r} is not one of {', '.join(LOG_LEVELS)}")

    @field_validator("log_json", mode="before")
    @classmethod
    def auto_or_boolean(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        word = value.strip().lower()
        if word == "auto" or word in _BOOLEAN_WORDS:
            return "auto" if word == "auto" else _BOOLEAN_WORDS[word]
        raise ValueError(f"{value!r} is not auto, true or false")

    @field_validator("api_keys_file")
    @classmethod
    def a_file_of_keys(cls, value: Path | None) -> Path | None:
        # Missing, unreadable or empty at start is a mistake: every request would get 401.
        if value is None:
            return value
        if not value.is_file():
            raise ValueError(f"{value} is not a file")
        try:
            keys = read_keys_file(value)
        except OSError as exc:
            raise ValueError(f"{value} cannot be read ({exc.strerror})") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"{value} is not UTF-8 text (byte {exc.start})") from None
        if not keys:
            raise ValueError(f"{value} holds no keys (one per line, # for comments)")
        return value

    @model_validator(mode="after")
    def queue_holds_a_full_request(self) -> Settings:
        if self.queue_size < self.max_texts_per_request:
            raise ValueError(
                f"SENTIMENT_QUEUE_SIZE ({self.queue_size}) must be >= "
                f"SENTIMENT_MAX_TEXTS_PER_REQUEST ({self.max_texts_per_request}), or the "
                "largest requests could never be queued"
            )
        return self

    def served_models(self) -> list[str]:
        """The model names to serve from ``models_root`` (not used with ``model_dir``)."""
        from sentiment_core.bundle import promoted_models

        if self.model_name:
            return [self.model_name]
        return list(self.models) or promoted_models(self.models_root)

    def missing_bundle_paths(self) -> str | None:
        """What is configured but does not exist at all (a typo, a missing mount), or None."""
        if self.model_dir is not None:
            if not self.model_dir.exists():
                return f"SENTIMENT_MODEL_DIR {self.model_dir} does not exist"
            return self._default_not_served(self._name_in_model_dir())
        if not self.models_root.is_dir():
            return f"SENTIMENT_MODELS_ROOT {self.models_root} is not a directory"
        from sentiment_core.manifest import BundleError

        try:  # an unreadable models root stops it too: nothing in it could ever be served
            served = self.served_models()
            missing = [n for n in served if not (self.models_root / n).is_dir()]
        except (BundleError, OSError) as exc:
            return f"SENTIMENT_MODELS_ROOT: {exc}"
        if missing:
            found = sorted(p.name for p in self.models_root.iterdir() if p.is_dir())
            return (
                f"no model {', '.join(map(repr, missing))} under {self.models_root} "
                f"(models there: {', '.join(found) or 'none'})"
            )
        return self._default_not_served(served)

    def _default_not_served(self, served: list[str]) -> str | None:
        """A default model set by hand that is not among those served: a typo, which would
        otherwise send every request that names no model to another model."""
        chosen = "default_model" in self.model_fields_set
        if chosen and served and self.default_model not in served:
            return (
                f"SENTIMENT_DEFAULT_MODEL {self.default_model[:100]!r} is not served "
                f"(served: {', '.join(served)})"
            )
        return None

    def _name_in_model_dir(self) -> list[str]:
        """The name SENTIMENT_MODEL_DIR serves under, if its manifest is readable (if not,
        the bundle's own checks report it and the service is not ready)."""
        from sentiment_core.manifest import BundleError, read_manifest

        try:
            return [read_manifest(self.model_dir).name]
        except (BundleError, OSError):
            return []

    def default_of(self, names: list[str]) -> str:
        return self.default_model if self.default_model in names else names[0]

    def resolved_model_dir(self) -> Path:
        """The default model's bundle directory (``BundleError`` if there is none)."""
        from sentiment_core.bundle import promoted_bundle
        from sentiment_core.manifest import BundleError

        if self.model_dir is not None:
            return self.model_dir
        names = self.served_models()
        if not names:
            raise BundleError(f"no model bundle under {self.models_root}: {NO_MODELS_HINT}")
        return promoted_bundle(self.models_root, self.default_of(names))
