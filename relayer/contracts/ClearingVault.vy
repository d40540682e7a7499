# pragma version ~=0.4.3
"""
@title ClearingVault
@notice xmargin's clearing house on one chain: it moves a trader's cash between this
        chain's venues and the venues of other chains, so that a loss realized on one
        chain is paid from collateral held on another.
        Venues keep holding their traders' cash (the venue's books stay the one record of
        a trader's money on this chain, and a venue's solvency check stays local); the
        vault holds only the clearing reserve, funded by liquidity providers, from which
        it pays incoming settlements and into which outgoing ones flow. A settlement of
        `amount` from chain S to chain D is two transactions and moves no token across
        chains:
          on S, `debit`: the venue named by the order pays `amount` of the trader's cash
               into S's reserve, and the vault writes the order's hash into
               `receipts[order id]`;
          on D, `credit`: against a storage proof of that receipt in a final header of S,
               D's reserve pays `amount` into the trader's cash on the venue named by
               the order.
        So Σ over chains of (trader cash + venue funds + reserves) is unchanged by a
        settlement; the reserves of S and D drift apart and liquidity providers rebalance
        them.
        Trust: the debit trusts the signer threshold (a `SettlementOrder` under the
        source oracle's EIP-712 domain: the global portfolio allows it); the credit
        trusts the signers only for the source header (a `SourceHeader`: this hash is a
        final block of chain S) and believes the debit itself from the Merkle-Patricia
        proof, checked here (`mpt`), of the receipt slot of the registered source vault.
        Each side runs an order at most once: the source refuses a nonce not above the
        trader's last, the destination a credited order id. A credit equals the amount
        in the proven order hash, never more. Flow limits (CCIP token-pool lanes): a
        token bucket per remote chain and direction (an unopened lane refuses), a cap per
        order, and credits of `delay_threshold` or more wait `delay_s` in a queue the
        guardian may freeze. The guardian may halt every settlement touching a chain;
        the owner lifts it. Intents: a trader registers here the least cash to keep on a
        venue of this chain (`set_buffer`); the settlement service tops it up from the
        trader's other chains while global health stays above its floor.
@dev `receipts` is declared first so that its mapping base slot is 0: the receipt of
     order id `i` is storage slot keccak256(pad32(0) ‖ i) (Vyper's mapping layout).
"""

import mpt
from ethereum.ercs import IERC20

interface MarginOracle:
    def check_signed(struct_hash: bytes32, signatures: DynArray[Bytes[65], 32]) -> bytes32: view
    def is_paused(trader: address) -> bool: view

interface Venue:
    def settle_out(trader: address, amount: uint256): nonpayable
    def settle_in(trader: address, amount: uint256): nonpayable

struct Order:
    trader: address
    nonce: uint64        # the trader's settlement nonce: only rises
    src_chain: uint256
    src_vault: address
    src_venue: address
    dst_chain: uint256
    dst_vault: address
    dst_venue: address
    amount: uint256      # collateral token units
    expiry: uint64       # the debit is refused after this time

struct Bucket:
    capacity: uint256    # token units; 0: the lane is not open
    rate: uint256        # token units refilled per second
    level: uint256
    updated: uint256

event Debited:
    trader: indexed(address)
    order_id: indexed(bytes32)
    nonce: uint64
    dst_chain: uint256
    amount: uint256
    order_hash: bytes32

event Credited:
    trader: indexed(address)
    order_id: indexed(bytes32)
    nonce: uint64
    src_chain: uint256
    amount: uint256
    source_block: uint256

event CreditQueued:
    trader: indexed(address)
    order_id: indexed(bytes32)
    nonce: uint64
    src_chain: uint256
    amount: uint256
    release_at: uint256

event Frozen:
    order_id: indexed(bytes32)
    frozen: bool

event ChainHalted:
    chain_id: uint256
    halted: bool

event BufferSet:
    trader: indexed(address)
    venue: indexed(address)
    amount: uint256

event Provided:
    provider: indexed(address)
    amount: int256

