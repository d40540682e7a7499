"""Bundles: what the transport packs is what the agents unpack, and damage is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.transport.bundles import HEADER, BundleError, Entry, is_bundle, pack, unpack

entries = st.lists(st.builds(Entry, st.integers(0, 2**62), st.integers(0, 2**62),
                             st.none() | st.binary(max_size=40),
                             st.none() | st.binary(max_size=400)), max_size=20)


@given(entries)
def test_round_trip(records: list[Entry]) -> None:
    assert unpack(pack(records)) == records


@given(entries.filter(lambda r: any(e.key or e.value for e in r)), st.data())
def test_truncated_bundle_is_refused(records: list[Entry], data: st.DataObject) -> None:
    raw = pack(records)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(BundleError):
        unpack(raw[:cut])


def test_not_a_bundle() -> None:
    with pytest.raises(BundleError, match="magic or count"):
        unpack(b'{"trader": "0x"}')
    assert is_bundle([(HEADER, b"3")]) and is_bundle({HEADER: b"3"})
    assert not is_bundle([("other", b"")]) and not is_bundle(None)
