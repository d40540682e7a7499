"""ethereum/tests TrieTests and RLP tests, through this package's verifier.

Each TrieTests case is built with ``trie.HexaryTrie``, its root checked against the
vector, and then every key (and some absent ones) is proven and verified with
``proofs.verify_proof`` against the vector's root.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import rlp
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from trie import HexaryTrie

from proofs import ProofError, verify_proof
from proofs.rlpnode import RLPError, decode_node
from tests.conftest import CONFORMANCE

TRIE = CONFORMANCE / "trie"
RLP = CONFORMANCE / "rlp"


def as_bytes(s: str | None) -> bytes | None:
    if s is None:
        return None
    return bytes.fromhex(s[2:]) if s.startswith("0x") else s.encode()


def cases() -> list[Any]:
    out = []
    for name, secure in [("trietest.json", False), ("trieanyorder.json", False),
                         ("trietest_secureTrie.json", True),
                         ("trieanyorder_secureTrie.json", True),
                         ("hex_encoded_securetrie_test.json", True)]:
        for case, body in json.loads((TRIE / name).read_text()).items():
            out.append(pytest.param(body, secure, id=f"{name}:{case}"))
    return out


@pytest.mark.parametrize("body, secure", cases())
def test_trie_vector_proves_every_key(body: dict[str, Any], secure: bool) -> None:
    pairs = body["in"].items() if isinstance(body["in"], dict) else body["in"]
    t = HexaryTrie({})
    final: dict[bytes, bytes] = {}
    for k, v in pairs:
        key, value = as_bytes(k), as_bytes(v)
        assert key is not None
        path = keccak(key) if secure else key
        if value:
            t[path] = value
            final[key] = value
        else:
            del t[path]
            final.pop(key, None)
    root = bytes.fromhex(body["root"][2:])
    assert t.root_hash == root
    probes = [*final, b"absent-key", b"do" * 3]
    for key in probes:
        proof = [rlp.encode(n) for n in t.get_proof(keccak(key) if secure else key)]
        assert verify_proof(root, key, proof, secure=secure) == final.get(key)


def test_rlp_vectors_encode() -> None:
    for name, body in json.loads((RLP / "rlptest.json").read_text()).items():
        value = body["in"]
        if isinstance(value, str) and value.startswith("#"):
            value = int(value[1:])
        assert "0x" + rlp.encode(to_sedes(value)).hex() == body["out"].lower(), name


def to_sedes(value: Any) -> Any:
    if isinstance(value, list):
        return [to_sedes(v) for v in value]
    if isinstance(value, str):
        return value.encode()
    return value


@pytest.mark.parametrize("name, body",
                         sorted(json.loads((RLP / "invalidRLPTest.json").read_text()).items()))
def test_invalid_rlp_node_is_a_proof_error(name: str, body: dict[str, str]) -> None:
    node = bytes.fromhex(body["out"][2:])
    with pytest.raises(ProofError):
        verify_proof(keccak(node), b"key", [node])


nested = st.recursive(st.binary(max_size=70), lambda kids: st.lists(kids, max_size=18),
                      max_leaves=40)


@settings(max_examples=300, deadline=None)
@given(st.lists(nested, max_size=18))
def test_node_decoder_agrees_with_pyrlp(items: list[Any]) -> None:
    encoded = rlp.encode(items)
    assert decode_node(encoded) == rlp.decode(encoded)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=120))
def test_node_decoder_never_accepts_what_pyrlp_refuses(data: bytes) -> None:
    try:
        expected = rlp.decode(data)
    except rlp.exceptions.DecodingError:
        with pytest.raises(RLPError):
            decode_node(data)
        return
    if isinstance(expected, list):
        assert decode_node(data) == expected
    else:
        with pytest.raises(RLPError):
            decode_node(data)
