"""An attester's own metrics (beside ``bus.metrics``), declared once with fixed labels."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

VERDICTS = Counter("xmargin_attester_verdicts", "proposed attestations answered, by "
                   "outcome (signed: reproduced byte for byte; refused: a difference found)",
                   ["outcome"])
PENDING = Gauge("xmargin_attester_pending", "proposed attestations whose inputs are not "
                "all read yet")
NO_QUORUM = Counter("xmargin_attester_no_quorum", "judgements put off because fewer than "
                    "the quorum of a chain's providers gave one answer", ["chain"])

WATCHED = Counter("xmargin_attester_accepted", "attestations an oracle accepted, by what "
                  "the watchtower made of them (reproduced, vouched: signed on the log by a "
                  "threshold, paused_trader, paused_oracle)", ["chain", "outcome"])
HEADER_VOUCHES = Counter("xmargin_attester_header_vouches", "source headers of settlement "
                         "debits vouched for (each final on the attester's quorum)")

for outcome in ("signed", "refused"):
    VERDICTS.labels(outcome=outcome)
