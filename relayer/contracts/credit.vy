# pragma version ~=0.4.3
"""
@title credit
@notice What every venue shares: the chain's CreditLedger, where new risk is drawn from
        the free collateral the MarginOracle attests (one ledger per chain, so one credit
        line is spent once whichever venue spends it); the oracle's liquidation flag; the
        collateral token, with the exact conversion between its decimals and the
        venues' 18-decimal accounting; prices from round-based feeds, refused when
        older than the market's maximum age; and the terms every liquidation is charged
        on, with the insurance fund they feed.
        Liquidation charges, both paid out of the trader's cash on the venue and together
        never more than the positive cash left there (so a liquidation never closes
        beyond the trader's bankruptcy price on this venue: charges never make cash
        negative, and a debt a close realized is the backstop's, not a charge's):
        first the caller's reward, `keeper_gas` × the transaction's gas price at the
        `gas_market` feed plus `min_keeper_reward` (Synthetix), so liquidating a small
        account still pays its gas; then the penalty, `penalty_bps` of the closed
        notional, a spread over the feed price capped at 1.5 × the venue's
        `maintenance_bps` (dYdX), `liquidator_share_bps` of it to the caller and the rest
        to the insurance fund. Both round up: they are charged to the trader.
@dev A module: a venue `initializes:` it (after its `commitment` mapping, which must
     keep base slot 0) and exports the getters it wants.
"""

from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed

interface PriceFeed:
    def latestRoundData() -> (uint80, int256, uint256, uint256, uint80): view
    def decimals() -> uint8: view

interface MarginOracle:
    def is_liquidatable(trader: address) -> bool: view

interface CreditLedger:
    def oracle() -> address: view
    def draw(trader: address, amount: uint256): nonpayable

ledger: public(address)
oracle: public(address)
token: public(address)
# 10 ** (18 - token decimals): one token unit in the venues' 18-decimal accounting.
unit_wad: public(uint256)
feeds: public(HashMap[bytes32, address])
max_price_age: public(HashMap[bytes32, uint256])  # seconds, per market
penalty_bps: public(uint256)
liquidator_share_bps: public(uint256)
maintenance_bps: public(uint256)
keeper_gas: public(uint256)         # gas a liquidation is reckoned to cost its caller
min_keeper_reward: public(uint256)  # token units
gas_market: public(bytes32)         # the market whose feed prices the chain's gas token
insurance_fund: public(uint256)

BPS: constant(uint256) = 10000
WAD: constant(uint256) = 10**18


@deploy
def __init__(ledger: address, token: address):
    assert ledger != empty(address), "no ledger"
    assert token != empty(address), "no token"
    self.ledger = ledger
    self.oracle = staticcall CreditLedger(ledger).oracle()
    self.token = token
    decimals: uint256 = convert(staticcall IERC20Detailed(token).decimals(), uint256)
    assert decimals <= 18, "token has more than 18 decimals"
    self.unit_wad = 10 ** (18 - decimals)


@internal
def set_penalty(maintenance_bps: uint256, penalty_bps: uint256, liquidator_share_bps: uint256):
    assert maintenance_bps <= BPS and liquidator_share_bps <= BPS, "bad penalty"
    assert penalty_bps * 2 <= maintenance_bps * 3, "penalty above 1.5 x maintenance"
    self.maintenance_bps = maintenance_bps
    self.penalty_bps = penalty_bps
    self.liquidator_share_bps = liquidator_share_bps


@internal
def set_keeper_reward(keeper_gas: uint256, min_keeper_reward: uint256, gas_market: bytes32):
    assert keeper_gas == 0 or self.feeds[gas_market] != empty(address), "gas market not listed"
    self.keeper_gas = keeper_gas
    self.min_keeper_reward = min_keeper_reward
    self.gas_market = gas_market


