"""The node's state directory: the one place that names its files.

    listener-<chain id>.json         a listener's checkpoint
    incident-<chain id>-<block>.json the evidence of a chain halt
    deliveries-<chain id>.json       deliveries being retried or dead-lettered
    in-flight-<chain id>.json        transactions sent and not yet confirmed
    signatures-<chain id>.json       pending attestations: which attesters signed,
                                     refused (with their differences) or are silent
    keeper-<chain id>.json           liquidation legs executed or skipped, and why
    keeper-retries-<chain id>.json   liquidation legs being retried or dead-lettered
    keeper-in-flight-<chain id>.json liquidations sent and not yet confirmed
    log-epoch.json                   the epoch of the log this node builds on (bus.epoch)
    incident-log-<unix time>.json    the evidence of a vanished log (``bus.epoch.record``)

Every file is replaced atomically (``write_atomically``), so a crash leaves the old
state or the new one and ``xmargin node status`` can read it while the node runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# One definition for the node's files and the log's (the epoch, its incidents).
from bus.epoch import write_atomically as write_atomically


@dataclass(frozen=True)
class StateDir:
    root: Path

    def checkpoint(self, chain_id: int) -> Path:
        return self.root / f"listener-{chain_id}.json"

    def incident(self, chain_id: int, block: int) -> Path:
        return self.root / f"incident-{chain_id}-{block}.json"

    def incidents(self, chain_id: int) -> list[Path]:
        return sorted(self.root.glob(f"incident-{chain_id}-*.json"))

    def log_epoch(self) -> Path:
        return self.root / "log-epoch.json"

    def log_incidents(self) -> list[Path]:
        return sorted(self.root.glob("incident-log-*.json"))

    def deliveries(self, chain_id: int) -> Path:
        return self.root / f"deliveries-{chain_id}.json"

    def in_flight(self, chain_id: int) -> Path:
        return self.root / f"in-flight-{chain_id}.json"

    def signatures(self, chain_id: int) -> Path:
        return self.root / f"signatures-{chain_id}.json"

    def keeper_legs(self, chain_id: int) -> Path:
        return self.root / f"keeper-{chain_id}.json"

    def keeper_retries(self, chain_id: int) -> Path:
        return self.root / f"keeper-retries-{chain_id}.json"

    def keeper_in_flight(self, chain_id: int) -> Path:
        return self.root / f"keeper-in-flight-{chain_id}.json"

    def settlements(self) -> Path:
        return self.root / "settlements.json"

    def settlement_violations(self) -> Path:
        return self.root / "settlement-violations.json"

    def settler_in_flight(self, chain_id: int) -> Path:
        return self.root / f"settler-in-flight-{chain_id}.json"

    def guardian_in_flight(self, chain_id: int) -> Path:
        return self.root / f"guardian-in-flight-{chain_id}.json"