ORDER_TYPEHASH: constant(bytes32) = keccak256(
    "SettlementOrder(address trader,uint64 nonce,uint256 srcChain,address srcVault,address srcVenue,uint256 dstChain,address dstVault,address dstVenue,uint256 amount,uint64 expiry)"
)
HEADER_TYPEHASH: constant(bytes32) = keccak256(
    "SourceHeader(uint256 chainId,uint256 number,bytes32 blockHash)"
)
OUTBOUND: constant(uint256) = 0
INBOUND: constant(uint256) = 1

receipts: public(HashMap[bytes32, bytes32])  # slot 0: order id → order hash (source side)
credited: public(HashMap[bytes32, bool])     # order id → credited (destination side)
queued_hash: public(HashMap[bytes32, bytes32])
release_at: public(HashMap[bytes32, uint256])
queued_block: HashMap[bytes32, uint256]
frozen: public(HashMap[bytes32, bool])
last_nonce: public(HashMap[address, uint64])
oracle: public(address)
token: public(address)
owner: public(address)
guardian: public(address)
reserve: public(uint256)
provided: public(HashMap[address, uint256])
is_venue: public(HashMap[address, bool])
source_vault: public(HashMap[uint256, address])  # remote chain → its registered vault
halted: public(HashMap[uint256, bool])           # chain id (this one too) → halted
order_cap: public(uint256)
delay_threshold: public(uint256)  # 0: no credit waits
delay_s: public(uint256)
lanes: public(HashMap[uint256, HashMap[uint256, Bucket]])  # remote chain → OUTBOUND/INBOUND
buffer_of: public(HashMap[address, HashMap[address, uint256]])  # trader → venue → units
debited_total: public(HashMap[uint256, uint256])   # per destination chain
credited_total: public(HashMap[uint256, uint256])  # per source chain


@deploy
def __init__(oracle: address, token: address, order_cap: uint256):
    assert oracle != empty(address) and token != empty(address), "no oracle or token"
    assert order_cap > 0, "no order cap"
    self.oracle = oracle
    self.token = token
    self.owner = msg.sender
    self.guardian = msg.sender
    self.order_cap = order_cap


@external
def register_venue(venue: address):
    assert msg.sender == self.owner, "only owner"
    self.is_venue[venue] = True
    # The venue takes incoming settlements with transferFrom.
    assert extcall IERC20(self.token).approve(venue, max_value(uint256), default_return_value=True)


@external
def register_source(chain_id: uint256, vault: address):
    """The vault of `chain_id` whose receipts this vault believes."""
    assert msg.sender == self.owner, "only owner"
    assert chain_id != chain.id and vault != empty(address), "bad source"
    self.source_vault[chain_id] = vault


@external
def open_lane(chain_id: uint256, direction: uint256, capacity: uint256, rate: uint256):
    assert msg.sender == self.owner, "only owner"
    assert direction == OUTBOUND or direction == INBOUND, "bad direction"
    self.lanes[chain_id][direction] = Bucket(capacity=capacity, rate=rate, level=capacity,
                                             updated=block.timestamp)


@external
def set_delay(threshold: uint256, delay_s: uint256):
    assert msg.sender == self.owner, "only owner"
    self.delay_threshold = threshold
    self.delay_s = delay_s


@external
def set_guardian(guardian: address):
    assert msg.sender == self.owner, "only owner"
    self.guardian = guardian


@external
def halt(chain_id: uint256):
    """Stop every settlement touching `chain_id` (a reorg past finality, providers that
    disagree): the guardian's brake."""
    assert msg.sender == self.guardian or msg.sender == self.owner, "only guardian"
    self.halted[chain_id] = True
    log ChainHalted(chain_id=chain_id, halted=True)


@external
def resume(chain_id: uint256):
    assert msg.sender == self.owner, "only owner"
    self.halted[chain_id] = False
    log ChainHalted(chain_id=chain_id, halted=False)


@external
def freeze(order_id: bytes32, frozen: bool):
    """The guardian holds a queued credit (or the owner lets it go again)."""
    if frozen:
        assert msg.sender == self.guardian or msg.sender == self.owner, "only guardian"
    else:
        assert msg.sender == self.owner, "only owner"
    self.frozen[order_id] = frozen
    log Frozen(order_id=order_id, frozen=frozen)


