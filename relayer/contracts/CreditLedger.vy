# pragma version ~=0.4.3
"""
@title CreditLedger
@notice One draw ledger per trader on this chain, shared by every venue registered
        with it. New risk a venue takes on for a trader (a trade that adds exposure, a
        withdrawal, a borrow, a written option) is drawn here from the free collateral
        the chain's MarginOracle attests. An attestation is computed from final blocks:
        it names the block of this chain it has seen (`source_block`), and every draw in
        or before that block is already in its figures. So what is left to draw is the
        attested free collateral less the draws made *after* that block: a newer
        attestation never forgives a draw it has not seen, and one credit line is spent
        once, whichever venue spends it.
@dev Draws are kept as cumulative checkpoints per trader, one per draw; reading walks
     back from the newest. A trader with more than MAX_UNSEEN draws after the attested
     block is refused new risk until a newer attestation arrives (fails closed).
"""

interface MarginOracle:
    def credit_of(trader: address) -> (uint256, uint64): view
    def is_paused(trader: address) -> bool: view

struct Checkpoint:
    block: uint256
    total: uint256  # every draw of the trader up to and including `block`

event VenueRegistered:
    venue: indexed(address)

event Drawn:
    trader: indexed(address)
    venue: indexed(address)
    amount: uint256
    total: uint256

MAX_UNSEEN: constant(uint256) = 64

oracle: public(address)
owner: public(address)
is_venue: public(HashMap[address, bool])
drawn_total: public(HashMap[address, uint256])
checkpoints: public(HashMap[address, HashMap[uint256, Checkpoint]])
checkpoint_count: public(HashMap[address, uint256])


@deploy
def __init__(oracle: address):
    assert oracle != empty(address), "no oracle"
    self.oracle = oracle
    self.owner = msg.sender


@external
def register(venue: address):
    assert msg.sender == self.owner, "only owner"
    self.is_venue[venue] = True
    log VenueRegistered(venue=venue)


@view
@internal
def _unseen(trader: address, source_block: uint256) -> uint256:
    """What the trader drew after `source_block`."""
    n: uint256 = self.checkpoint_count[trader]
    total: uint256 = self.drawn_total[trader]
    for i: uint256 in range(MAX_UNSEEN):
        if i == n:
            return total
        cp: Checkpoint = self.checkpoints[trader][n - 1 - i]
        if cp.block <= source_block:
            return total - cp.total
    raise "too many draws since the attestation"


@view
@internal
def _available(trader: address) -> uint256:
    free: uint256 = 0
    source: uint64 = 0
    free, source = staticcall MarginOracle(self.oracle).credit_of(trader)
    unseen: uint256 = self._unseen(trader, convert(source, uint256))
    if unseen >= free:
        return 0
    return free - unseen


@view
@external
def available(trader: address) -> uint256:
    """What the trader may still draw (USD, 18 decimals)."""
    return self._available(trader)


@view
@external
def unseen(trader: address) -> uint256:
    """What the trader drew after the block the latest attestation has seen."""
    source: uint64 = (staticcall MarginOracle(self.oracle).credit_of(trader))[1]
    return self._unseen(trader, convert(source, uint256))


@external
def draw(trader: address, amount: uint256):
    """Take `amount` (USD, 18 decimals) of the trader's credit; only a registered venue."""
    assert self.is_venue[msg.sender], "not a registered venue"
    if amount == 0:
        return
    # A watchtower paused the trader's attestations: no new risk until a threshold lifts it.
    assert not staticcall MarginOracle(self.oracle).is_paused(trader), "trader paused"
    assert amount <= self._available(trader), "insufficient free collateral"
    total: uint256 = self.drawn_total[trader] + amount
    # One checkpoint per draw, even within a block: a path that depended on the block
    # number would cost differently in a gas estimate (run at the latest block) than in
    # the block the transaction lands in.
    n: uint256 = self.checkpoint_count[trader]
    self.checkpoints[trader][n] = Checkpoint(block=block.number, total=total)
    self.checkpoint_count[trader] = n + 1
    self.drawn_total[trader] = total
    log Drawn(trader=trader, venue=msg.sender, amount=amount, total=total)
