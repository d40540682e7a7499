"""A delivery the broker refuses is sent again until it is taken."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError

from streams.transport.batches import deliver


class FlakyBroker:
    """Fails every record of the first ``failures`` attempts, then takes them."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or KafkaTimeoutError()
        self.attempts = 0
        self.taken: list[str] = []

    async def send(self) -> list[asyncio.Future[Any]]:
        self.attempts += 1
        loop = asyncio.get_running_loop()
        futures = []
        for record in ("a", "b"):
            future: asyncio.Future[Any] = loop.create_future()
            if self.attempts <= self.failures:
                future.set_exception(self.error)
            else:
                future.set_result(record)
                self.taken.append(record)
            futures.append(future)
        return futures


def test_a_refused_delivery_is_sent_again_until_taken(caplog: pytest.LogCaptureFixture
                                                      ) -> None:
    broker = FlakyBroker(failures=2)
    failed = asyncio.run(deliver(broker.send, "2 attestation(s)", retry_s=0))
    assert (failed, broker.attempts, broker.taken) == (2, 3, ["a", "b"])
    assert caplog.text.count("2 attestation(s): not delivered") == 2


def test_a_delivery_taken_at_once_is_sent_once() -> None:
    broker = FlakyBroker(failures=0)
    assert asyncio.run(deliver(broker.send, "x", retry_s=0)) == 0
    assert broker.attempts == 1


def test_an_error_that_is_not_the_brokers_is_raised() -> None:
    broker = FlakyBroker(failures=1, error=ValueError("a bug"))
    with pytest.raises(ValueError, match="a bug"):
        asyncio.run(deliver(broker.send, "x", retry_s=0))
    assert broker.attempts == 1
