"""The whole path on real parts: Tansu, two anvil chains, the node and its Faust worker.

Garbage first (dead-lettered, nothing stops), then the hedged trader: the attestation
read back from MarginOracle on both chains nets the two legs.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from web3 import HTTPProvider, Web3
from web3.exceptions import ContractLogicError

from bus.admin import ensure_topics
from devnet.deploy import anvil_account
from devnet.hedge import (
    KEEPER_ACCOUNT,
    Network,
    buy_option,
    deposit,
    open_positions,
    read_price,
    run_hedge,
    set_price,
    setup_network,
    start_attesters,
    supply,
    trade,
    wait_for_attestation,
    wait_for_credit,
    wait_for_netted_attestation,
    wait_for_oracles,
    withdraw,
)
from devnet.localnet import LocalNet
from devnet.shock import run_shock, venue_view
from relayer.metrics import provider_label
from tests.support.browser import render
from tests.support.credit import new_account
from tests.support.metrics import scrape
from wire import topics
from wire.records import DeadLetter, Delivery, Liquidation, decode

pytestmark = pytest.mark.integration
WAD = 10**18
USDC = 10**6
TRADER = anvil_account(2).address.lower()
GARBAGE = {
    topics.POSITION_PROVEN: (TRADER.encode(), b"\x00\xffnot json at all"),
    topics.PRICE: (b"ETH", b'{"asset": "ETH", "price_wad": -5}'),
    topics.POSITION_EVENT: (TRADER.encode(), b"{}"),
    topics.ATTESTATION: (TRADER.encode(), b'{"trader": "nope"}'),
}


@pytest.fixture(scope="module")
def node(localnet: LocalNet, broker: str, chain_urls: list[str],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Network, subprocess.Popen]]:
    run_dir = tmp_path_factory.mktemp("node")
    network = setup_network(run_dir, broker, chain_urls, prices={"ETH": 3000})
    asyncio.run(ensure_topics(broker, 4))
    start_attesters(localnet, network)
    proc = localnet.start("node", [sys.executable, "-m", "xmargin.cli", "node", "run",
                                   "--config", str(network.config_path)])
    yield network, proc
    localnet.stop("node")


async def produce(bootstrap: str, records: dict[str, tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for topic, (key, value) in records.items():
            await producer.send_and_wait(topic, key=key, value=value)
    finally:
        await producer.stop()


async def dead_letters(bootstrap: str, topic: str, timeout_s: float) -> list[DeadLetter]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=None)
    await consumer.start()
    found: list[DeadLetter] = []
    deadline = time.monotonic() + timeout_s
    try:
        while not found and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                found += [DeadLetter.model_validate_json(m.value) for m in messages]
    finally:
        await consumer.stop()
    return found


async def record_at(bootstrap: str, topic: str, partition: int, offset: int) -> bytes | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        message = await asyncio.wait_for(consumer.getone(), 30.0)
        return message.value if message.offset == offset else None
    finally:
        await consumer.stop()


def test_garbage_is_dead_lettered_with_its_reason(node: tuple[Network, subprocess.Popen]) -> None:
    network, proc = node
    asyncio.run(produce(network.bootstrap, GARBAGE))
    for topic, (_, value) in GARBAGE.items():
        letters = asyncio.run(dead_letters(network.bootstrap, topics.dead_letter(topic), 60.0))
        assert letters, f"nothing on {topics.dead_letter(topic)}"
        assert letters[0].source_topic == topic
        assert bytes.fromhex(letters[0].value_hex) == value
        assert letters[0].reason
        # Where it was on its topic (the agents read bundles of records: this is the
        # garbage record's own offset, not its bundle's).
        assert letters[0].partition is not None and letters[0].offset is not None
        assert asyncio.run(record_at(network.bootstrap, topic, letters[0].partition,
                                     letters[0].offset)) == value
    assert proc.poll() is None, "the node stopped after bad input"


def test_hedged_trader_is_attested_on_both_chains(node: tuple[Network, subprocess.Popen]) -> None:
    network, proc = node
    summary = run_hedge(network, timeout_s=120.0)
    chains = summary["chains"]
    assert {c["chain_id"] for c in chains} == {d.chain_id for d in network.deployments}
    # 10 ETH long on A, 10 ETH short on B at $3,000: each leg alone margins at
    # 16% scan + 2% net delta + 0.06% funding = $5,418; together only the 1% hedged
    # charge and the funding provision on both legs, $300 + $36.
    assert summary["sum_isolated_maintenance_margin_usd"] == pytest.approx(10_836.0)
    for c in chains:
        assert c["sequence"] == summary["attestation_sequence"]
        assert c["maintenance_margin_usd"] == pytest.approx(336.0)
        assert c["initial_margin_usd"] == pytest.approx(420.0)
        assert c["equity_usd"] == pytest.approx(20_000.0)
        # Free collateral (equity − IM) is split into equal per-chain credit lines.
        assert c["free_collateral_usd"] == pytest.approx((20_000.0 - 420.0) / 2)
        assert c["oracle_free_collateral_view_usd"] == pytest.approx(c["free_collateral_usd"])
    assert proc.poll() is None



def test_price_move_alone_re_attests_on_both_chains(node: tuple[Network, subprocess.Popen]) -> None:
    network, _ = node
    trader = anvil_account(3)
    address = trader.address.lower()
    chain_a = network.deployments[0]
    # $20k: the venue draws 20% of the 10 ETH notional from this chain's half of the credit.
    block = open_positions(chain_a, trader, "ETH", collateral_usd=20_000, size=10.0)
    first = asyncio.run(wait_for_netted_attestation(network.bootstrap, address,
                                                    {chain_a.chain_id: block}, 120.0))
    assert first.equity_wad == 20_000 * WAD
    # −10% on both chains' feeds: no trade, no new proven book. (While only one feed has
    # moved, the two sources disagree: the median is degraded and only a less healthy
    # attestation may go out.)
    for deployment in network.deployments:
        set_price(deployment, "ETH", 2_700.0)
    later = asyncio.run(wait_for_attestation(
        network.bootstrap,
        lambda a: a.trader == address and a.sequence > first.sequence
        and a.equity_wad == 17_000 * WAD,
        120.0, "at the new price"))
    assert later.maintenance_margin_wad < first.maintenance_margin_wad  # smaller notional
    for reading in wait_for_oracles(network.deployments, address, later.sequence, 120.0):
        assert reading["equity_usd"] == pytest.approx(17_000.0)


def test_an_option_is_margined_with_the_volatility_feeds_of_both_chains(
        node: tuple[Network, subprocess.Popen]) -> None:
    # Each chain has an ETH implied volatility feed (60%); the listeners publish their
    # rounds on oracle.vol.v1 and the worker margins the call with their median.
    network, _ = node
    chain_a = network.deployments[0]
    trader = new_account(Web3(HTTPProvider(chain_a.rpc_url)))
    bought = buy_option(chain_a, trader, "ETH", 3_200, 30, 2.0, 60, 1_000)
    att = asyncio.run(wait_for_netted_attestation(
        network.bootstrap, trader.address.lower(), {chain_a.chain_id: bought}, 120.0))
    [vol] = att.vols
    assert (vol.asset, vol.price_wad, vol.degraded) == ("ETH", 6 * WAD // 10, False)
    assert sorted(r.source for r in vol.rounds) == sorted(
        f"{d.chain_id}:{d.vol_feeds['ETH']}" for d in network.deployments)
    # Cash after the premium, plus the two calls valued at the feeds' 60% (Black-76,
    # 30 days less the seconds since the quote, at the attested price).
    from engine.pricing import black76

    [price] = att.prices
    value = 2 * float(black76(np.array([True]), np.array([price.price_wad / WAD]),
                              np.array([3_200.0]), np.array([30 / 365]), np.array([0.6]))[0])
    options = (att.equity_wad - (1_000 - 120) * WAD) / WAD
    assert options == pytest.approx(value, rel=0.01)


def test_replay_reproduces_every_attestation_digest(node: tuple[Network, subprocess.Popen],
                                                   tmp_path: Path) -> None:
    network, _ = node
    # Its own inputs, whatever ran before it: a deposit attested, and one garbage record.
    own = anvil_account(5)
    deposit(network.deployments[0], own, 2_000)
    asyncio.run(wait_for_attestation(network.bootstrap,
                                     lambda a: a.trader == own.address.lower(), 120.0,
                                     "for the replayed deposit"))
    asyncio.run(produce(network.bootstrap, {topics.ATTESTATION: GARBAGE[topics.ATTESTATION]}))
    base = [sys.executable, "-m", "xmargin.cli", "replay", "--config", str(network.config_path)]
    live = subprocess.run([*base, "--from-beginning", "--json"], capture_output=True, text=True,
                          timeout=120)
    assert live.returncode == 0, live.stdout + live.stderr
    report = json.loads(live.stdout)
    assert report["ok"] and report["traders"][own.address.lower()]["attestations"] >= 1
    assert report["matched"] == report["attestations"]
    assert report["refused"] >= 1  # the garbage attestation
    exported = subprocess.run([*base, "--from-beginning", "--export", str(tmp_path / "log")],
                              capture_output=True, text=True, timeout=120)
    assert exported.returncode == 0, exported.stderr
    offline = subprocess.run([*base, "--from", str(tmp_path / "log"), "--json"],
                             capture_output=True, text=True, timeout=120)
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert json.loads(offline.stdout)["matched"] == report["matched"]
    # The same log audited on one process, or shared by trader over two or three: the
    # same report.
    for processes in (1, 2, 3):
        shared = subprocess.run([*base, "--from", str(tmp_path / "log"), "--json",
                                 "--processes", str(processes)],
                                capture_output=True, text=True, timeout=120)
        assert shared.returncode == 0, shared.stdout + shared.stderr
        assert json.loads(shared.stdout) == json.loads(offline.stdout)
    # A copy whose first valid proven book claims more collateral than its proven commitment:
    # its proofs still verify, and replay names the book.
    shutil.copytree(tmp_path / "log", tmp_path / "forged")
    record = tamper_first(tmp_path / "forged" / "venue.position_proven.v1.jsonl",
                          "collateral_wad")
    forged = subprocess.run([*base, "--from", str(tmp_path / "forged")], capture_output=True,
                            text=True, timeout=120)
    assert forged.returncode == 1
    assert (f"book {record['event_id']}: positions and collateral do not hash to the proven "
            "commitment") in forged.stdout
    # A copy without its headers: no state root is taken on trust, every book is named.
    shutil.copytree(tmp_path / "log", tmp_path / "headless")
    (tmp_path / "headless" / "chain.block_header.v1.jsonl").unlink()
    headless = subprocess.run([*base, "--from", str(tmp_path / "headless")],
                              capture_output=True, text=True, timeout=120)
    assert headless.returncode == 1
    assert "has no header in the log" in headless.stdout
    # An auditor's copy with one attested figure changed: replay names it.
    tamper_first(tmp_path / "log" / "risk.attestation.v1.jsonl", "equity_wad")
    tampered = subprocess.run([*base, "--from", str(tmp_path / "log")], capture_output=True,
                              text=True, timeout=120)
    assert tampered.returncode == 1
    assert "recomputed differs in ['equity_wad'" in tampered.stdout


def tamper_first(export: Path, figure: str) -> dict[str, Any]:
    """Add 1 to ``figure`` in the first record of an exported topic that has it (the
    garbage of the first test has none); the record as changed."""
    lines = export.read_text().splitlines()
    for i, line in enumerate(lines):
        row = json.loads(line)
        try:
            record = json.loads(bytes.fromhex(row["value_hex"]))
        except (ValueError, TypeError):
            continue
        if isinstance(record, dict) and figure in record:
            record[figure] += 1
            row["value_hex"] = json.dumps(record).encode().hex()
            lines[i] = json.dumps(row)
            export.write_text("\n".join(lines) + "\n")
            return record
    raise AssertionError(f"no record of {export.name} has {figure}")


def test_a_supply_on_one_chain_hedges_a_short_perp_on_another(
        node: tuple[Network, subprocess.Popen]) -> None:
    # Cash and carry across protocols: 10 ETH supplied to the lending pool on chain B,
    # 10 ETH short on the perp venue of chain A. Each alone is a full ETH exposure.
    network, _ = node
    trader = anvil_account(4)
    address = trader.address.lower()
    chain_a, chain_b = network.deployments[:2]
    supplied = supply(chain_b, trader, "ETH", 10.0)
    deposit(chain_a, trader, 5_000)
    price = read_price(chain_a, "ETH")
    wait_for_credit([chain_a], address, 10.0 * price * 0.2, 120.0)
    shorted = trade(chain_a, trader, "ETH", -10.0)
    att = asyncio.run(wait_for_netted_attestation(
        network.bootstrap, address, {chain_a.chain_id: shorted, chain_b.chain_id: supplied},
        120.0))
    assert att.equity_wad == pytest.approx((5_000 + 10 * price) * WAD, rel=1e-9)
    assert att.maintenance_margin_wad < 0.2 * att.isolated_margin_wad


def test_equity_attested_is_on_chain_cash_plus_unrealized_pnl_to_the_wei(
        node: tuple[Network, subprocess.Popen]) -> None:
    network, _ = node
    trader = anvil_account(7)
    address = trader.address.lower()
    a = network.deployments[0]
    for d in network.deployments:
        set_price(d, "ETH", 2_800.0)
    open_positions(a, trader, "ETH", collateral_usd=10_000, size=2.0)
    for d in network.deployments:
        set_price(d, "ETH", 3_012.34567891)
    trade(a, trader, "ETH", -1.0)  # realizes 1 × 212.34567891: 212.345678 USDC (down)
    wait_for_credit([a], address, 1_000.0, 120.0)
    withdrawn = withdraw(a, trader, 1_000 * USDC)
    att = asyncio.run(wait_for_netted_attestation(network.bootstrap, address,
                                                  {a.chain_id: withdrawn}, 120.0))
    view = venue_view(a, address)
    assert view["wallet_units"] == 1_000 * USDC  # minted 10,000, deposited, 1,000 back
    assert view["cash_units"] == 10_000 * USDC + 212_345_678 - 1_000 * USDC
    ((market, leg),) = view["positions"].items()
    assert market == "ETH" and leg == {"size_wad": WAD, "entry_price_wad": 2_800 * WAD}
    price = 301_234_567_891 * 10**10
    assert {p.asset: p.price_wad for p in att.prices} == {"ETH": price}
    unrealized = leg["size_wad"] * (price - leg["entry_price_wad"]) // WAD
    assert att.equity_wad == view["cash_units"] * 10**12 + unrealized


def simulate(port: int, body: object) -> tuple[int, dict[str, Any]]:
    """``POST /v1/simulate`` on the node: (status, JSON answer)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/simulate", data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_pre_trade_simulation_answers_as_the_worker_attests_and_the_venue_decides(
        node: tuple[Network, subprocess.Popen]) -> None:
    network, _ = node
    port = network.metrics_port
    a = network.deployments[0]
    w3 = Web3(HTTPProvider(a.rpc_url))
    trader = new_account(w3)
    address = trader.address.lower()
    deposited = deposit(a, trader, 10_000)
    attested = asyncio.run(wait_for_netted_attestation(network.bootstrap, address,
                                                       {a.chain_id: deposited}, 120.0))
    wait_for_credit([a], address, 1_000.0, 120.0)
    deadline = time.monotonic() + 60
    while True:  # the node's fold reads the proven book the worker attested
        status, answer = simulate(port, {"trader": trader.address})  # checksummed is fine
        if status == 200 and answer["current"] is not None:
            break
        assert time.monotonic() < deadline, answer
        time.sleep(0.5)
    current = answer["current"]
    assert (current["equity_wad"], current["maintenance_margin_wad"],
            current["initial_margin_wad"]) == (attested.equity_wad,
                                               attested.maintenance_margin_wad,
                                               attested.initial_margin_wad)
    assert [c["free_collateral_wad"] for c in current["chains"]] == [
        c.free_collateral_wad for c in attested.chains]
    assert answer["trades"] == []

    # 2 ETH draws 20% of its notional from chain A's credit (about half of 10,000 less
    # the IM); 20 ETH draws ten times more. The venue answers, by its own checks.
    small = {"chain_id": a.chain_id, "venue": a.venue, "market": "ETH", "size_wad": 2 * WAD}
    big = {**small, "size_wad": 20 * WAD}
    status, both = simulate(port, {"trader": address, "trades": [small, big]})
    assert status == 200, both
    assert [t["accepted"] for t in both["trades"]] == [True, False]
    assert "insufficient free collateral" in both["trades"][1]["reason"]
    status, one = simulate(port, {"trader": address, "trades": [small]})
    assert status == 200, one
    after = one["after"]
    assert after["equity_wad"] == current["equity_wad"]  # opened at the oracle price
    assert after["maintenance_margin_wad"] > current["maintenance_margin_wad"]
    assert after["modes"]["portfolio_wad"] <= after["modes"]["protocol_cross_wad"] <= after[
        "modes"]["isolated_wad"]
    with pytest.raises(ContractLogicError, match="insufficient free collateral"):
        trade(a, trader, "ETH", 20.0)
    traded = trade(a, trader, "ETH", 2.0)
    next_one = asyncio.run(wait_for_netted_attestation(network.bootstrap, address,
                                                       {a.chain_id: traded}, 120.0))
    # What the simulation said the book would margin at is what the worker attests.
    assert (next_one.equity_wad, next_one.maintenance_margin_wad,
            next_one.initial_margin_wad) == (after["equity_wad"],
                                             after["maintenance_margin_wad"],
                                             after["initial_margin_wad"])

    # Bad requests: a 4xx naming the field, and the node keeps serving.
    for body, code, field in [
        (b"{not json", 400, "body"),
        ({"trader": "0x12"}, 422, "trader"),
        ({"trader": address, "trades": [{**small, "size_wad": 0}]}, 422, "trades.0.size_wad"),
        ({"trader": address, "trades": [{**small, "chain_id": 999}]}, 422, "trades.0.chain_id"),
        ({"trader": address, "trades": [{**small, "venue": a.pool}]}, 422, "trades.0.venue"),
        ({"trader": address, "trades": [{**small, "market": "DOGE"}]}, 422, "trades.0.market"),
    ]:
        status, refusal = simulate(port, body)
        assert (status, refusal["field"]) == (code, field), refusal
    assert simulate(port, {"trader": address})[0] == 200


