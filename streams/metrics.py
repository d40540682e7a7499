"""A worker's metrics, declared once here with their fixed label sets (prometheus-client,
served by each worker on ``streams.metrics_port``; the README's table lists every one).
Records consumed and dead-lettered are ``bus.metrics``' (every process counts them)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BATCH_RECORDS = Histogram("xmargin_worker_batch_records", "valid records per agent batch",
                          ["topic"], buckets=(1, 10, 50, 100, 500, 1000, 5000, 20000))
BATCH_SECONDS = Histogram("xmargin_worker_batch_seconds", "time to work one agent batch",
                          ["topic"],
                          buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
LAG = Gauge("xmargin_worker_consumer_lag", "records on a partition not yet worked (high "
            "watermark minus the next offset)", ["topic", "partition"])
TRADERS = Gauge("xmargin_worker_traders", "trader states the worker holds")
ATTESTATIONS = Counter("xmargin_attestations", "attestations emitted")
SUPPRESSED = Counter("xmargin_attestations_suppressed", "margin computations that emitted "
                     "nothing: the figures moved less than the change threshold (or a "
                     "degraded price held a healthier one back)")
LIQUIDATION_PLANS = Counter("xmargin_liquidation_plans", "liquidation plans emitted")
PLANS_HELD = Counter("xmargin_liquidation_plans_held", "attestations below maintenance sent "
                     "without a new plan: the last one is still being executed")
RECORD_TO_ATTESTATION = Histogram(
    "xmargin_record_to_attestation_seconds", "from a record's broker timestamp to the "
    "attestation it caused reaching the broker",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
SEQUENCES_RECOVERED = Counter(
    "xmargin_sequences_recovered", "traders continued after an attestation newer than "
    "their stored state (its worker stopped before storing it)")
