"""Proof verification speed on real anvil proofs: ours against ``trie``'s baseline.

Fills a storage trie of 12,000 slots on a local anvil chain, fetches 2,000 storage
proofs (20 ``eth_getProof`` answers of 100 slots, each with its account proof) and
times, from the same JSON answers:

- ours: ``proofs.verify_get_proofs`` (hex decoding, hashing, walking, value checks);
- baseline: ``trie.HexaryTrie.get_from_proof`` for each answer's account proof and each
  storage proof (hex decoding and RLP decoding of the nodes it needs included);
- hash bound: keccak alone over every node of every proof, the cost no verifier that
  hashes each node it is given can beat.

All three hash with the same keccak (``proofs.keccak``; ``trie`` through eth-hash's
``ETH_HASH_BACKEND``, set here before it is imported), so the ratios compare verifiers,
not hash libraries.

Prints one JSON object. Run: ``.venv/bin/python -m benchmarks.bench_proofs``.
"""

from __future__ import annotations

import os

# Before ``trie`` (and eth-hash's automatic backend) is imported: the baseline hashes
# with the same keccak as ours when the faster backend is installed.
os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rlp
from trie import HexaryTrie

from devnet.localnet import LocalNet
from proofs import header_from_rpc, verify_get_proofs
from proofs.keccak import keccak
from tests.support.storage import StorageFiller

N_SLOTS = 12_000
N_PROOFS = 2_000
PER_CALL = 100
REPEATS = 5


def baseline(state_root: bytes, answers: list[dict[str, Any]]) -> int:
    values = 0
    for answer in answers:
        address = bytes.fromhex(answer["address"][2:])
        account_nodes = [rlp.decode(bytes.fromhex(n[2:])) for n in answer["accountProof"]]
        account = rlp.decode(HexaryTrie.get_from_proof(state_root, keccak(address),
                                                       account_nodes))
        storage_root = account[2]
        for entry in answer["storageProof"]:
            key = keccak(bytes.fromhex(entry["key"][2:].rjust(64, "0")))
            nodes = [rlp.decode(bytes.fromhex(n[2:])) for n in entry["proof"]]
            if HexaryTrie.get_from_proof(storage_root, key, nodes):
                values += 1
    return values


def hash_bound(answers: list[dict[str, Any]]) -> Callable[[], None]:
    nodes = [bytes.fromhex(n[2:]) for a in answers for n in a["accountProof"]]
    nodes += [bytes.fromhex(n[2:]) for a in answers for e in a["storageProof"]
              for n in e["proof"]]

    def run() -> None:
        for n in nodes:
            keccak(n)
    return run


def best_of(fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, LocalNet(Path(tmp)) as net:
        filler = StorageFiller(net.chain(41099, block_time_s=None))
        block = filler.fill(N_SLOTS, seed=3)
        state_root = header_from_rpc(filler.raw_block(block)).state_root
        keys = list(range(0, N_SLOTS, N_SLOTS // N_PROOFS))[:N_PROOFS]
        answers = [filler.proof(keys[i : i + PER_CALL], block)
                   for i in range(0, len(keys), PER_CALL)]
    n = sum(len(a["storageProof"]) for a in answers)
    assert baseline(state_root, answers) == n  # both verify every proof before timing
    assert sum(len(v.storage) for v in verify_get_proofs(state_root, answers)) == n
    ours_s = best_of(lambda: verify_get_proofs(state_root, answers))
    base_s = best_of(lambda: baseline(state_root, answers))
    bound_s = best_of(hash_bound(answers))
    print(json.dumps({
        "storage_proofs": n,
        "trie_slots": N_SLOTS,
        "ours_proofs_per_s": round(n / ours_s),
        "baseline_proofs_per_s": round(n / base_s),
        "ratio": round(base_s / ours_s, 2),
        "hash_bound_proofs_per_s": round(n / bound_s),
        "ours_vs_hash_bound": round(ours_s / bound_s, 2),
    }))


if __name__ == "__main__":
    main()
