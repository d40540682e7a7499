"""What a node's state directory says, for operators: ``xmargin node status``.

Read from the files the node keeps (nothing is asked of a chain or the broker, so it
answers while a node is down): per chain, the listener's published and final heights,
any halt incident with its evidence, the deliveries being retried or dead-lettered
with their reasons, each pending attestation's attesters (signed, refused with the
differences they found, silent), the transactions in flight with their nonces and fees, the
cross-chain settlements by stage (with what each waits for or why it stopped), and the
keeper's liquidation legs (executed with their transaction, skipped or dead-lettered
with why, and those being retried); and whether the log vanished under the epoch the
node holds (``bus.epoch``), with the evidence, or only under an earlier one (restored).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from bus.epoch import EpochFile
from relayer.chain.checkpoint import Checkpoint
from relayer.delivery.keeper import LegStore
from relayer.delivery.retries import AwaitingStore, InFlightStore, RetryStore
from relayer.settings import RelayerSettings
from relayer.settlement.service import SettlementStore
from relayer.statedir import StateDir


def node_status(settings: RelayerSettings) -> dict[str, Any]:
    state = StateDir(settings.state_dir)
    chains = {}
    for chain in settings.chains:
        cid = chain.chain_id
        checkpoint = Checkpoint.load(state.checkpoint(cid), chain.start_block)
        incidents = [json.loads(p.read_text()) for p in state.incidents(cid)]
        retries = RetryStore(state.deliveries(cid)).entries
        in_flight = InFlightStore(state.in_flight(cid)).entries
        awaiting = AwaitingStore(state.signatures(cid)).entries
        legs = LegStore(state.keeper_legs(cid)).entries
        leg_retries = RetryStore(state.keeper_retries(cid)).entries
        chains[chain.name] = {
            "chain_id": cid,
            "published_through": checkpoint.next_block - 1,
            "final_through": checkpoint.next_final - 1,
            "halted": bool(incidents),
            "incidents": incidents,
            "deliveries": {key: {"status": e.status, "attempts": e.attempts,
                                 "next_attempt_at": e.next_attempt_at, "reason": e.reason}
                           for key, e in sorted(retries.items())},
            "in_flight": {key: {"nonce": e.nonce, "tx_hash": e.tx_hash,
                                "max_fee_gwei": e.max_fee_wei / 1e9,
                                "priority_fee_gwei": e.priority_fee_wei / 1e9}
                          for key, e in sorted(in_flight.items())},
            "signatures": {key: {"threshold": a.threshold, "signed": a.signed,
                                 "refused": a.refused, "silent": a.silent}
                           for key, a in sorted(awaiting.items())},
            "keeper": chain.keeper is not None and settings.keeper_enabled,
            "liquidations": {key: {"status": e.status, "reason": e.reason,
                                   "tx_hash": e.tx_hash} for key, e in sorted(legs.items())},
            "liquidations_retrying": {key: {"attempts": e.attempts, "reason": e.reason,
                                            "status": e.status}
                                      for key, e in sorted(leg_retries.items())},
        }
    settlements = SettlementStore(state.settlements()).entries
    found = state.settlement_violations()
    return {"state_dir": str(state.root), "log": log_status(state), "chains": chains,
            "settlements": {key: asdict(e) for key, e in sorted(settlements.items())},
            "settlement_violations": json.loads(found.read_text()) if found.exists() else []}


def log_status(state: StateDir) -> dict[str, Any]:
    """The log incidents, each marked ``current`` when it concerns the epoch the node
    holds now (an older one was recovered from: ``xmargin log restore``)."""
    held = EpochFile(state.log_epoch()).load()
    incidents = [{**json.loads(p.read_text()), "file": str(p)} for p in state.log_incidents()]
    for incident in incidents:
        incident["current"] = incident.get("expected_epoch") == held
    return {"epoch": held, "vanished": any(i["current"] for i in incidents),
            "incidents": incidents}


def status_lines(status: dict[str, Any]) -> list[str]:
    log = status["log"]
    lines = [f"log: {'VANISHED' if log['vanished'] else 'ok'}; epoch {log['epoch']}"]
    for incident in log["incidents"]:
        lines.append(f"    {'incident' if incident['current'] else 'recovered incident'}: "
                     f"{incident['reason']} (expected epoch {incident['expected_epoch']}, "
                     f"found {incident['found_epoch']}); evidence {incident['file']}")
    for name, c in status["chains"].items():
        mark = "HALTED" if c["halted"] else "ok"
        lines.append(f"{name} ({c['chain_id']}): {mark}; published through block "
                     f"{c['published_through']}, final through {c['final_through']}")
        for incident in c["incidents"]:
            lines.append(f"    incident at block {incident['block']}: {incident['reason']}; "
                         f"published {incident['published_hash']}, providers "
                         f"{incident['providers']}")
        for key, d in c["deliveries"].items():
            lines.append(f"    delivery {key}: {d['status']} after {d['attempts']} "
                         f"attempt(s): {d['reason']}")
        for key, a in c["signatures"].items():
            lines.append(f"    signatures {key}: {len(a['signed'])} of {a['threshold']}; "
                         f"signed {a['signed']}, silent {a['silent']}")
            for attester, found in a["refused"].items():
                lines.append(f"        refused by {attester}: {' | '.join(found)}")
        for key, f in c["in_flight"].items():
            lines.append(f"    in flight {key}: nonce {f['nonce']}, {f['tx_hash']}, max fee "
                         f"{f['max_fee_gwei']:g} gwei")
        for key, leg in c["liquidations"].items():
            lines.append(f"    liquidation {key}: {leg['status']}"
                         + (f" in {leg['tx_hash']}" if leg["tx_hash"] else "")
                         + (f": {leg['reason']}" if leg["status"] != "liquidated" else ""))
        for key, r in c["liquidations_retrying"].items():
            lines.append(f"    liquidation {key}: {r['status']} after {r['attempts']} "
                         f"attempt(s): {r['reason']}")
    for violation in status.get("settlement_violations", []):
        lines.append(f"settlement accountant: {violation}")
    for key, s in status.get("settlements", {}).items():
        lines.append(f"settlement {key}: {s['stage']}, {s['amount']} units "
                     f"{s['src_chain']}→{s['dst_chain']} ({s['reason_for']})"
                     + (f": {s['reason']}" if s["reason"] else "")
                     + (f"; last tx {s['tx_hash']}" if s["tx_hash"] else ""))
    return lines
