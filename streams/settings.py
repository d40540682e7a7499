"""The stream processor's part of the node configuration (received as an argument)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from wire.records import Address


class AttestationTarget(BaseModel):
    """A satellite chain whose MarginOracle receives attestations."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    chain_id: int = Field(ge=1)
    oracle: Address
    # Cross-chain settlement (``streams.settlement``): the chain's ClearingVault and the
    # venue it settles through (a PerpVenue), with that venue's collateral unit (10^(18 −
    # token decimals)) and initial margin rate, which its withdrawal hold-back uses.
    # No vault: the chain does not settle.
    vault: Address | None = None
    settle_venue: Address | None = None
    unit_wad: int = Field(default=10**12, ge=1)
    initial_margin_bps: int = Field(default=2000, ge=1, le=10_000)


class StreamSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    app_id: str = "xmargin"
    # The worker's /metrics (prometheus-client's server); 0: none. Each worker on a
    # host needs its own port.
    metrics_port: int = Field(default=9465, ge=0, le=65535)
    metrics_host: str = Field(default="127.0.0.1", min_length=1)
    data_dir: Path = Path(".xmargin/worker")
    partitions: int = Field(default=4, ge=1)
    # Tansu completes a group join after half the session timeout: keep it short locally.
    session_timeout_s: float = Field(default=6.0, gt=0)
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    # Records per producer batch are bounded by bytes (Faust's producer_max_batch_size).
    # Tansu's ListOffsets miscounts multi-record batches; bus.tansu corrects for it.
    # Table writes and attestations leave in batches of up to this many bytes: with
    # Faust's 16 KB, a burst of state writes queued behind round trips to the broker.
    producer_max_batch_bytes: int = Field(default=512 * 1024, ge=1)
    # An agent takes up to this many events at once (or what arrived within the window)
    # and margins every trader they touch in one engine call per set of markets. On the
    # worker's transport (streams.transport.driver) an event is a bundle: one partition's
    # records from one fetch.
    batch_max_records: int = Field(default=5000, ge=1)
    batch_window_s: float = Field(default=0.1, gt=0)
    # A worker freezes what each batch leaves alive out of garbage collection and
    # collects everything only this often (streams.heap): cycles wait that long. With
    # 50,000 traders a full collection took 1.9 s and found at most 38 objects in cycles
    # per 10 s of work (benchmarks/bench_streams.py cut to 100 blocks): an hour's worth
    # is a few MB, against a pause that long each time.
    gc_full_collect_s: float = Field(default=3600.0, gt=0)
    attestation_validity_s: int = Field(default=3600, ge=60)
    # An unchanged trader is re-attested once the data's clock (newest block or price
    # seen for it) comes this close to the last attestation's expiry.
    renew_before_s: int = Field(default=600, ge=0)
    change_threshold: float = Field(default=0.01, gt=0, lt=1)
    params_version: int = Field(default=1, ge=1)
    price_staleness_s: int = Field(default=3600, ge=1)
    max_price_deviation: float = Field(default=0.02, gt=0, lt=1)
    circuit_breaker_move: float = Field(default=0.10, gt=0)
    circuit_breaker_window_s: int = Field(default=900, ge=1)
    # A re-margin on a price waits this long at most for the worker's own price view to
    # fold that record (the day it closes then counts: ``streams.market_days``).
    price_view_wait_s: float = Field(default=2.0, ge=0)
    # Implied volatility per underlying without a volatility feed (chains[].vol_feeds),
    # else streams.risk.DEFAULT_IMPLIED_VOL.
    implied_vol: dict[str, Annotated[float, Field(gt=0, lt=5)]] = {}
    # A volatility round older than this is stale: the vega shocks on it widen
    # (MarginParams.stale_vol_multiplier). Fresh rounds further apart than the deviation
    # are degraded the same way.
    vol_staleness_s: int = Field(default=6 * 3600, ge=1)
    max_vol_deviation: float = Field(default=0.10, gt=0, lt=1)
    targets: tuple[AttestationTarget, ...] = ()
    # Settlement orders ride on attestations: buffers are kept only while health is at
    # least this floor (realized losses are always paid); an order may be debited for
    # `settlement_ttl_s` after it is issued, and no new order is issued for the trader
    # until `settlement_grace_s` after that (time for the credit to land and the books
    # to show it).
    settlement_health_floor: float = Field(default=1.2, gt=0)
    settlement_ttl_s: int = Field(default=600, ge=10)
    settlement_grace_s: int = Field(default=120, ge=0)

    @model_validator(mode="after")
    def _renewal_inside_validity(self) -> StreamSettings:
        if self.renew_before_s >= self.attestation_validity_s:
            raise ValueError("renew_before_s: must be shorter than attestation_validity_s")
        return self
