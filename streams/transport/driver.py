"""The Faust transport of the stream processor (broker URL ``xmargin://host:port``).

On top of Faust's aiokafka transport it:

- hands the agents' topics (``BUNDLED``) over in bundles (``streams.transport.bundles``):
  each partition's run of records from one fetch becomes one message;
- recovers a table's changelog to the end offset a fetch reports
  (``bus.tansu.fetched_end_offsets``: Tansu's ListOffsets counts batches; on Kafka the
  two agree);
- caps every fetch's wait at ``bus.tansu.FETCH_MAX_WAIT_MS``;
- lets more table writes wait for the producer (``PRODUCER_BUFFER_MESSAGES``) before
  Faust holds its streams back.

Registered as Faust's ``xmargin`` transport through the ``faust.transports`` entry point.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from bus import tansu
from streams.transport import bundles, faust_private
from wire import topics

SCHEME = "xmargin"
# The topics the stream processor's agents read; never a table's changelog, which Faust
# reads record by record when it recovers a partition.
BUNDLED = frozenset({topics.POSITION_PROVEN, topics.PRICE, topics.VOL, topics.REORG,
                     topics.RECOMPUTE})
# Table writes queue in Faust's producer buffer; past its bound (Faust's is 100) every
# incoming message first waits for the buffer to drain. A bundle of ~100 books writes
# ~100 states, so the agents stalled often; the bound still holds memory: ~2 KB a state.
PRODUCER_BUFFER_MESSAGES = 20_000


def bundle(records: list[Any]) -> Any:
    """One record standing for ``records`` (one partition's, in offset order): at the last
    one's offset, so that acknowledging it commits them all."""
    last = records[-1]
    value = bundles.Bundle.of([bundles.Entry(r.offset, r.timestamp, r.key, r.value)
                               for r in records])
    return ConsumerRecord(
        topic=last.topic, partition=last.partition, offset=last.offset,
        timestamp=last.timestamp, timestamp_type=last.timestamp_type, key=None, value=value,
        checksum=None, serialized_key_size=-1, serialized_value_size=len(value),
        headers=((bundles.HEADER, str(len(records)).encode()),))


class ConsumerThread(faust_private.ConsumerThread):
    fetch_max_wait_ms = tansu.FETCH_MAX_WAIT_MS

    async def end_offsets(self, reported: Mapping[TP, int]) -> Mapping[TP, int]:
        if self.consumer.in_transaction:
            return reported
        bootstrap = ",".join(f"{u.host}:{u.port or 9092}" for u in self.app.conf.broker)
        return await tansu.fetched_end_offsets(bootstrap, reported)  # type: ignore[return-value]


class Consumer(faust_private.Consumer):
    thread_class = ConsumerThread

    def regroup(self, fetched: Mapping[TP, list[Any]]) -> Mapping[TP, list[Any]]:
        return {tp: [bundle(records)] if tp.topic in BUNDLED and records else records
                for tp, records in fetched.items()}


class Producer(faust_private.Producer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.buffer.max_messages = PRODUCER_BUFFER_MESSAGES

    def extra_settings(self) -> dict[str, Any]:
        cluster = getattr(self.app, "cluster", None)  # streams.app.WorkerApp's
        return {"enable_idempotence": True} if cluster is not None and cluster.idempotent else {}

    def aiokafka(self) -> AIOKafkaProducer:
        """The started aiokafka producer, for record batches (``transport.batches``)."""
        return faust_private.aiokafka_producer(self)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer
    Producer = Producer
