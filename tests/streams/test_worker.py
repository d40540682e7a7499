"""RiskWorker over a fake table and a fake output: what a batch of books or prices
sends, in which order it stores, and when it plans a liquidation."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from engine import MarginParams
from streams.price_view import PriceView
from streams.state import TraderState
from streams.worker import RiskWorker
from tests.streams.test_state import SETTINGS, TRADER, WAD, proven
from wire.records import Attestation, ChainReorg, Liquidation, PriceUpdate, Recompute, SourceBlock


def origin(partition: int, offset: int = 0) -> Any:
    """Where a record was read (``streams.intake.At``): its partition and offset."""
    return SimpleNamespace(partition=partition, offset=offset, event=None)


class FakeTable:
    def __init__(self, log: list[str]) -> None:
        self.rows: dict[bytes, bytes] = {}
        self.log = log

    def items(self) -> list[tuple[bytes, bytes]]:
        return list(self.rows.items())

    def put(self, key: bytes, value: bytes, origin: Any) -> None:
        self.log.append("put")
        self.rows[key] = value

    async def flush(self) -> None:
        self.log.append("flush")


class FakeOutput:
    def __init__(self, log: list[str]) -> None:
        self.attestations: list[Attestation] = []
        self.liquidations: list[Liquidation] = []
        self.fanned: list[Recompute] = []
        self.log = log

    async def send(self, attestations: list[tuple[bytes, bytes]],
                   liquidations: list[tuple[bytes, bytes]],
                   settlements: Sequence[tuple[bytes, bytes]] = ()) -> None:
        self.log.append("send")
        self.attestations += [Attestation.model_validate_json(v) for _, v in attestations]
        self.liquidations += [Liquidation.model_validate_json(v) for _, v in liquidations]

    async def fan_out(self, work: Recompute) -> None:
        self.fanned.append(work)

    async def recent_attestations(self, partitions: set[int], window: int | None
                                  ) -> list[bytes]:
        # The fake's log: every attestation sent (the tests use few traders).
        sent = [a.to_bytes() for a in self.attestations]
        return sent if window is None else sent[-window:]


def price(usd: int, round_id: int, at: int = 1_700_000_000) -> PriceUpdate:
    return PriceUpdate(asset="ETH", price_wad=usd * WAD, source="41001:0x" + "ef" * 20,
                       round_id=round_id, observed_at=at, chain_id=41001, block_number=7,
                       block_hash="0x" + "11" * 32)


def worker_at(usd: int) -> tuple[RiskWorker, FakeTable, FakeOutput, list[str]]:
    log: list[str] = []
    view = PriceView(SETTINGS)
    view.apply(price(usd, 1))
    table, output = FakeTable(log), FakeOutput(log)
    return RiskWorker(SETTINGS, MarginParams(), table, output, view), table, output, log


def stored(table: FakeTable) -> TraderState:
    return TraderState.model_validate_json(table.rows[TRADER.encode()])


def test_a_new_book_is_attested_then_stored_and_a_repeat_sends_nothing() -> None:
    worker, table, output, log = worker_at(3000)
    book = proven(41001, 10, 0, 1.0)
    asyncio.run(worker.on_proven([(origin(0, offset=41), book)]))
    [attestation] = output.attestations
    assert attestation.trader == TRADER and attestation.sequence == 1
    assert attestation.book_events == (book.event_id,)
    # Every book of the trader up to the one read at offset 41 is reflected.
    assert attestation.book_offset == 41
    # The price names the oracle round it is the median of.
    [eth] = attestation.prices
    assert [(r.source, r.round_id) for r in eth.rounds] == [("41001:0x" + "ef" * 20, 1)]
    # The attestation reaches the broker before the state that names its sequence.
    assert log == ["send", "put", "flush"]
    assert stored(table).sequence == 1
    asyncio.run(worker.on_proven([(origin(0, offset=90), book)]))  # redelivered: deduped
    assert len(output.attestations) == 1 and stored(table).sequence == 1


def test_a_healthy_trader_gets_no_liquidation_plan_and_an_unhealthy_one_does() -> None:
    worker, _, output, _ = worker_at(3000)
    # 10 ETH long on $6,000 of collateral: healthy at 3,000, not at 2,800.
    asyncio.run(worker.on_proven([(origin(0), proven(41001, 10, 0, 10.0, collateral=6_000))]))
    assert output.attestations[-1].health > 1 and not output.liquidations
    asyncio.run(worker.on_recompute([(origin(0), Recompute(price=price(2800, 2, 1_700_000_100)))]))
    last = output.attestations[-1]
    assert last.health < 1
    [plan] = output.liquidations
    assert plan.sequence == last.sequence and plan.health < 1 <= plan.health_after
    assert [(leg.chain_id, leg.market) for leg in plan.legs] == [(41001, "ETH")]
    assert 0 < plan.legs[0].size_wad <= 10 * WAD


def test_one_plan_in_flight_a_lower_price_waits_for_the_books_to_show_it_executed() -> None:
    worker, table, output, _ = worker_at(3000)
    asyncio.run(worker.on_proven([(origin(0), proven(41001, 10, 0, 10.0, collateral=6_000))]))
    asyncio.run(worker.on_recompute([(origin(0), Recompute(price=price(2800, 2, 1_700_000_100)))]))
    [plan] = output.liquidations
    assert stored(table).pending_legs == plan.legs
    # The price falls again before any leg is closed: attested, and no second plan (it
    # would close again what the keeper is closing).
    asyncio.run(worker.on_recompute([(origin(0), Recompute(price=price(2700, 3, 1_700_000_200)))]))
    assert output.attestations[-1].health < 1 and len(output.liquidations) == 1
    # The book shows the leg closed (in part): the next shortfall gets its own plan.
    closed = 10.0 - (plan.legs[0].close_wad or plan.legs[0].size_wad) / WAD
    asyncio.run(worker.on_proven([(origin(0), proven(41001, 11, 0, closed, collateral=4_000))]))
    asyncio.run(worker.on_recompute([(origin(0), Recompute(price=price(2000, 4, 1_700_000_300)))]))
    assert output.attestations[-1].health < 1 and len(output.liquidations) == 2
    assert output.liquidations[1].legs[0].size_wad == int(closed * WAD)


def test_a_reorg_retracts_the_orphaned_book_and_reattests() -> None:
    worker, table, output, _ = worker_at(3000)
    kept, orphan = proven(41001, 10, 0, 1.0), proven(41001, 11, 0, 5.0)
    asyncio.run(worker.on_proven([(origin(0), kept)]))
    asyncio.run(worker.on_proven([(origin(0), orphan)]))
    assert output.attestations[-1].book_events == (orphan.event_id,)
    reorg = ChainReorg(
        chain_id=41001, common_ancestor=SourceBlock(chain_id=41001, number=10,
                                                    hash=kept.block_hash),
        orphaned=(orphan.block_hash,),
        new_head=SourceBlock(chain_id=41001, number=11, hash="0x" + "99" * 32))
    asyncio.run(worker.on_recompute([(origin(0), Recompute(reorg=reorg))]))
    assert output.attestations[-1].book_events == (kept.event_id,)
    assert stored(table).books[f"41001:{kept.venue}"].event_id == kept.event_id


def test_prices_and_reorgs_are_fanned_out_to_every_partition() -> None:
    worker, _, output, _ = worker_at(3000)
    asyncio.run(worker.on_prices([(origin(0), price(3100, 2))]))
    assert [w.price for w in output.fanned] == [price(3100, 2)]


def test_a_trader_just_above_maintenance_is_not_liquidated() -> None:
    # Maintenance margin of 10 ETH long at 3,000 does not depend on the collateral: find
    # it, then hold just 1.4% more than it.
    probe, _, probed, _ = worker_at(3000)
    asyncio.run(probe.on_proven([(origin(0), proven(41001, 10, 0, 10.0, collateral=100_000))]))
    mm_usd = probed.attestations[-1].maintenance_margin_wad / WAD
    worker, _, output, _ = worker_at(3000)
    collateral = int(mm_usd * 1.014) + 1
    asyncio.run(worker.on_proven([(origin(0), proven(41001, 10, 0, 10.0,
                                                     collateral=collateral))]))
    [attestation] = output.attestations
    assert 1.0 < attestation.health < 1.02
    assert not output.liquidations


def test_a_partition_taken_over_continues_after_the_newest_attestation_in_the_log() -> None:
    # The first worker sent its attestation and stopped before its state reached the
    # changelog: the next holder of the partition finds the attestation in the log's
    # tail and continues after it, never issuing sequence 1 again for other books.
    from streams.worker import trader_partition

    home = trader_partition(TRADER, SETTINGS.partitions)  # where Kafka puts its records
    first, _, output, _ = worker_at(3000)
    asyncio.run(first.on_proven([(origin(home, offset=1), proven(41001, 10, 0, 1.0))]))
    [attested] = output.attestations
    log: list[str] = []
    lost = FakeTable(log)  # nothing was stored
    view = PriceView(SETTINGS)
    view.apply(price(3000, 1))
    second = RiskWorker(SETTINGS, MarginParams(), lost, output, view)
    books = [(origin(home, offset=1), proven(41001, 10, 0, 1.0)),
             (origin(home, offset=2), proven(41001, 20, 0, 2.0))]
    asyncio.run(second.on_proven(books))
    again = output.attestations[-1]
    assert again.sequence == attested.sequence + 1 == 2
    assert again.book_events == (books[1][1].event_id,)
    assert stored(lost).sequence == 2 and stored(lost).last is not None
    # Replay recomputes it from the attestation before it: the state's `last` is its.
    assert stored(lost).last.equity_wad == attested.equity_wad  # type: ignore[union-attr]
