"""Record schemas of every topic: pydantic v2, frozen, ``extra="forbid"``.

Amounts are integers with 18 decimals (``*_wad``) so that what is attested, hashed and
replayed is exact; hashes and addresses are 0x-hex strings as on the wire of JSON-RPC.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from wire.eip712 import settlement_order_struct_hash

HexStr = Annotated[str, Field(pattern=r"^0x([0-9a-f]{2})*$")]
Hash32 = Annotated[str, Field(pattern=r"^0x[0-9a-f]{64}$")]
Address = Annotated[str, Field(pattern=r"^0x[0-9a-f]{40}$")]
NonNegative = Annotated[int, Field(ge=0)]


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


R = TypeVar("R", bound=Record)


class RecordError(ValueError):
    """A record could not be decoded; ``reason`` is what goes to the dead-letter topic,
    ``kind`` what sort of refusal it was: ``empty``, ``malformed`` (not JSON) or
    ``schema`` (JSON that is not the record)."""

    def __init__(self, reason: str, kind: str = "schema") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


def decode(model: type[R], raw: bytes | None) -> R:
    """Parse raw topic bytes into ``model``, or raise ``RecordError`` with a one-line reason."""
    if raw is None:
        raise RecordError("empty value", "empty")
    try:
        return model.model_validate_json(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        raise RecordError(f"{model.__name__}: {where}: {first['msg']} "
                          f"({e.error_count()} error(s))",
                          "malformed" if first["type"] == "json_invalid" else "schema") from e


class BlockHeaderRecord(Record):
    chain_id: NonNegative
    number: NonNegative
    hash: Hash32
    parent_hash: Hash32
    state_root: Hash32
    timestamp: NonNegative
    header_rlp: HexStr


class Position(Record):
    """One leg as its venue committed it. ``perp``: a perpetual future, ``size_wad`` signed
    contracts, valued by its P&L against ``entry_price_wad``. ``lending``: a balance in a
    lending pool, supplied (> 0, an asset held) or borrowed (< 0, a debt), valued whole.
    ``call`` / ``put``: European options, ``size_wad`` signed contracts (< 0 written),
    ``strike_wad`` and ``expiry`` (unix seconds), ``entry_price_wad`` the premium."""

    market: str = Field(min_length=1, max_length=32)
    size_wad: int
    entry_price_wad: NonNegative
    kind: Literal["perp", "lending", "call", "put"] = "perp"
    strike_wad: NonNegative = 0
    expiry: NonNegative = 0


class VenueBlock(Record):
    """Whose book, on which venue, at which block: the fields every book record opens
    with (in this order on the wire)."""

    event_id: str  # chain_id:block_hash:log_index
    chain_id: NonNegative
    venue: Address
    trader: Address
    block_number: NonNegative
    block_hash: Hash32
    block_timestamp: NonNegative


class PositionEvent(VenueBlock):
    log_index: NonNegative
    collateral_wad: int  # the trader's cash on the venue, 18 decimals (< 0: a debt)
    positions: tuple[Position, ...]
    commitment: Hash32
    # A later event of the same trader on the same venue in the same block: the storage
    # word at this block holds that later state, so this one is not proven on its own.
    superseded_in_block: bool = False


class BookHead(VenueBlock):
    """A trader's whole book on one venue at one block: what margining needs of it (and
    all a trader's state keeps)."""

    collateral_wad: int
    positions: tuple[Position, ...]

    def head(self) -> BookHead:
        return self


class ProvenBook(BookHead):
    """The book with the proof that was verified: the storage word ``commitment`` at
    ``storage_slot`` of the venue, under ``state_root``."""

    state_root: Hash32
    commitment: Hash32
    account_proof: tuple[HexStr, ...]
    storage_slot: Hash32
    storage_proof: tuple[HexStr, ...]

    def head(self) -> BookHead:
        # Validated when it was decoded: copy the fields as they are.
        return BookHead.model_construct(
            **{name: getattr(self, name) for name in BookHead.model_fields})


class PriceUpdate(Record):
    """One round of an on-chain feed. On ``oracle.price.v1`` ``price_wad`` is the asset's
    USD price; on ``oracle.vol.v1`` the underlying's annualised implied volatility
    (0.6 · 10¹⁸ for 60%), from a volatility feed (a DVOL-like index) of the same shape."""

    asset: str = Field(min_length=1, max_length=32)
    price_wad: Annotated[int, Field(gt=0)]
    source: str
    round_id: NonNegative
    observed_at: NonNegative  # unix seconds, from the feed's updatedAt
    chain_id: NonNegative
    block_number: NonNegative
    block_hash: Hash32


class SourceBlock(Record):
    chain_id: NonNegative
    number: NonNegative
    hash: Hash32


class ChainReorg(Record):
    """Blocks of a chain that are no longer canonical: everything proven in them is retracted."""

    chain_id: NonNegative
    common_ancestor: SourceBlock
    orphaned: tuple[Hash32, ...] = Field(min_length=1)
    new_head: SourceBlock


