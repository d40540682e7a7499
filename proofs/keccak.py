"""Keccak-256, the hash behind every commitment, trie node and EIP-712 digest here.

The ``safe-pysha3`` C extension (eth-hash's ``pysha3`` backend) when it is
installed, as it is cheaper per call on the short inputs hashed here; eth-hash's
pycryptodome backend otherwise. The same function either way.
"""

from __future__ import annotations

from collections.abc import Callable

from eth_hash.main import Keccak256
from eth_hash.utils import load_backend

keccak: Callable[[bytes], bytes]
try:
    # The extension eth-hash's pysha3 backend wraps, called directly: the wrapper's type
    # checks cost ~0.5 µs a call, a third of hashing a 32-byte word (five digests per
    # attestation, several nodes per proof).
    from sha3 import keccak_256

    def keccak(data: bytes) -> bytes:
        return keccak_256(data).digest()
except ImportError:  # the extension is optional; the answer is the same
    keccak = Keccak256(load_backend("pycryptodome"))