@external
def provide(amount: uint256):
    """A liquidity provider adds `amount` token units to the clearing reserve."""
    assert amount > 0, "zero amount"
    assert extcall IERC20(self.token).transferFrom(msg.sender, self, amount, default_return_value=True)
    self.reserve += amount
    self.provided[msg.sender] += amount
    log Provided(provider=msg.sender, amount=convert(amount, int256))


@external
def retire(amount: uint256):
    """A liquidity provider takes back up to what it provided, from the reserve."""
    assert amount > 0 and amount <= self.provided[msg.sender], "more than provided"
    assert amount <= self.reserve, "reserve short"
    self.reserve -= amount
    self.provided[msg.sender] -= amount
    assert extcall IERC20(self.token).transfer(msg.sender, amount, default_return_value=True)
    log Provided(provider=msg.sender, amount=-convert(amount, int256))


@external
def set_buffer(venue: address, amount: uint256):
    """The sender's standing intent: keep at least `amount` token units of cash on
    `venue` (a venue of this chain), topped up from the sender's other chains whenever
    the global portfolio allows (the settlement service reads it; 0 withdraws it)."""
    assert self.is_venue[venue], "not a registered venue"
    self.buffer_of[msg.sender][venue] = amount
    log BufferSet(trader=msg.sender, venue=venue, amount=amount)


@pure
@external
def order_id(trader: address, nonce: uint64) -> bytes32:
    return keccak256(abi_encode(trader, nonce))


@pure
@internal
def _order_hash(o: Order) -> bytes32:
    return keccak256(abi_encode(ORDER_TYPEHASH, o.trader, o.nonce, o.src_chain, o.src_vault,
                                o.src_venue, o.dst_chain, o.dst_vault, o.dst_venue, o.amount,
                                o.expiry))


@pure
@external
def order_hash(o: Order) -> bytes32:
    """The EIP-712 struct hash of `o`: what the receipt holds, what the signers sign
    (under the source oracle's domain)."""
    return self._order_hash(o)


@pure
@external
def header_hash(chain_id: uint256, number: uint256, block_hash: bytes32) -> bytes32:
    """The EIP-712 struct hash of a `SourceHeader` (signed under this chain's oracle)."""
    return keccak256(abi_encode(HEADER_TYPEHASH, chain_id, number, block_hash))


@internal
def _consume(chain_id: uint256, direction: uint256, amount: uint256):
    b: Bucket = self.lanes[chain_id][direction]
    assert b.capacity > 0, "lane not open"
    level: uint256 = min(b.capacity, b.level + (block.timestamp - b.updated) * b.rate)
    assert amount <= level, "rate limit"
    self.lanes[chain_id][direction] = Bucket(capacity=b.capacity, rate=b.rate,
                                             level=level - amount, updated=block.timestamp)


@external
def debit(o: Order, signatures: DynArray[Bytes[65], 32]):
    """Source side: take `o.amount` of the trader's cash on `o.src_venue` into the
    reserve and write the receipt the destination will prove."""
    assert o.src_chain == chain.id and o.src_vault == self, "order is for another chain or vault"
    assert o.dst_chain != chain.id, "order to this chain"
    assert not self.halted[chain.id] and not self.halted[o.dst_chain], "chain halted"
    assert convert(o.expiry, uint256) >= block.timestamp, "order expired"
    assert o.amount > 0 and o.amount <= self.order_cap, "amount above the order cap"
    assert o.nonce > self.last_nonce[o.trader], "nonce already used"
    assert self.is_venue[o.src_venue], "not a registered venue"
    assert not staticcall MarginOracle(self.oracle).is_paused(o.trader), "trader paused"
    h: bytes32 = self._order_hash(o)
    signed: bytes32 = staticcall MarginOracle(self.oracle).check_signed(h, signatures)
    self._consume(o.dst_chain, OUTBOUND, o.amount)
    self.last_nonce[o.trader] = o.nonce
    oid: bytes32 = keccak256(abi_encode(o.trader, o.nonce))
    self.receipts[oid] = h
    self.debited_total[o.dst_chain] += o.amount
    before: uint256 = staticcall IERC20(self.token).balanceOf(self)
    extcall Venue(o.src_venue).settle_out(o.trader, o.amount)
    assert staticcall IERC20(self.token).balanceOf(self) == before + o.amount, "venue paid short"
    self.reserve += o.amount
    log Debited(trader=o.trader, order_id=oid, nonce=o.nonce, dst_chain=o.dst_chain,
                amount=o.amount, order_hash=h)


