"""relayer.settlement.accountant.audit: credits held against proven debits."""

from __future__ import annotations

from relayer.settlement.accountant import Flow, audit


def oid(n: int) -> bytes:
    return n.to_bytes(32, "big")


def test_matched_flows_balance_and_what_is_in_flight_is_counted() -> None:
    ledger = audit([Flow(oid(1), 2, 1, 500), Flow(oid(2), 2, 1, 70), Flow(oid(3), 1, 2, 9)],
                   [Flow(oid(1), 2, 1, 500), Flow(oid(3), 1, 2, 9)])
    assert ledger.violations == []
    assert ledger.debited == {(2, 1): 570, (1, 2): 9}
    assert ledger.credited == {(2, 1): 500, (1, 2): 9}
    assert ledger.in_flight == {(2, 1): 70}


def test_every_credit_without_its_debit_is_a_violation() -> None:
    ledger = audit([Flow(oid(1), 2, 1, 500)],
                   [Flow(oid(1), 2, 1, 501), Flow(oid(9), 2, 1, 5), Flow(oid(1), 2, 1, 501)])
    joined = "\n".join(ledger.violations)
    assert f"order 0x{oid(1).hex()} credited 2 times" in joined
    assert f"order 0x{oid(9).hex()} credited on 1 without a debit on 2" in joined
    assert "credited 501 on 2→1, debited 500 on 2→1" in joined
    assert "lane 2→1: credited 1007 > debited 500" in joined