class Recompute(Record):
    """Internal fan-out to every trader partition: a price change, an implied volatility
    change (``vol``) or a reorg."""

    price: PriceUpdate | None = None
    reorg: ChainReorg | None = None
    vol: PriceUpdate | None = None


class ChainCredit(Record):
    """What one chain's MarginOracle receives: its credit line, the newest block of that
    chain the figures have seen (its CreditLedger counts only draws after it), and its
    EIP-712 digest."""

    chain_id: NonNegative
    oracle: Address
    free_collateral_wad: NonNegative
    source_block: NonNegative = 0
    digest: Hash32


class QuoteRef(Record):
    """One oracle round, as ``oracle.price.v1`` carries it (``PriceUpdate``)."""

    source: str
    round_id: NonNegative


class AttestedPrice(Record):
    """A price an attestation was computed with (the oracle median, and whether degraded),
    and the rounds it is the median of, so that an auditor finds them in the log."""

    asset: str
    price_wad: Annotated[int, Field(gt=0)]
    observed_at: NonNegative
    degraded: bool
    breaker: bool = False
    rounds: tuple[QuoteRef, ...] = ()


class ScanRange(Record):
    asset: str
    range: Annotated[float, Field(gt=0, lt=1)]


class PairCorrelation(Record):
    a: str
    b: str
    rho: Annotated[float, Field(ge=-1, le=1)]


class RiskBasis(Record):
    """The adaptive model an attestation was margined with (``streams.market_days``):
    the newest UTC day (unix day number) whose closes are in, and that day's scan range
    per market held and correlation per pair, so that an auditor derives them from the
    price log again."""

    day: NonNegative
    ranges: tuple[ScanRange, ...]
    correlations: tuple[PairCorrelation, ...] = ()


class SettlementOrder(Record):
    """Cash to move for one trader from a venue on one chain to a venue on another
    (collateral token units), run by the two chains' ClearingVaults: a debit on the
    source against the signer threshold, a credit on the destination against a storage
    proof of the debit's receipt. ``nonce`` is the trader's settlement nonce: it only
    rises, and a re-issue after a reorg keeps it, so at most one debit of it ever
    stands."""

    trader: Address
    nonce: Annotated[int, Field(gt=0, lt=2**64)]
    src_chain: NonNegative
    src_vault: Address
    src_venue: Address
    dst_chain: NonNegative
    dst_vault: Address
    dst_venue: Address
    amount: Annotated[int, Field(gt=0)]
    expiry: Annotated[int, Field(ge=0, lt=2**64)]
    reason: str = ""  # why: "realized loss" or "buffer" (not signed)
    sequence: NonNegative = 0  # the attestation it rode on, whose verdicts sign it (not signed)

    @model_validator(mode="after")
    def _two_chains(self) -> SettlementOrder:
        if self.src_chain == self.dst_chain:
            raise ValueError("dst_chain: a settlement moves cash between two chains")
        return self

    def struct_hash(self) -> bytes:
        return settlement_order_struct_hash(
            trader=bytes.fromhex(self.trader[2:]), nonce=self.nonce, src_chain=self.src_chain,
            src_vault=bytes.fromhex(self.src_vault[2:]),
            src_venue=bytes.fromhex(self.src_venue[2:]),
            dst_chain=self.dst_chain, dst_vault=bytes.fromhex(self.dst_vault[2:]),
            dst_venue=bytes.fromhex(self.dst_venue[2:]), amount=self.amount, expiry=self.expiry)


class Attestation(Record):
    """Signed figures for one trader, with the exact inputs they were computed from
    (``book_events`` and ``prices``) so that an auditor can recompute them."""

    trader: Address
    sequence: Annotated[int, Field(gt=0)]
    equity_wad: int
    maintenance_margin_wad: NonNegative
    initial_margin_wad: NonNegative
    health: float
    isolated_margin_wad: NonNegative
    params_version: NonNegative
    source_blocks: tuple[SourceBlock, ...]
    source_blocks_hash: Hash32
    issued_at: NonNegative
    valid_until: NonNegative
    chains: tuple[ChainCredit, ...]
    book_events: tuple[str, ...] = ()
    prices: tuple[AttestedPrice, ...] = ()
    # The offset on venue.position_proven.v1 (the trader's partition) of the newest book
    # folded into the state this was computed from: every book of the trader at or below
    # it is reflected (-1: none). An auditor checks no newer book was left out.
    book_offset: int = Field(default=-1, ge=-1)
    # None: margined with the static ranges and the default correlation (no asset held
    # had enough daily closes in the log yet).
    risk: RiskBasis | None = None
    # The implied volatilities it was margined with, per underlying that has a
    # volatility feed (``price_wad`` the volatility, the rounds of oracle.vol.v1); an
    # underlying without one used the configured ``streams.implied_vol``.
    vols: tuple[AttestedPrice, ...] = ()
    # Cross-chain settlement orders computed from the same state (``streams.settlement``),
    # signed by the attesters with the attestation; the trader's newest settlement nonce
    # after them; and until when (data clock) orders are in flight, no new one issued.
    settlements: tuple[SettlementOrder, ...] = ()
    settlement_nonce: NonNegative = 0
    settling_until: NonNegative = 0


