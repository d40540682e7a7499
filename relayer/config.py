"""The node's settings tree, and its precedence, written down once:

    defaults < TOML file (``--config``) < environment (``XMARGIN__KAFKA__BOOTSTRAP=…``)
    < CLI flags

Every package receives its own part as an argument; only this module reads the
environment. A bad value raises ``ConfigError`` naming the field.
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WebsocketUrl, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from relayer.errors import ConfigError
from streams.records import Address
from streams.settings import AttestationTarget, StreamSettings

_toml_path: ContextVar[Path | None] = ContextVar("toml_path", default=None)

HttpUrl = Annotated[str, Field(pattern=r"^https?://\S+$")]


class KafkaSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    bootstrap: str = "127.0.0.1:9092"


class KeystoreSettings(BaseModel):
    """An encrypted eth-account keystore and the file holding its password."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    keystore: Path
    password_file: Path


class ChainSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(min_length=1)
    chain_id: int = Field(ge=1)
    rpc_urls: list[HttpUrl] = Field(min_length=1)
    rpc_timeout_s: float = Field(default=10.0, gt=0)
    # New heads announced over WebSocket wake the listener at once (the blocks are still
    # read and verified over the HTTP providers); polling remains the fallback.
    ws_url: WebsocketUrl | None = None
    finality_blocks: int = Field(default=2, ge=0)
    # When set, the chain's own final block (``safe`` or ``finalized``) instead.
    finality_tag: Literal["safe", "finalized"] | None = None
    poll_interval_s: float = Field(default=0.5, gt=0)
    start_block: int = Field(default=0, ge=0)
    venues: list[Address] = []          # PerpVenue-like: positions are futures
    lending_pools: list[Address] = []   # LendingPool-like: positions are supplies / debts
    option_venues: list[Address] = []   # OptionVenue-like: positions are European options
    price_feeds: dict[str, Address] = {}
    oracle: Address
    submitter: KeystoreSettings
    # A delivery not confirmed within this is re-sent with the same nonce and fees of
    # max(1.1 × the last, a fresh estimate), never above the cap.
    confirm_timeout_s: float = Field(default=60.0, gt=0)
    max_fee_cap_gwei: float = Field(default=500.0, gt=0)


class NodeSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="XMARGIN__", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    kafka: KafkaSettings = KafkaSettings()
    state_dir: Path = Path(".xmargin/state")
    chains: list[ChainSettings] = Field(min_length=1)
    signers: list[KeystoreSettings] = Field(min_length=1)
    signer_threshold: int = Field(default=1, ge=1)
    streams: StreamSettings = StreamSettings()
    submit_max_attempts: int = Field(default=8, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> NodeSettings:
        ids = [c.chain_id for c in self.chains]
        if len(set(ids)) != len(ids):
            raise ValueError("chains: two chains share a chain_id")
        if self.signer_threshold > len(self.signers):
            raise ValueError("signer_threshold: exceeds the number of signers")
        return self

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = _toml_path.get()
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        if toml is not None:
            sources += (TomlConfigSettingsSource(settings_cls, toml_file=toml),)
        return sources

    def stream_settings(self) -> StreamSettings:
        """The streams part, with one attestation target per configured chain."""
        targets = tuple(AttestationTarget(chain_id=c.chain_id, oracle=c.oracle)
                        for c in self.chains)
        return self.streams.model_copy(update={"targets": targets})

    def chain(self, chain_id: int) -> ChainSettings:
        for c in self.chains:
            if c.chain_id == chain_id:
                return c
        raise ConfigError("chains", f"unknown chain id {chain_id}")


def load_settings(path: Path | None, **overrides: Any) -> NodeSettings:
    """Load the settings with the precedence above; raise ``ConfigError`` on a bad field."""
    if path is not None and not path.is_file():
        raise ConfigError("config", f"file not found: {path}")
    token = _toml_path.set(path)
    try:
        return NodeSettings(**overrides)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        message = first["msg"].removeprefix("Value error, ")
        if ": " in message and where == "config":
            where, message = message.split(": ", 1)
        raise ConfigError(where, message) from e
    finally:
        _toml_path.reset(token)
