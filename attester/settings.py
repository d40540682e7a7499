"""An attester's settings (received as an argument; loaded by ``xmargin.config``).

An attester holds exactly one signer key (``signer``) and its own providers per chain,
of which ``quorum`` must agree on every answer it uses. Its ``streams`` part must be
the workers' (the same parameters margin the same books to the same bits): a
difference shows as refusals, never as a wrong signature.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from relayer.settings import HttpUrl, KafkaSettings, KeystoreSettings, refuse_signer_keys
from streams.settings import AttestationTarget, StreamSettings
from wire.records import Address


class AttesterChain(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(min_length=1)
    chain_id: int = Field(ge=1)
    # Providers of the attester's own choosing, none of them the node's if it can help:
    # ``quorum`` distinct ones must give the same answer before it is used, and failing
    # over never counts fewer.
    rpc_urls: list[HttpUrl] = Field(min_length=1)
    quorum: int = Field(default=1, ge=1)
    rpc_timeout_s: float = Field(default=10.0, gt=0)
    finality_blocks: int = Field(default=2, ge=0)
    oracle: Address
    # The chain's ClearingVault and the venue it settles through: the attester recomputes
    # and signs settlement orders, and vouches for the headers of their debits.
    clearing_vault: Address | None = None
    settle_venue: Address | None = None

    @model_validator(mode="after")
    def _quorum_reachable(self) -> AttesterChain:
        if self.quorum > len(self.rpc_urls):
            raise ValueError(f"quorum: {self.quorum} exceeds the {len(self.rpc_urls)} "
                             f"rpc_urls")
        if len(set(self.rpc_urls)) != len(self.rpc_urls):
            raise ValueError("rpc_urls: the same provider twice would count twice")
        return self


class AttesterSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kafka: KafkaSettings = KafkaSettings()
    # The epoch of the log being attested and a vanished log's incident files.
    state_dir: Path = Path(".xmargin/attester")
    signer: KeystoreSettings
    chains: list[AttesterChain] = Field(min_length=1)
    streams: StreamSettings = StreamSettings()
    # A proposal whose inputs are not all read yet (its books, prices, closes) is judged
    # again as more of the log arrives, for this long, and then refused with what is
    # missing.
    ripen_s: float = Field(default=20.0, gt=0)
    # The watchtower (``attester.watchtower``): follow each oracle's accepted
    # attestations, every ``watch_poll_s``, and pause what reached it around the
    # attesters. The signer's account pays a pause's gas: give it a little of each
    # chain's native token.
    watch: bool = True
    watch_poll_s: float = Field(default=0.2, gt=0)
    # The attester's /metrics; 0: none.
    metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_host: str = Field(default="127.0.0.1", min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _one_key(cls, data: Any) -> Any:
        if isinstance(data, dict):
            refuse_signer_keys(data, "an attester holds exactly one signer key (`signer`); "
                                     "run one attester per key")
        return data

    @model_validator(mode="after")
    def _distinct_chains(self) -> AttesterSettings:
        ids = [c.chain_id for c in self.chains]
        if len(set(ids)) != len(ids):
            raise ValueError("chains: two chains share a chain_id")
        return self

    def stream_settings(self) -> StreamSettings:
        """The workers' streams part, with the attestation targets the chains name."""
        targets = tuple(AttestationTarget(chain_id=c.chain_id, oracle=c.oracle,
                                          vault=c.clearing_vault, settle_venue=c.settle_venue)
                        for c in self.chains)
        return self.streams.model_copy(update={"targets": targets})

    def chain(self, chain_id: int) -> AttesterChain | None:
        return next((c for c in self.chains if c.chain_id == chain_id), None)