class ChainSignature(Record):
    """An attester's EIP-712 signature (65 bytes r ‖ s ‖ v) over one chain's digest."""

    chain_id: NonNegative
    digest: Hash32
    signature: Annotated[str, Field(pattern=r"^0x[0-9a-f]{130}$")]


class Verdict(Record):
    """One attester's answer to a proposed attestation (trader, sequence): a signature
    per chain credit it reproduced byte for byte, or, with ``refused`` set, none and
    the differences its own recomputation found."""

    trader: Address
    sequence: Annotated[int, Field(gt=0)]
    attester: Address
    signatures: tuple[ChainSignature, ...] = ()
    refused: tuple[str, ...] = ()
    # The attester's signature over ``wire.eip712.refusal_digest``: a refusal is its own
    # as a signature is (anyone may write to the topic).
    refusal_signature: Annotated[str, Field(pattern=r"^(0x[0-9a-f]{130})?$")] = ""
    decided_at: NonNegative = 0  # unix seconds, the attester's clock

    @model_validator(mode="after")
    def _signed_or_refused(self) -> Verdict:
        if bool(self.signatures) == bool(self.refused):
            raise ValueError("a verdict carries signatures or refusals, exactly one of the two")
        if bool(self.refused) != bool(self.refusal_signature):
            raise ValueError("refusal_signature: a refusal, and only a refusal, is signed")
        return self


DeliveryStatus = Literal["delivered", "retrying", "dropped", "dead_lettered"]


class LiquidationLeg(Record):
    """One position to close: where, which (an option names its series), as the venue
    held it when the plan was made, and how much of it to close."""

    chain_id: NonNegative
    venue: Address
    market: str
    size_wad: int  # the position as held (signed): a keeper closes nothing if it changed
    kind: Literal["perp", "lending", "call", "put"] = "perp"
    strike_wad: NonNegative = 0
    expiry: NonNegative = 0
    close_wad: NonNegative | None = None  # how much to close (unsigned); None: all of it

    @property
    def to_close_wad(self) -> int:
        return abs(self.size_wad) if self.close_wad is None else min(self.close_wad,
                                                                     abs(self.size_wad))

    @property
    def leg_id(self) -> str:
        """venue:market, and the series of an option."""
        if self.kind in ("call", "put"):
            return f"{self.venue}:{self.market}:{self.kind}:{self.strike_wad}:{self.expiry}"
        return f"{self.venue}:{self.market}"


class Liquidation(Record):
    """Legs to close, across venues, to bring an unhealthy trader back to health."""

    trader: Address
    sequence: Annotated[int, Field(gt=0)]  # the attestation that found health < 1
    health: float
    health_after: float
    legs: tuple[LiquidationLeg, ...]
    reason: str


class Delivery(Record):
    """What became of an attestation on one chain, or (``leg`` set) of one leg of a
    liquidation plan."""

    trader: Address
    sequence: Annotated[int, Field(gt=0)]
    chain_id: NonNegative
    status: DeliveryStatus
    reason: str = ""
    tx_hash: Hash32 | None = None
    leg: str = ""  # LiquidationLeg.leg_id for a liquidation


class HeaderVouch(Record):
    """One attester's word that ``block_hash`` is the final block ``number`` of
    ``src_chain``, the block holding a settlement order's debit: its signature over the
    destination oracle's ``SourceHeader`` digest (``wire.eip712.source_header_digest``)."""

    order_id: Hash32
    trader: Address
    nonce: Annotated[int, Field(gt=0)]
    src_chain: NonNegative
    dst_chain: NonNegative
    number: NonNegative
    block_hash: Hash32
    attester: Address
    signature: Annotated[str, Field(pattern=r"^0x[0-9a-f]{130}$")]


class DeadLetter(Record):
    """A refused record: where it came from, its raw bytes (hex) and why."""

    source_topic: str
    partition: NonNegative | None = None  # None: refused before it reached a topic
    offset: NonNegative | None = None
    key_hex: str
    value_hex: str
    reason: str

    @classmethod
    def refused(cls, topic: str, key: bytes | None, value: bytes | None, reason: str,
                partition: int | None = None, offset: int | None = None) -> DeadLetter:
        """The dead letter of a record refused for ``topic``, its raw bytes kept."""
        return cls(source_topic=topic, partition=partition, offset=offset,
                   key_hex=(key or b"").hex(), value_hex=(value or b"").hex(), reason=reason)