def test_a_price_shock_liquidates_the_unhedged_trader_and_leaves_the_hedged_one(
        node: tuple[Network, subprocess.Popen]) -> None:
    network, proc = node
    for d in network.deployments:
        set_price(d, "ETH", 3_000.0)
    summary = run_shock(network, hedged=TRADER, timeout_s=180.0)
    keeper = anvil_account(KEEPER_ACCOUNT).address.lower()
    assert summary["plan"]["health"] < 1.0 and summary["plan"]["legs"]
    assert summary["liquidations"], "no leg executed"
    for leg in summary["liquidations"]:
        assert leg["status"] == "delivered", leg
        (event,) = leg["events"]
        assert event["liquidator"] == keeper and event["trader"] == summary["unhedged_trader"]
    for i, before in enumerate(summary["before"]["unhedged"]):
        after = summary["after"]["unhedged"][i]
        events = [e for leg in summary["liquidations"] if leg["chain_id"] == before["chain_id"]
                  for e in leg["events"]]
        # To the unit: the trader's cash moved by the realized P&L less the keeper's
        # reward and the penalty; the keeper got the reward and its share of the
        # penalty; the insurance fund the rest; the venue's tokens are where they were
        # less what the keeper was paid.
        assert after["cash_units"] == before["cash_units"] + sum(
            e["pnl_units"] - e["reward_units"] - e["penalty_units"] for e in events)
        paid = sum(e["to_liquidator_units"] for e in events)
        assert all(e["to_liquidator_units"] >= e["reward_units"] > 0 for e in events)
        assert after["keeper_wallet_units"] == before["keeper_wallet_units"] + paid
        assert after["insurance_fund_units"] == before["insurance_fund_units"] + sum(
            e["reward_units"] + e["penalty_units"] - e["to_liquidator_units"] for e in events)
        assert after["venue_tokens_units"] == before["venue_tokens_units"] - paid
        closed = sum(e["size_wad"] for e in events)
        held_before = before["positions"]["ETH"]["size_wad"]
        held_after = after["positions"].get("ETH", {"size_wad": 0})["size_wad"]
        assert held_after == held_before - closed
    planned = {(leg["chain_id"], leg["close_wad"] or abs(leg["size_wad"]))
               for leg in summary["plan"]["legs"]}
    assert {(leg["chain_id"], e["size_wad"]) for leg in summary["liquidations"]
            for e in leg["events"]} == planned
    # The hedged trader: untouched.
    mine = ("cash_units", "positions", "wallet_units")
    assert [{k: v[k] for k in mine} for v in summary["after"]["hedged"]] == [
        {k: v[k] for k in mine} for v in summary["before"]["hedged"]]
    assert summary["next_attestation"]["health"] >= 1.0
    assert proc.poll() is None


