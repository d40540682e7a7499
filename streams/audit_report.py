"""What an audit reads and what it reports: log records as the broker or an export
holds them, and per trader the attestations reproduced and the differences found."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LogRecord:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


@dataclass
class TraderAudit:
    trader: str
    attestations: int = 0
    matched: int = 0
    repeated: int = 0  # a sequence number emitted again (each copy is recomputed too)
    differences: list[str] = field(default_factory=list)


@dataclass
class AuditReport:
    records: int = 0
    refused: int = 0
    headers: int = 0
    books: int = 0
    traders: dict[str, TraderAudit] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # not tied to one trader

    @property
    def attestations(self) -> int:
        return sum(t.attestations for t in self.traders.values())

    @property
    def matched(self) -> int:
        return sum(t.matched for t in self.traders.values())

    @property
    def ok(self) -> bool:
        return not self.problems and all(not t.differences for t in self.traders.values())


def merge(reports: Sequence[AuditReport]) -> AuditReport:
    """One report from the shares' (their traders are disjoint)."""
    out = AuditReport()
    for r in reports:
        out.records += r.records
        out.refused += r.refused
        out.headers += r.headers
        out.books += r.books
        out.traders.update(r.traders)
        out.problems += r.problems
    return out
