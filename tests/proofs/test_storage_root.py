"""Storage proofs are checked against the storage root the *account proof* proves, never
against the ``storageHash`` a provider claims beside it."""

from __future__ import annotations

from typing import Any

import pytest
import rlp
from trie import HexaryTrie

from proofs import ProofError, verify_get_proof
from proofs.keccak import keccak

ADDRESS = bytes.fromhex("5e" * 20)
SLOT = 7


def storage_with(value: int) -> HexaryTrie:
    trie = HexaryTrie({})
    trie[keccak(SLOT.to_bytes(32, "big"))] = rlp.encode(value)
    return trie


def answer(state: HexaryTrie, storage: HexaryTrie, value: int) -> dict[str, Any]:
    key = keccak(SLOT.to_bytes(32, "big"))
    return {
        "address": "0x" + ADDRESS.hex(),
        "accountProof": ["0x" + rlp.encode(n).hex() for n in state.get_proof(keccak(ADDRESS))],
        "storageHash": "0x" + storage.root_hash.hex(),
        "storageProof": [{"key": hex(SLOT), "value": hex(value),
                          "proof": ["0x" + rlp.encode(n).hex() for n in storage.get_proof(key)]}],
    }


def chain_state(storage: HexaryTrie) -> HexaryTrie:
    state = HexaryTrie({})
    state[keccak(ADDRESS)] = rlp.encode([0, 0, storage.root_hash, keccak(b"")])
    return state


def test_an_answer_without_a_claimed_storage_hash_verifies_against_the_proven_root() -> None:
    real = storage_with(42)
    state = chain_state(real)
    honest = answer(state, real, 42)
    del honest["storageHash"]  # optional: the account proof alone says the root
    assert verify_get_proof(state.root_hash, honest).storage == {SLOT: 42}


def test_a_forged_storage_trie_with_its_own_storage_hash_is_refused() -> None:
    real, forged = storage_with(42), storage_with(10**24)
    state = chain_state(real)
    lie = answer(state, forged, 10**24)  # self-consistent: proofs match the claimed hash
    with pytest.raises(ProofError):
        verify_get_proof(state.root_hash, lie)
    del lie["storageHash"]  # and with no claim to compare, the proofs alone fail
    with pytest.raises(ProofError):
        verify_get_proof(state.root_hash, lie)