def test_a_redelivered_plan_closes_nothing_twice(node: tuple[Network, subprocess.Popen]) -> None:
    network, _ = node
    unhedged = anvil_account(6).address.lower()
    plan = asyncio.run(records_of(network.bootstrap, topics.LIQUIDATION, unhedged))[0]
    before = [venue_view(d, unhedged)["positions"] for d in network.deployments]
    asyncio.run(produce(network.bootstrap, {topics.LIQUIDATION: (unhedged.encode(), plan)}))
    legs = len(decode(Liquidation, plan).legs)
    deadline = time.monotonic() + 60.0
    skipped: list[Delivery] = []
    while len(skipped) < legs and time.monotonic() < deadline:
        skipped = [d for d in map(lambda raw: decode(Delivery, raw), asyncio.run(
            records_of(network.bootstrap, topics.DELIVERY, unhedged)))
                   if d.leg and d.reason == "already liquidated"]
        time.sleep(1.0)
    assert len(skipped) == legs and all(d.status == "dropped" for d in skipped)
    assert [venue_view(d, unhedged)["positions"] for d in network.deployments] == before


async def records_of(bootstrap: str, topic: str, key: str) -> list[bytes]:
    """Every record of ``topic`` keyed ``key``, from the beginning."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=None)
    await consumer.start()
    found: list[bytes] = []
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=2000)
            if not batches:
                return found
            found += [m.value for ms in batches.values() for m in ms
                      if m.key == key.encode() and m.value is not None]
    finally:
        await consumer.stop()


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    """The sum of ``name`` over the samples carrying ``labels`` (others free)."""
    found = [v for (n, ls), v in samples.items()
             if n == name and set(labels.items()) <= set(ls)]
    assert found, f"{name} {labels} not exported"
    return sum(found)


def test_every_process_exports_its_metrics_with_plausible_values(
        node: tuple[Network, subprocess.Popen]) -> None:
    network, _ = node
    first = scrape(network.metrics_port)
    time.sleep(3.0)  # the anvil chains mine a block a second
    samples, worker = scrape(network.metrics_port), scrape(network.worker_metrics_port)
    for chain in ("chain-a", "chain-b"):
        # Listeners: heights rising, final behind published behind head.
        assert value(samples, "xmargin_chain_head_block", chain=chain) > value(
            first, "xmargin_chain_head_block", chain=chain)
        head = value(samples, "xmargin_chain_head_block", chain=chain)
        published = value(samples, "xmargin_listener_published_block", chain=chain)
        final = value(samples, "xmargin_listener_final_block", chain=chain)
        assert final < published <= head and value(
            samples, "xmargin_listener_blocks_behind", chain=chain) <= 5
        assert value(samples, "xmargin_chain_halted", chain=chain) == 0
        assert value(samples, "xmargin_reorgs_total", chain=chain) == 0
        assert value(samples, "xmargin_reorg_depth_blocks_count", chain=chain) == 0
        assert value(samples, "xmargin_chain_halts_total", chain=chain) == 0
        # RPC: every call counted and timed against one provider, named host:port.
        requests = value(samples, "xmargin_rpc_requests_total", chain=chain)
        assert requests > 100 and value(samples, "xmargin_rpc_latency_seconds_count",
                                        chain=chain) > 100
        rpc_url = network.deployments["ab".index(chain[-1])].rpc_url
        assert {dict(ls)["provider"] for n, ls in samples
                if n == "xmargin_rpc_requests_total" and ("chain", chain) in ls} == {
            provider_label(rpc_url)}
        assert value(samples, "xmargin_rpc_errors_total", chain=chain, kind="timeout") == 0
        assert value(samples, "xmargin_rpc_demotions_total", chain=chain) == 0
        # The proof service: books proven, each timed, none waiting for long.
        assert value(samples, "xmargin_proofs_built_total", chain=chain) >= 3
        assert value(samples, "xmargin_proof_seconds_count", chain=chain) >= 3
        assert value(samples, "xmargin_proof_queue", chain=chain) >= 0
        # Submitters: attestations delivered, fees paid, the sending account funded.
        delivered = value(samples, "xmargin_deliveries_total", chain=chain, role="submitter",
                          outcome="delivered", reason="confirmed")
        assert delivered >= 3
        assert value(samples, "xmargin_delivery_attempts_total", chain=chain,
                     role="submitter") >= delivered
        assert value(samples, "xmargin_transactions_sent_total", chain=chain,
                     role="submitter") >= delivered
        assert value(samples, "xmargin_confirm_seconds_count", chain=chain,
                     role="submitter") >= delivered
        assert 0 < value(samples, "xmargin_fee_paid_eth_total", chain=chain,
                         role="submitter") < 1
        assert value(samples, "xmargin_sender_nonce", chain=chain, role="submitter") >= 3
        assert value(samples, "xmargin_in_flight_transactions", chain=chain,
                     role="submitter") == 0
        assert value(samples, "xmargin_fee_bumps_total", chain=chain, role="submitter") >= 0
        assert value(samples, "xmargin_deliveries_dead_lettered_total", chain=chain,
                     role="submitter") == 0
        assert 1_000 < value(samples, "xmargin_sender_balance_eth", chain=chain,
                             role="submitter") < 10_001
    # The keeper: the shock test's legs liquidated and paid for.
    assert value(samples, "xmargin_deliveries_total", role="keeper", outcome="delivered") >= 1
    assert value(samples, "xmargin_fee_paid_eth_total", role="keeper") > 0
    assert value(samples, "xmargin_sender_balance_eth", role="keeper") > 0
    # Dead letters, by the kind of refusal: the garbage test's four records.
    assert value(samples, "xmargin_dead_letters_total", topic=topics.POSITION_EVENT,
                 reason="schema") >= 1
    assert value(samples, "xmargin_dead_letters_total", topic=topics.ATTESTATION,
                 reason="schema") >= 1
    assert value(worker, "xmargin_dead_letters_total", topic=topics.POSITION_PROVEN,
                 reason="malformed") >= 1
    assert value(worker, "xmargin_dead_letters_total", topic=topics.PRICE,
                 reason="schema") >= 1
    assert value(samples, "xmargin_records_consumed_total", topic=topics.POSITION_EVENT) >= 3
    # Every supervised task up and making progress.
    now = time.time()
    tasks = {dict(ls)["task"]: v for (n, ls), v in samples.items() if n == "xmargin_task_up"}
    assert {"prover", "board", "worker", "listener-41001", "submitter-41002",
            "keeper-41001", "balance-keeper-41002"} <= set(tasks)
    assert all(v == 1 for v in tasks.values()), tasks
    for task in tasks:
        assert now - value(samples, "xmargin_task_last_progress_timestamp_seconds",
                           task=task) < 30, task
    # The worker: records consumed and batched, traders held, attestations and plans
    # counted, record-to-attestation timed, lag per partition.
    assert value(worker, "xmargin_records_consumed_total", topic=topics.POSITION_PROVEN) >= 3
    assert value(worker, "xmargin_worker_batch_records_count", topic=topics.POSITION_PROVEN) >= 1
    assert value(worker, "xmargin_worker_batch_seconds_count", topic=topics.RECOMPUTE) >= 1
    assert value(worker, "xmargin_worker_traders") >= 2
    assert value(worker, "xmargin_attestations_total") >= 3
    assert value(worker, "xmargin_attestations_suppressed_total") >= 1
    assert value(worker, "xmargin_liquidation_plans_total") >= 1
    assert value(worker, "xmargin_record_to_attestation_seconds_count") >= 3
    assert value(worker, "xmargin_record_to_attestation_seconds_sum") / value(
        worker, "xmargin_record_to_attestation_seconds_count") < 30
    assert 0 <= value(worker, "xmargin_worker_consumer_lag",
                      topic=topics.POSITION_PROVEN) < 1_000


def test_the_status_api_and_page_of_the_running_node(
        node: tuple[Network, subprocess.Popen], tmp_path: Path) -> None:
    network, _ = node
    base = f"http://127.0.0.1:{network.metrics_port}"
    deadline = time.monotonic() + 60
    while True:  # the node's tasks all up and making progress
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=10) as r:
                if r.status == 200:
                    break
        except OSError:  # refused while it starts, or 503 (HTTPError) until ready
            assert time.monotonic() < deadline, "the node never became ready"
            time.sleep(0.5)
    with urllib.request.urlopen(f"{base}/traders/{TRADER}", timeout=10) as r:
        trader = json.loads(r.read())
    assert trader["attestation"]["sequence"] >= 1
    for chain in trader["chains"].values():
        assert chain["state"] in ("delivered", "below_threshold", "dropped"), chain
        assert chain["delivery"] is not None
    dom = render(f"{base}/", tmp_path / "node-page.png")
    assert "chain-a" in dom and "chain-b" in dom and "HALTED" not in dom
    assert TRADER in dom  # among the riskiest, with the shock's unhedged trader
    liquidations = dom.split('id="liquidations"')[1].split("</table>")[0]
    assert "delivered" in liquidations and "0x" in liquidations  # the shock's legs


def test_no_key_appears_in_any_process_log(node: tuple[Network, subprocess.Popen],
                                           localnet: LocalNet) -> None:
    # The node loaded the signer and submitter keys of the first anvil accounts from
    # their keystores and has been running every test above: no log line holds one.
    keys = [anvil_account(i).key.hex().removeprefix("0x") for i in range(10)]
    logs = sorted(localnet.log_dir.glob("*.log"))
    assert any(p.name == "node.log" for p in logs)
    for path in logs:
        text = path.read_text(errors="replace").lower()
        assert not [k for k in keys if k in text], f"a private key in {path.name}"