@external
def credit(o: Order, header: Bytes[1024], header_signatures: DynArray[Bytes[65], 32],
           account_proof: DynArray[Bytes[1024], 16], storage_proof: DynArray[Bytes[1024], 16]):
    """Destination side: pay `o.amount` into the trader's cash on `o.dst_venue`, once,
    against a proof that the source vault holds this order's receipt in a final
    header of the source chain."""
    assert o.dst_chain == chain.id and o.dst_vault == self, "order is for another chain or vault"
    source: address = self.source_vault[o.src_chain]
    assert source != empty(address) and o.src_vault == source, "unregistered source vault"
    assert not self.halted[chain.id] and not self.halted[o.src_chain], "chain halted"
    assert o.amount > 0 and o.amount <= self.order_cap, "amount above the order cap"
    assert self.is_venue[o.dst_venue], "not a registered venue"
    oid: bytes32 = keccak256(abi_encode(o.trader, o.nonce))
    assert not self.credited[oid] and self.queued_hash[oid] == empty(bytes32), "order already credited"
    # The signers vouch for the header only: a final block of the source chain.
    state_root: bytes32 = empty(bytes32)
    number: uint256 = 0
    state_root, number = mpt.header_state(header)
    attested: bytes32 = staticcall MarginOracle(self.oracle).check_signed(
        keccak256(abi_encode(HEADER_TYPEHASH, o.src_chain, number, keccak256(header))),
        header_signatures)
    # The debit is believed from the proof alone.
    storage_root: bytes32 = mpt.account_storage_root(state_root, source, account_proof)
    slot: uint256 = convert(keccak256(concat(empty(bytes32), oid)), uint256)
    proven: uint256 = mpt.storage_value(storage_root, slot, storage_proof)
    h: bytes32 = self._order_hash(o)
    assert proven != 0, "no receipt for this order at the source"
    assert convert(proven, bytes32) == h, "receipt is for another order"
    self._consume(o.src_chain, INBOUND, o.amount)
    if self.delay_threshold > 0 and o.amount >= self.delay_threshold:
        self.queued_hash[oid] = h
        self.release_at[oid] = block.timestamp + self.delay_s
        self.queued_block[oid] = number
        log CreditQueued(trader=o.trader, order_id=oid, nonce=o.nonce, src_chain=o.src_chain,
                         amount=o.amount, release_at=block.timestamp + self.delay_s)
        return
    self._pay(o, oid, number)


@external
def release(o: Order):
    """Pay a queued credit once its delay has passed, unless the guardian froze it."""
    oid: bytes32 = keccak256(abi_encode(o.trader, o.nonce))
    assert self.queued_hash[oid] != empty(bytes32), "not queued"
    assert self.queued_hash[oid] == self._order_hash(o), "not the queued order"
    assert block.timestamp >= self.release_at[oid], "still in its delay"
    assert not self.frozen[oid], "frozen"
    assert not self.halted[chain.id] and not self.halted[o.src_chain], "chain halted"
    self.queued_hash[oid] = empty(bytes32)
    self._pay(o, oid, self.queued_block[oid])


@internal
def _pay(o: Order, oid: bytes32, source_block: uint256):
    assert o.amount <= self.reserve, "clearing reserve short"
    self.credited[oid] = True
    self.credited_total[o.src_chain] += o.amount
    self.reserve -= o.amount
    extcall Venue(o.dst_venue).settle_in(o.trader, o.amount)
    log Credited(trader=o.trader, order_id=oid, nonce=o.nonce, src_chain=o.src_chain,
                 amount=o.amount, source_block=source_block)
