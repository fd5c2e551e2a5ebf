"""One Settings object, built once in ``main()`` and passed down.

Sources, strongest first: keyword arguments, environment variables
``PROMPTLAB_<SECTION>__<KEY>``, the TOML file (``--config`` or ``PROMPTLAB_CONFIG``,
else ``config/promptlab.toml`` when it exists), then the embedded defaults, which need
no server and no key.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from promptlab.events.config import NatsSettings
from promptlab.learner.config import LearnerSettings, StorageSettings
from promptlab.prompts.config import PromptsSettings
from promptlab.providers.settings import ProviderSettings, default_providers, merge_providers
from promptlab.sidecar.config import ServerSettings, TelemetrySettings

ENV_PREFIX = "PROMPTLAB_"
DEFAULT_CONFIG = Path("config/promptlab.toml")


class SettingsError(Exception):
    """The configuration cannot be used; the message names the file, key and fix."""


class Settings(BaseSettings):
    """Every promptlab setting, by section. See ``config/promptlab.toml`` for the docs."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        # The docstring under each field is its description: the configuration
        # reference (docs/configuration.md) is generated from it.
        use_attribute_docstrings=True,
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    """The HTTP front door."""
    nats: NatsSettings = Field(default_factory=NatsSettings)
    """The event log."""
    storage: StorageSettings = Field(default_factory=StorageSettings)
    """The learner's SQL projection."""
    providers: dict[str, ProviderSettings] = Field(default_factory=default_providers)
    """Upstreams by name; ``openai`` and ``simulated`` exist unless overridden."""
    prompts: PromptsSettings = Field(default_factory=PromptsSettings)
    """Where prompt files live."""
    learner: LearnerSettings = Field(default_factory=LearnerSettings)
    """The continuous learner and its promotion thresholds."""
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    """OpenTelemetry traces."""

    @field_validator("providers", mode="after")
    @classmethod
    def _keep_default_providers(
        cls, value: dict[str, ProviderSettings]
    ) -> dict[str, ProviderSettings]:
        return merge_providers(value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _CONFIG_PATH.get("path")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


# The TOML path for the Settings() call in progress; pydantic-settings asks for its
# sources from a classmethod, so load_settings() hands the path over here.
_CONFIG_PATH: dict[str, Path | None] = {}


def resolve_config_path(explicit: str | os.PathLike[str] | None) -> Path | None:
    """The config file to read: ``--config``, ``$PROMPTLAB_CONFIG``, or the default if present."""
    if explicit:
        path = Path(explicit)
    elif os.environ.get("PROMPTLAB_CONFIG"):
        path = Path(os.environ["PROMPTLAB_CONFIG"])
    else:
        return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None
    if not path.is_file():
        raise SettingsError(f"{path}: config file not found")
    return path


def load_settings(config: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Build the Settings from the config file, environment and ``overrides``.

    Raises :class:`SettingsError` naming the file, the key and what is expected.
    """
    path = resolve_config_path(config)
    if path is not None:
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: not valid TOML: {exc}") from exc
    _CONFIG_PATH["path"] = path
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, path)) from None
    finally:
        _CONFIG_PATH.pop("path", None)


def _describe(exc: ValidationError, path: Path | None) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(part) for part in err["loc"]]
        key = ".".join(loc)
        env_name = ENV_PREFIX + "__".join(part.upper() for part in loc)
        origin = (
            f"environment {env_name}"
            if env_name in os.environ
            else (str(path) if path else "defaults")
        )
        got = err.get("input")
        shown = "" if err["type"] == "missing" or isinstance(got, dict) else f" (got {got!r})"
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        else:
            message = err["msg"]
        section = f"[{'.'.join(loc[:-1])}] {loc[-1]}" if len(loc) > 1 else key
        lines.append(f"{origin}: {section}: {message}{shown}")
    return "invalid configuration:\n  " + "\n  ".join(lines)
