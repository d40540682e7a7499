"""The relayer's part of the node's settings (received as an argument; the tree and its
precedence are written down once, in ``xmargin.config``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WebsocketUrl, model_validator

from relayer.errors import ConfigError
from wire.records import Address

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
    # Underlying → a feed of its annualised implied volatility (a PriceFeed whose answer
    # is the volatility, e.g. 0.6 for 60%, in its decimals): published on oracle.vol.v1.
    vol_feeds: dict[str, Address] = {}
    oracle: Address
    submitter: KeystoreSettings
    # A delivery not confirmed within this is re-sent with the same nonce and fees of
    # max(1.1 × the last, a fresh estimate), never above the cap.
    confirm_timeout_s: float = Field(default=60.0, gt=0)
    max_fee_cap_gwei: float = Field(default=500.0, gt=0)
    # The keeper's own account on this chain (never the submitter's: the two would
    # replace each other's transactions by nonce). None: no keeper on this chain.
    keeper: KeystoreSettings | None = None
    # The chain's ClearingVault (cross-chain settlement) and the account that sends its
    # debits and credits (its own, for the same reason as the keeper's). None: this
    # chain does not settle.
    clearing_vault: Address | None = None
    settler: KeystoreSettings | None = None
    # The vault's guardian account (``ClearingVault.guardian``): the node's watcher
    # freezes with it a queued credit the accountant finds no debit for. None: the
    # watcher only counts (``xmargin_settlement_violations``) and logs.
    guardian: KeystoreSettings | None = None


def refuse_signer_keys(data: dict[str, Any], why: str) -> None:
    """Refuse, naming the field, a settings tree that puts signer keys where they must
    not be: more than one signer key in one process is the single point the oracle's
    M-of-N threshold exists to remove."""
    signers = data.get("signers")
    if signers is not None:
        many = isinstance(signers, list) and len(signers) > 1
        count = f"{len(signers)} signer keys in one process; " if many else ""
        raise ValueError(f"signers: {count}{why}")
    if "signer_threshold" in data:
        raise ValueError("signer_threshold: the threshold is the oracle's (read from each "
                         "chain's MarginOracle), not a setting")


class RelayerSettings(BaseModel):
    """What the listeners, the proof service and the submitters need."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kafka: KafkaSettings = KafkaSettings()
    state_dir: Path = Path(".xmargin/state")
    chains: list[ChainSettings] = Field(min_length=1)
    # A submitter waits this long per attempt for the threshold of the oracle's signers
    # to have signed (``risk.signature.v1``); each signer is its own attester process.
    signature_wait_s: float = Field(default=30.0, gt=0)
    submit_max_attempts: int = Field(default=8, ge=1)
    # Execute liquidation plans on every chain with a keeper account; off when another
    # party runs the keeper.
    keeper_enabled: bool = True
    # The node's HTTP server (metrics, status API, status page); 0: none. Loopback
    # unless a scraper on another host needs it (a container network: 0.0.0.0).
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    metrics_host: str = Field(default="127.0.0.1", min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _no_signer_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            refuse_signer_keys(data, "the node holds no signer key: each signer runs as "
                                     "its own attester (xmargin attester run)")
        return data

    @model_validator(mode="after")
    def _consistent(self) -> RelayerSettings:
        ids = [c.chain_id for c in self.chains]
        if len(set(ids)) != len(ids):
            raise ValueError("chains: two chains share a chain_id")
        for i, c in enumerate(self.chains):
            if c.keeper is not None and c.keeper.keystore == c.submitter.keystore:
                raise ValueError(f"chains.{i}.keeper: must not be the submitter's account")
        return self

    def chain(self, chain_id: int) -> ChainSettings:
        for c in self.chains:
            if c.chain_id == chain_id:
                return c
        raise ConfigError("chains", f"unknown chain id {chain_id}")
