"""The node's metrics, declared once here with their fixed label sets (prometheus-client,
served by the node's HTTP server at ``/metrics``; the README's table lists every one).

``chain`` is a chain's configured name; ``provider`` an RPC provider's host and port,
never its URL (a URL may carry an API key); ``role`` the sending account's job,
``submitter`` or ``keeper``. Every ``reason`` and ``kind`` is a value of a fixed set
(``Reason``, ``RPC_ERROR_KINDS``, a proof error's class).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from prometheus_client import Counter, Gauge, Histogram

# Listeners.
CHAIN_HEAD = Gauge("xmargin_chain_head_block", "newest block the chain's providers report",
                   ["chain"])
PUBLISHED = Gauge("xmargin_listener_published_block", "newest block the listener published",
                  ["chain"])
FINAL = Gauge("xmargin_listener_final_block", "newest final block the listener handled",
              ["chain"])
BEHIND = Gauge("xmargin_listener_blocks_behind", "chain head minus the newest block "
               "published", ["chain"])
REORGS = Counter("xmargin_reorgs", "reorgs walked back", ["chain"])
REORG_DEPTH = Histogram("xmargin_reorg_depth_blocks", "blocks orphaned per reorg", ["chain"],
                        buckets=(1, 2, 3, 5, 8, 16, 32, 64, 128))
HALTED = Gauge("xmargin_chain_halted", "1 while the chain is halted", ["chain"])
HALTS = Counter("xmargin_chain_halts", "halts of the chain", ["chain"])
WS_CONNECTED = Gauge("xmargin_ws_connected", "1 while the WebSocket head feed is up",
                     ["chain"])

# RPC providers.
RPC_ERROR_KINDS = ("timeout", "rate_limited", "error_body", "bad_answer", "transport")
RPC_REQUESTS = Counter("xmargin_rpc_requests", "calls sent to a provider",
                       ["chain", "provider"])
RPC_ERRORS = Counter("xmargin_rpc_errors", "failed calls by kind: timeout, rate_limited "
                     "(HTTP 429), error_body, bad_answer (does not verify, e.g. a bad "
                     "block hash), transport", ["chain", "provider", "kind"])
RPC_LATENCY = Histogram("xmargin_rpc_latency_seconds", "time to a provider's answer",
                        ["chain", "provider"],
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
RPC_DEMOTIONS = Counter("xmargin_rpc_demotions", "times a provider was sent to the back of "
                        "the list", ["chain", "provider"])

# The proof service.
PROOF_QUEUE = Gauge("xmargin_proof_queue", "position events taken and not yet proven "
                    "(most wait for finality)", ["chain"])
PROOFS = Counter("xmargin_proofs_built", "books proven and published", ["chain"])
PROOF_SECONDS = Histogram("xmargin_proof_seconds", "time to prove one book once its block "
                          "is final", ["chain"],
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
PROOF_FAILURES = Counter("xmargin_proof_failures", "events dead-lettered by the proof "
                         "service, by the error's class", ["chain", "reason"])

# Submitters and keepers (``relayer.delivery.sending``).
DELIVERIES = Counter("xmargin_deliveries", "deliveries ended, by outcome and reason",
                     ["chain", "role", "outcome", "reason"])
ATTEMPTS = Counter("xmargin_delivery_attempts", "delivery attempts", ["chain", "role"])
SENT = Counter("xmargin_transactions_sent", "transactions broadcast (replacements "
               "included)", ["chain", "role"])
FEE_BUMPS = Counter("xmargin_fee_bumps", "replacements sent with higher fees",
                    ["chain", "role"])
CONFIRM_SECONDS = Histogram("xmargin_confirm_seconds", "broadcast to receipt", ["chain", "role"],
                            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120))
FEE_PAID = Counter("xmargin_fee_paid_eth", "gas used × effective gas price of mined "
                   "transactions, in the chain's native token", ["chain", "role"])
IN_FLIGHT = Gauge("xmargin_in_flight_transactions", "transactions sent and not yet "
                  "confirmed", ["chain", "role"])
NONCE = Gauge("xmargin_sender_nonce", "nonce of the newest transaction sent",
              ["chain", "role"])
DEAD_LETTERED = Counter("xmargin_deliveries_dead_lettered", "deliveries given up after "
                        "their last attempt", ["chain", "role"])
BALANCE = Gauge("xmargin_sender_balance_eth", "balance of the sending account, in the "
                "chain's native token", ["chain", "role"])

# Pre-trade margin (``xmargin.pretrade``, served by ``relayer.node.web``).
SIMULATIONS = Counter("xmargin_simulations", "POST /v1/simulate answers, by outcome: "
                      "answered, refused (4xx), not_ready (503)", ["outcome"])
SIMULATE_SECONDS = Histogram("xmargin_simulate_seconds", "time to answer a simulation "
                             "(margining and the venues' trials)",
                             buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1,
                                      0.25, 1))

# Cross-chain settlement (``relayer.settlement.service``).
SETTLEMENTS = Counter("xmargin_settlements", "settlement orders entering a stage (issued, "
                      "debited, final, queued, credited, refused, expired, halted, "
                      "awaiting signatures)", ["stage"])
SETTLEMENT_VIOLATIONS = Gauge("xmargin_settlement_violations", "what the cross-chain "
                              "accountant finds now: credits (released or queued) without "
                              "their proven debit, by order, lane and amount")
SETTLEMENTS_FROZEN = Counter("xmargin_settlements_frozen", "queued credits the watcher froze "
                             "for want of their debit")
SETTLEMENTS_IN_STAGE = Gauge("xmargin_settlements_in_stage", "settlement orders the node "
                             "holds at each stage now", ["stage"])


def provider_label(url: str) -> str:
    """A provider as metrics and logs name it: host and port only (a URL's path or query
    may carry an API key)."""
    parts = urlsplit(url)
    host = parts.hostname or "unknown"
    return f"{host}:{parts.port}" if parts.port else host
