"""The faust-streaming private API the worker relies on is that of the version it was
checked against, and every member it uses is still there."""

from __future__ import annotations

import inspect
from importlib.metadata import version

from aiokafka import AIOKafkaConsumer
from faust.streams import _current_event
from faust.tables.base import Collection
from faust.transport.consumer import Consumer as FaustConsumer
from faust.transport.consumer import ThreadDelegateConsumer

from streams.transport import faust_private


def test_faust_streaming_is_the_version_the_private_api_was_checked_against() -> None:
    assert version("faust-streaming") == faust_private.CHECKED_VERSION, (
        "check every member in streams/transport/faust_private.py against the new "
        "version, then update CHECKED_VERSION")


def test_every_private_member_used_exists() -> None:
    for owner, member in faust_private.MEMBERS:
        if owner is AIOKafkaConsumer:  # an attribute its constructor sets
            assert f"self.{member} =" in inspect.getsource(owner.__init__), member
        elif member == "_committed_offset":  # set by Faust's base consumer
            assert f"self.{member} =" in inspect.getsource(FaustConsumer.__init__), member
        elif member == "_thread":  # set by Faust's thread-delegating consumer
            assert f"self.{member} =" in inspect.getsource(ThreadDelegateConsumer.__init__)
        else:
            assert hasattr(owner, member), f"{owner.__name__}.{member} is gone"
    # Set per table in Collection.__init__, and the current-event context variable.
    source = inspect.getsource(Collection.__init__)
    assert "self._sensor_on_set" in source and "self._sensor_on_del" in source
    assert _current_event.get(None) is None


def test_the_transport_and_the_store_are_faust_plugins() -> None:
    from faust.stores import STORES
    from faust.transport.drivers import TRANSPORTS

    from streams.transport.driver import Transport
    from streams.transport.table import STORE_SCHEME, ChangelogBackedStore

    assert TRANSPORTS.by_name("xmargin") is Transport
    assert STORES.by_name(STORE_SCHEME) is ChangelogBackedStore
