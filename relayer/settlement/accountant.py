"""The cross-chain accountant (after Wormhole's): every credit a destination vault
released is held against a debit a source vault recorded, by order id, lane and amount,
and per lane the credits never exceed the debits. Pure: it reads the vaults' ``Debited``
and ``Credited`` events as ``Flow`` rows and answers with the lanes' totals and every
violation it finds (an operator alerts on any)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Flow:
    """One ``Debited`` (on ``src``) or ``Credited`` (on ``dst``) event."""

    order_id: bytes
    src: int
    dst: int
    amount: int


@dataclass
class Ledger:
    debited: dict[tuple[int, int], int] = field(default_factory=dict)   # (src, dst) → units
    credited: dict[tuple[int, int], int] = field(default_factory=dict)
    in_flight: dict[tuple[int, int], int] = field(default_factory=dict)  # debited, not credited
    violations: list[str] = field(default_factory=list)


def audit(debits: Iterable[Flow], credits: Iterable[Flow]) -> Ledger:
    ledger = Ledger()
    debit_of: dict[bytes, Flow] = {}
    for d in debits:
        if d.order_id in debit_of:
            ledger.violations.append(f"order 0x{d.order_id.hex()} debited twice")
        debit_of[d.order_id] = d
        lane = (d.src, d.dst)
        ledger.debited[lane] = ledger.debited.get(lane, 0) + d.amount
    credits = list(credits)
    for oid, n in Counter(c.order_id for c in credits).items():
        if n > 1:
            ledger.violations.append(f"order 0x{oid.hex()} credited {n} times")
    credited_ids = set()
    for c in credits:
        lane = (c.src, c.dst)
        ledger.credited[lane] = ledger.credited.get(lane, 0) + c.amount
        credited_ids.add(c.order_id)
        debit = debit_of.get(c.order_id)
        if debit is None:
            ledger.violations.append(f"order 0x{c.order_id.hex()} credited on {c.dst} "
                                     f"without a debit on {c.src}")
        elif (debit.src, debit.dst, debit.amount) != (c.src, c.dst, c.amount):
            ledger.violations.append(
                f"order 0x{c.order_id.hex()}: credited {c.amount} on {c.src}→{c.dst}, "
                f"debited {debit.amount} on {debit.src}→{debit.dst}")
    for lane, total in ledger.credited.items():
        if total > ledger.debited.get(lane, 0):
            ledger.violations.append(f"lane {lane[0]}→{lane[1]}: credited {total} > "
                                     f"debited {ledger.debited.get(lane, 0)}")
    for oid, d in debit_of.items():
        if oid not in credited_ids:
            lane = (d.src, d.dst)
            ledger.in_flight[lane] = ledger.in_flight.get(lane, 0) + d.amount
    return ledger
