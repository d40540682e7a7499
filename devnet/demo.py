"""``xmargin demo``: the whole path on an embedded default, all on 127.0.0.1.

Starts Tansu and two anvil chains, deploys the contracts (a 6-decimal stablecoin the
venues hold), runs three attesters (one signer key each, threshold 2) and a relayer
node (with its Faust worker and its keeper; it holds no signer key). Act one: one
trader long a perp on chain A and short on chain B; the netted attestation lands on
both chains. Act two: a second, unhedged trader; the price falls 35% on both chains,
the keeper liquidates the plan's legs and the hedged trader is left alone. Prints a
summary (token balances before and after, each liquidation's transaction), writes it
as JSON, and stops every process it started, also on Ctrl-C, SIGTERM or error.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from rich.console import Console

from devnet.hedge import run_hedge, setup_network, start_attesters, summary_json
from devnet.kafka import kafka_cluster
from devnet.localnet import REPO, LocalNet
from devnet.settle import CASH_A, CASH_B, MOVE, SIZE, run_settlement
from devnet.shock import SHOCK, run_shock

CHAIN_A, CHAIN_B = 41001, 41002


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_demo(run_dir: Path | None = None, timeout_s: float = 180.0,
             broker: Literal["tansu", "kafka"] = "tansu") -> Path:
    """The demo on ``broker``: Tansu (embedded, the default) or Apache Kafka (KRaft,
    from ``make kafka``'s jars)."""
    console = Console(stderr=True)
    started = time.monotonic()
    run_dir = run_dir or REPO / ".xmargin" / time.strftime("demo-%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _terminate)
    with LocalNet(run_dir / "logs") as net:
        console.print(f"[bold]xmargin demo[/] run dir {run_dir} (process logs in logs/)")
        if broker == "kafka":
            bootstrap = kafka_cluster(net, 1)[0].bootstrap
            console.print(f"  broker  Apache Kafka (KRaft) on {bootstrap}")
        else:
            bootstrap = net.broker()
            console.print(f"  broker  Tansu on {bootstrap}")
        rpc_urls = [net.chain(CHAIN_A), net.chain(CHAIN_B)]
        console.print(f"  chains  anvil {CHAIN_A} on {rpc_urls[0]}, {CHAIN_B} on {rpc_urls[1]}")
        network = setup_network(run_dir, bootstrap, rpc_urls, prices={"ETH": 3000},
                                settle=True)
        for d in network.deployments:
            console.print(f"  deployed on {d.chain_id}: venue {d.venue} oracle {d.oracle}")
        start_attesters(net, network)
        console.print(f"  attesters {len(network.attesters)} (threshold 2), each its own "
                      f"process with one key: {', '.join(network.attesters)}")
        net.start("node", [sys.executable, "-m", "xmargin.cli", "node", "run", "--config",
                           str(network.config_path)])
        console.print("  node    started (listeners, proof service, submitters, Faust worker)")
        console.print(f"  status  http://127.0.0.1:{network.metrics_port}/ (live page), "
                      f"/metrics, /status, /traders/<address>; the worker's metrics on "
                      f"http://127.0.0.1:{network.worker_metrics_port}/metrics")
        console.print(f"  trader  deposits $10,000 on each chain; once both oracles grant "
                      f"credit, long 10 ETH on {CHAIN_A}, short 10 ETH on {CHAIN_B} (each "
                      "venue draws the margin from the global credit); waiting for the "
                      "netted attestation on both chains…")
        summary = run_hedge(network, timeout_s=timeout_s)
        console.print(f"  act two a second trader goes long 2 ETH on {CHAIN_A} and 0.5 on "
                      f"{CHAIN_B}, unhedged; then ETH falls {SHOCK:.0%} on both chains…")
        summary["shock"] = run_shock(network, hedged=summary["trader"], timeout_s=timeout_s)
        console.print(f"  act three a third trader holds ${CASH_A} on {CHAIN_A} and "
                      f"${CASH_B:,} on {CHAIN_B}, long {SIZE:g} ETH on {CHAIN_A} and short "
                      f"{SIZE:g} on {CHAIN_B}; ETH falls {MOVE:.0%} and the long is closed "
                      f"at a loss beyond its cash: {CHAIN_A}'s venue is short until the node "
                      f"settles it from {CHAIN_B}…")
        summary["settlement"] = run_settlement(network, timeout_s=timeout_s)
    summary["wall_time_s"] = round(time.monotonic() - started, 1)
    out = run_dir / "summary.json"
    out.write_text(summary_json(summary) + "\n")
    print_summary(console, summary)
    console.print(f"summary written to {out}")
    return out


def print_summary(console: Console, summary: dict[str, object]) -> None:
    console.print("\n[bold]Attested on both chains[/]")
    for c in summary["chains"]:  # type: ignore[attr-defined]
        console.print(
            f"  chain {c['chain_id']}: seq {c['sequence']}  equity ${c['equity_usd']:,.2f}  "
            f"MM ${c['maintenance_margin_usd']:,.2f}  IM ${c['initial_margin_usd']:,.2f}  "
            f"free ${c['free_collateral_usd']:,.2f}"
        )
    console.print(
        f"  sum of isolated MM ${summary['sum_isolated_maintenance_margin_usd']:,.2f} → "
        f"global MM ${summary['global_maintenance_margin_usd']:,.2f} "
        f"({summary['saving_pct']}% less); wall time {summary['wall_time_s']} s"
    )
    for attester, said in summary.get("attesters", {}).items():  # type: ignore[attr-defined]
        console.print(f"  attester {attester}: {said}")
    shock = summary.get("shock")
    if isinstance(shock, dict):
        print_shock(console, shock)
    settlement = summary.get("settlement")
    if isinstance(settlement, dict):
        print_settlement(console, settlement)


def usdc(units: int) -> str:
    return f"{units / 10**6:,.6f} USDC"


def print_shock(console: Console, shock: dict[str, Any]) -> None:
    console.print(f"\n[bold]Price shock[/] ETH ${shock['price_before_usd']:,.2f} → "
                  f"${shock['price_after_usd']:,.2f}")
    plan = shock["plan"]
    console.print(f"  unhedged {shock['unhedged_trader']}: health {plan['health']:.3f}; "
                  f"plan at sequence {plan['sequence']}: {plan['reason']}")
    for leg in shock["liquidations"]:
        for e in leg["events"]:
            console.print(f"  liquidated on {leg['chain_id']}: {e['size_wad'] / 10**18:g} "
                          f"{e['market']} at ${e['price_wad'] / 10**18:,.2f}, P&L "
                          f"{usdc(e['pnl_units'])}, keeper's reward {usdc(e['reward_units'])}, "
                          f"penalty {usdc(e['penalty_units'])} (keeper in all "
                          f"{usdc(e['to_liquidator_units'])}) in {leg['tx_hash']}")
        if not leg["events"]:
            console.print(f"  leg {leg['leg']} on {leg['chain_id']}: {leg['status']}: "
                          f"{leg['reason']}")
    after = shock["next_attestation"]
    console.print(f"  next attestation: sequence {after['sequence']}, health "
                  f"{after['health']:.3f}, equity ${after['equity_usd']:,.2f}")
    for who in ("unhedged", "hedged"):
        for before, now in zip(shock["before"][who], shock["after"][who], strict=True):
            held = ", ".join(f"{m} {p['size_wad'] / 10**18:g}" for m, p in now["positions"].items())
            console.print(f"  {who:8} on {now['chain_id']}: cash {usdc(before['cash_units'])} → "
                          f"{usdc(now['cash_units'])}; holds {held or 'nothing'}")
    for before, now in zip(shock["before"]["unhedged"], shock["after"]["unhedged"], strict=True):
        console.print(f"  chain {now['chain_id']}: venue holds {usdc(before['venue_tokens_units'])}"
                      f" → {usdc(now['venue_tokens_units'])}; insurance fund "
                      f"{usdc(before['insurance_fund_units'])} → "
                      f"{usdc(now['insurance_fund_units'])}; keeper wallet "
                      f"{usdc(before['keeper_wallet_units'])} → "
                      f"{usdc(now['keeper_wallet_units'])}")


def print_settlement(console: Console, s: dict[str, Any]) -> None:
    console.print(f"\n[bold]Cross-chain settlement[/] {s['trader']}: a loss realized on "
                  f"{s['loss_realized_on']} left its cash at {usdc(-s['need_units'])}")
    for d in s["debits"]:
        console.print(f"  debited on {s['paid_from']}: {usdc(d['amount_units'])} (nonce "
                      f"{d['nonce']}, order {d['order_id'][:18]}…) in block {d['block']}, "
                      f"{d['tx_hash']}, {d['gas_used']:,} gas")
    for c in s["credits"]:
        console.print(f"  proven and credited on {s['loss_realized_on']}: "
                      f"{usdc(c['amount_units'])} in block {c['block']}, {c['tx_hash']}, "
                      f"{c['gas_used']:,} gas (the "
                      f"vault checked the storage proof of the debit's receipt against a "
                      f"header the attesters vouched for)")
    for side, chain in (("a", s["loss_realized_on"]), ("b", s["paid_from"])):
        console.print(f"  trader's cash on {chain}: {usdc(s['before'][side]['cash_units'])} → "
                      f"{usdc(s['after'][side]['cash_units'])}")
    total = s["tokens_total_units"]
    console.print(f"  venues, vaults and wallets on both chains hold {usdc(total['before'])} "
                  f"before and "
                  f"{usdc(total['after'])} after: "
                  + ("conserved to the unit" if s["conserved"] else "[red]NOT conserved[/]"))