@internal
def liquidation_charges(cash: int256, notional_wad: uint256) -> (uint256, uint256, uint256):
    """
    @notice What a liquidation closing `notional_wad` (USD, 18 decimals) charges a
            trader holding `cash` (token units) here: (the caller's reward, the caller's
            share of the penalty, the insurance fund's share), token units, together at
            most max(cash, 0). Adds the insurance share to the fund; the caller is the
            venue's to pay.
    """
    left: uint256 = convert(max(cash, 0), uint256)
    reward: uint256 = self.min_keeper_reward
    if self.keeper_gas > 0:
        gas_wad: uint256 = self.ceil_div(self.keeper_gas * tx.gasprice * self.price_wad(self.gas_market), WAD)
        reward += self.units_up(gas_wad)
    reward = min(reward, left)
    penalty: uint256 = min(self.units_up(self.ceil_div(notional_wad * self.penalty_bps, BPS)),
                           left - reward)
    to_caller: uint256 = penalty * self.liquidator_share_bps // BPS
    self.insurance_fund += penalty - to_caller
    return reward, to_caller, penalty - to_caller


@internal
def list(market: bytes32, feed: address, max_age: uint256):
    assert feed != empty(address), "no feed"
    assert max_age > 0, "no maximum price age"
    self.feeds[market] = feed
    self.max_price_age[market] = max_age


@internal
def draw(trader: address, required: uint256):
    """Take `required` (USD, 18 decimals) from the trader's attested free collateral."""
    if required == 0:
        return  # reducing risk needs no credit
    extcall CreditLedger(self.ledger).draw(trader, required)


@view
@internal
def flagged(trader: address) -> bool:
    return staticcall MarginOracle(self.oracle).is_liquidatable(trader)


@view
@internal
def price_wad(market: bytes32) -> uint256:
    """The market's latest feed answer in 18 decimals; reverts when older than allowed."""
    feed: address = self.feeds[market]
    assert feed != empty(address), "unknown market"
    answer: int256 = 0
    updated_at: uint256 = 0
    _: uint80 = 0
    _s: uint256 = 0
    _a: uint80 = 0
    _, answer, _s, updated_at, _a = staticcall PriceFeed(feed).latestRoundData()
    assert answer > 0, "bad price"
    assert updated_at + self.max_price_age[market] >= block.timestamp, "stale price"
    decimals: uint8 = staticcall PriceFeed(feed).decimals()
    return convert(answer, uint256) * 10 ** (18 - convert(decimals, uint256))


@internal
def take(sender: address, amount: uint256):
    """Custody: `amount` units of the collateral token from `sender` to this venue."""
    self.take_token(self.token, sender, amount)


@internal
def pay(receiver: address, amount: uint256):
    self.pay_token(self.token, receiver, amount)


@internal
def take_token(token: address, sender: address, amount: uint256):
    """Custody of any token (a lending pool's assets too): `amount` from `sender`."""
    assert amount > 0, "zero amount"
    assert extcall IERC20(token).transferFrom(sender, self, amount, default_return_value=True), "transfer failed"


@internal
def pay_token(token: address, receiver: address, amount: uint256):
    if amount == 0:
        return
    assert extcall IERC20(token).transfer(receiver, amount, default_return_value=True), "transfer failed"


@pure
@internal
def ceil_div(a: uint256, b: uint256) -> uint256:
    """a / b rounded up: what a trader is charged or owes."""
    return (a + b - 1) // b


@pure
@internal
def floor_div(a: int256, b: int256) -> int256:
    """a / b rounded toward minus infinity (b > 0): Vyper's `//` truncates toward zero."""
    q: int256 = a // b
    if a % b != 0 and a < 0:
        q -= 1
    return q


@view
@internal
def units_down(amount_wad: int256) -> int256:
    """18-decimal USD to token units, toward minus infinity: a gain rounds down, a loss
    rounds up; either way against the trader."""
    return self.floor_div(amount_wad, convert(self.unit_wad, int256))


@view
@internal
def units_up(amount_wad: uint256) -> uint256:
    """18-decimal USD to token units, rounded up: what a trader is charged."""
    return self.ceil_div(amount_wad, self.unit_wad)
