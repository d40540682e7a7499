"""Worked case 7 on the real broker: a worker folding a price log closes its days,
and when volatility doubles overnight the margin it attests rises, buffered, by less
than 60% that day."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bus.admin import ensure_topics
from devnet.localnet import LocalNet
from streams.market_days import DAY_S
from tests.integration.test_scale_out import (
    attestations,
    produce,
    proven,
    worker,
    worker_config,
)
from tests.streams.test_market_days import calm_then_shock
from wire import topics
from wire.records import Attestation

pytestmark = pytest.mark.integration
TRADER = "0x" + "c7" * 20


def prices(updates: list) -> list[tuple[str, str, bytes]]:
    return [(topics.PRICE, u.asset, u.to_bytes()) for u in updates]


async def attested_through(broker: str, day: int, timeout_s: float) -> list[Attestation]:
    """Every attestation of the trader, once one is margined with ``day``'s closes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [a for a in await attestations(broker, 50, 3) if a.trader == TRADER]
        if any(a.risk is not None and a.risk.day == day for a in found):
            return found
    raise AssertionError(f"no attestation margined with day {day} within {timeout_s} s")


def test_case7_volatility_doubling_overnight_on_the_broker(localnet: LocalNet, broker: str,
                                                           tmp_path: Path) -> None:
    asyncio.run(ensure_topics(broker, 4))
    worker(localnet, "worker", worker_config(tmp_path, broker, "adaptive"), tmp_path / "w")
    updates = calm_then_shock(45, 0.04, 0.28)
    calm, shock, next_day = updates[:-2], updates[-2], updates[-1]
    asyncio.run(produce(broker, prices(calm)))
    book = proven(TRADER, 1, 10.0).model_copy(update={"block_timestamp": calm[0].observed_at})
    asyncio.run(produce(broker, [(topics.POSITION_PROVEN, TRADER, book.to_bytes())]))
    shock_day = shock.observed_at // DAY_S
    asyncio.run(produce(broker, prices([shock])))
    before = [a for a in asyncio.run(attested_through(broker, shock_day - 1, 120))
              if a.risk is not None and a.risk.day == shock_day - 1][-1]
    assert [p.price_wad for p in before.prices] == [shock.price_wad]
    asyncio.run(produce(broker, prices([next_day])))
    after = next(a for a in asyncio.run(attested_through(broker, shock_day, 60))
                 if a.risk is not None and a.risk.day == shock_day)
    assert [p.price_wad for p in after.prices] == [next_day.price_wad] == [shock.price_wad]
    assert after.sequence == before.sequence + 1
    range_before, range_after = before.risk.ranges[0].range, after.risk.ranges[0].range
    assert range_after > 1.5 * range_before  # σ̂ nearly doubled overnight
    rise = after.maintenance_margin_wad / before.maintenance_margin_wad
    assert 1.3 < rise <= 1.60, rise
    assert after.equity_wad == before.equity_wad  # the same book at the same price
