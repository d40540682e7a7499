"""The Kafka launcher's pure parts (starting real brokers is the integration suite's)."""
import base64

from devnet.kafka import new_cluster_id


def test_a_cluster_id_never_reads_as_an_option() -> None:
    # One URL-safe id in 64 begins with "-": 5,000 draws meet one with near certainty,
    # and kafka-storage format would take it for a flag (CI failed on one).
    ids = [new_cluster_id() for _ in range(5000)]
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)
