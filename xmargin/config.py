"""The node's settings tree, and its precedence, written down once:

    defaults < TOML file (``--config``) < environment (``XMARGIN__KAFKA__BOOTSTRAP=…``)
    < CLI flags

The tree is the relayer's part (``relayer.settings.RelayerSettings``: kafka, state_dir,
chains, …) plus ``streams`` (``streams.settings.StreamSettings``). Every package
receives its own part as an argument; only this module reads the environment. A bad
value raises ``ConfigError`` naming the field. An attester's settings
(``attester.settings.AttesterSettings``) load the same way.
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from attester.settings import AttesterSettings
from relayer.errors import ConfigError
from relayer.settings import RelayerSettings
from streams.settings import AttestationTarget, StreamSettings

_toml_path: ContextVar[Path | None] = ContextVar("toml_path", default=None)


def _sources(settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
             env_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
    toml = _toml_path.get()
    sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
    if toml is not None:
        sources += (TomlConfigSettingsSource(settings_cls, toml_file=toml),)
    return sources


class NodeSettings(RelayerSettings, BaseSettings):  # type: ignore[misc]
    model_config = SettingsConfigDict(
        env_prefix="XMARGIN__", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    streams: StreamSettings = StreamSettings()

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return _sources(settings_cls, init_settings, env_settings)

    def stream_settings(self) -> StreamSettings:
        """The streams part, with one attestation target per configured chain."""
        targets = tuple(AttestationTarget(
            chain_id=c.chain_id, oracle=c.oracle, vault=c.clearing_vault,
            settle_venue=c.venues[0] if c.clearing_vault is not None and c.venues else None)
            for c in self.chains)
        return self.streams.model_copy(update={"targets": targets})


def load_settings(path: Path | None, **overrides: Any) -> NodeSettings:
    """Load the settings with the precedence above; raise ``ConfigError`` on a bad field."""
    return _load(NodeSettings, path, **overrides)


S = TypeVar("S", bound=BaseSettings)


def _load(model: type[S], path: Path | None, **overrides: Any) -> S:
    if path is not None and not path.is_file():
        raise ConfigError("config", f"file not found: {path}")
    token = _toml_path.set(path)
    try:
        return model(**overrides)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        message = first["msg"].removeprefix("Value error, ")
        if ": " in message and where == "config":
            where, message = message.split(": ", 1)
        raise ConfigError(where, message) from e
    finally:
        _toml_path.reset(token)


class AttesterConfig(AttesterSettings, BaseSettings):  # type: ignore[misc]
    """An attester's settings with the node's precedence (``XMARGIN_ATTESTER__…``)."""

    model_config = SettingsConfigDict(
        env_prefix="XMARGIN_ATTESTER__", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return _sources(settings_cls, init_settings, env_settings)


def load_attester_settings(path: Path | None) -> AttesterConfig:
    """An attester's settings, as ``load_settings`` loads the node's."""
    return _load(AttesterConfig, path)
