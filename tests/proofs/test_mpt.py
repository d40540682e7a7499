"""Merkle-Patricia proofs: tries built here with ``trie.HexaryTrie``, and tampering."""

from __future__ import annotations

import contextlib

import pytest
import rlp
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from trie import HexaryTrie

from proofs import ProofError, verify_get_proof, verify_proof
from proofs.account import verify_account, verify_storage
from proofs.errors import ProofIncomplete
from tests.conftest import CONFORMANCE, rpc_result

keys = st.binary(min_size=1, max_size=40)
values = st.binary(min_size=1, max_size=80)


def encoded_proof(t: HexaryTrie, key: bytes) -> list[bytes]:
    """``HexaryTrie.get_proof`` gives decoded nodes; eth_getProof gives their RLP."""
    return [rlp.encode(n) for n in t.get_proof(keccak(key))]


def secure_trie(entries: dict[bytes, bytes]) -> HexaryTrie:
    t = HexaryTrie({})
    for k, v in entries.items():
        t[keccak(k)] = v
    return t


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(keys, values, min_size=1, max_size=60), keys)
def test_inclusion_and_exclusion_match_the_trie(entries: dict[bytes, bytes], probe: bytes) -> None:
    t = secure_trie(entries)
    for k, v in list(entries.items())[:10]:
        assert verify_proof(t.root_hash, k, encoded_proof(t, k)) == v
    assert verify_proof(t.root_hash, probe, encoded_proof(t, probe)) == entries.get(probe)


def test_small_nodes_are_embedded_in_their_parent() -> None:
    # Short keys and one-byte values keep leaves under 32 bytes of RLP, so the trie
    # embeds them in their branch instead of referencing them by hash.
    t = HexaryTrie({})
    entries = {i.to_bytes(2, "big"): b"\x01" for i in range(300)}
    for k, v in entries.items():
        t[k] = v
    embedded_seen = False
    for k in list(entries)[:50]:
        proof = t.get_proof(k)
        embedded_seen |= any(isinstance(c, list) for n in proof for c in n)
        encoded = [rlp.encode(n) for n in proof]
        assert verify_proof(t.root_hash, k, encoded, secure=False) == b"\x01"
    assert embedded_seen
    absent = t.get_proof(b"\xff\xff")
    assert verify_proof(t.root_hash, b"\xff\xff", [rlp.encode(n) for n in absent],
                        secure=False) is None


def _storage_vector() -> tuple[bytes, list[bytes], int]:
    answer = rpc_result(CONFORMANCE / "execution-apis/prague-chain_9772380/eth_getProof"
                        "/get-account-proof-with-storage.io")
    entry = answer["storageProof"][0]
    return (bytes.fromhex(answer["storageHash"][2:]),
            [bytes.fromhex(n[2:]) for n in entry["proof"]], int(entry["key"], 16))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_single_byte_change_is_rejected(data: st.DataObject) -> None:
    root, proof, slot = _storage_vector()
    i = data.draw(st.integers(0, len(proof) - 1))
    j = data.draw(st.integers(0, len(proof[i]) - 1))
    flip = data.draw(st.integers(1, 255))
    tampered = list(proof)
    tampered[i] = proof[i][:j] + bytes([proof[i][j] ^ flip]) + proof[i][j + 1 :]
    try:
        verify_storage(root, slot, tampered)
    except ProofError:
        return
    raise AssertionError("a tampered proof was accepted")


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_truncated_dropped_or_reordered_nodes_are_rejected(data: st.DataObject) -> None:
    root, proof, slot = _storage_vector()
    how = data.draw(st.sampled_from(["truncate", "drop", "swap", "extra"]))
    mutated = list(proof)
    if how == "truncate":
        i = data.draw(st.integers(0, len(proof) - 1))
        mutated[i] = proof[i][: data.draw(st.integers(0, len(proof[i]) - 1))]
    elif how == "drop":
        del mutated[data.draw(st.integers(0, len(proof) - 1))]
    elif how == "swap" and len(proof) > 1:
        mutated[0], mutated[-1] = mutated[-1], mutated[0]
    else:
        mutated.append(proof[0])
    try:
        verify_storage(root, slot, mutated)
    except ProofError:
        return
    raise AssertionError(f"a {how} proof was accepted")


def test_wrong_root_or_wrong_key_is_rejected() -> None:
    root, proof, slot = _storage_vector()
    assert verify_storage(root, slot, proof) == 0x2a
    for bad_root in (keccak(root), b"\x00" * 32):
        try:
            verify_storage(bad_root, slot, proof)
            raise AssertionError("accepted under a wrong root")
        except ProofError:
            pass
    # Another key either fails or is proven absent, never given this slot's value.
    with contextlib.suppress(ProofError):
        assert verify_storage(root, slot + 1, proof) != 0x2a


def test_claimed_value_must_equal_proven_value() -> None:
    answer = rpc_result(CONFORMANCE / "execution-apis/prague-chain_9772380/eth_getProof"
                        "/get-account-proof-with-storage.io")
    block = rpc_result(CONFORMANCE / "execution-apis/prague-chain_9772380/eth_getBlockByNumber"
                       "/get-latest.io")
    from proofs import header_from_rpc

    state_root = header_from_rpc(block).state_root
    lie = dict(answer, storageProof=[dict(answer["storageProof"][0], value="0x39")])
    try:
        verify_get_proof(state_root, lie)
        raise AssertionError("a lying value was accepted")
    except ProofError as e:
        assert "0x39" in str(e) and "0x2a" in str(e)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_node_swapped_in_from_another_proof_is_rejected(data: st.DataObject) -> None:
    entries = {i.to_bytes(4, "big"): b"v" * 40 for i in range(400)}
    t = secure_trie(entries)
    a, b = data.draw(st.sampled_from(list(entries))), data.draw(st.sampled_from(list(entries)))
    proof_a, proof_b = encoded_proof(t, a), encoded_proof(t, b)
    i = data.draw(st.integers(0, len(proof_a) - 1))
    j = data.draw(st.integers(0, len(proof_b) - 1))
    swapped = list(proof_a)
    swapped[i] = proof_b[j]
    if swapped == proof_a:
        return  # the two proofs share this node: nothing was swapped
    try:
        value = verify_proof(t.root_hash, a, swapped)
    except ProofError:
        return
    raise AssertionError(f"accepted a proof with a foreign node, value {value!r}")


def test_the_fast_keccak_is_keccak() -> None:
    from proofs.keccak import keccak as ours

    assert ours(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    for n in (0, 1, 31, 32, 136, 137, 532, 4096):
        data = bytes(range(256)) * (n // 256 + 1)
        assert ours(data[:n]) == keccak(data[:n])  # eth_hash's default backend


def test_no_default_value_proves_anything() -> None:
    # Nomad: a zero root, or an empty proof against a real root, proves nothing; only the
    # empty trie's own root proves, as the spec says, that a key is absent.
    t = HexaryTrie({})
    t[keccak(b"\x01" * 20)] = rlp.encode([1, 2, b"\x00" * 32, b"\x00" * 32])
    for root in (bytes(32), t.root_hash):
        with pytest.raises(ProofIncomplete):
            verify_account(root, b"\x01" * 20, [])
        with pytest.raises(ProofIncomplete):
            verify_storage(root, 0, [])
    assert verify_storage(keccak(rlp.encode(b"")), 0, []) == 0
