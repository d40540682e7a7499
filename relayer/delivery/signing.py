"""Keys from encrypted keystore files, and attestation signatures.

Keys stay inside ``LocalAccount`` objects and are never logged or formatted. A
signature is 65 bytes r ‖ s ‖ v over the EIP-712 digest; the wire format (a list of
(signer, signature) pairs) lets signatures gathered by separate nodes be combined.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import Hash32

from proofs.keccak import keccak
from relayer.errors import ConfigError
from relayer.settings import KeystoreSettings
from wire.eip712 import typed_data_digest, word


@dataclass(frozen=True)
class Signature:
    signer: str
    signature: bytes


def load_keystore(settings: KeystoreSettings, field: str) -> LocalAccount:
    """Decrypt a keystore; a missing file or wrong password raises ``ConfigError``."""
    if not settings.keystore.is_file():
        raise ConfigError(f"{field}.keystore", f"file not found: {settings.keystore}")
    if not settings.password_file.is_file():
        raise ConfigError(f"{field}.password_file", f"file not found: {settings.password_file}")
    try:
        keyfile = json.loads(settings.keystore.read_text())
        password = settings.password_file.read_text().strip()
        key = Account.decrypt(keyfile, password)
    except (ValueError, KeyError, json.JSONDecodeError) as e:
        raise ConfigError(f"{field}.keystore", f"cannot decrypt: {type(e).__name__}") from e
    return Account.from_key(key)


def write_keystore(account: LocalAccount, directory: Path, name: str,
                   password: str) -> KeystoreSettings:
    """Write ``account`` as an encrypted keystore plus a password file (mode 0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    keystore = directory / f"{name}.json"
    password_file = directory / f"{name}.password"
    keystore.write_text(json.dumps(Account.encrypt(account.key, password, kdf="scrypt",
                                                   iterations=2**14)))
    password_file.write_text(password)
    for p in (keystore, password_file):
        p.chmod(0o600)
    return KeystoreSettings(keystore=keystore, password_file=password_file)


def sign_digest(account: LocalAccount, digest: bytes) -> Signature:
    signed = account.unsafe_sign_hash(Hash32(digest))
    return Signature(signer=account.address.lower(), signature=bytes(signed.signature))


def threshold_signatures(signatures: list[Signature], threshold: int) -> list[bytes]:
    """``threshold`` signatures sorted by signer address, as MarginOracle requires."""
    ordered = sorted({s.signer: s for s in signatures}.values(),
                     key=lambda s: int(s.signer, 16))
    return [s.signature for s in ordered[:threshold]]


ROTATION_TYPEHASH = keccak(b"Rotation(bytes32 signersHash,uint256 threshold,uint256 nonce)")


def rotation_digest(chain_id: int, oracle: bytes, signers: list[str], threshold: int,
                    nonce: int) -> bytes:
    """What the current signers sign to install ``signers`` on a MarginOracle: EIP-712 over
    (keccak of the ABI-encoded signer list, threshold, the oracle's rotation nonce), in
    the oracle's own domain (chain id, address)."""
    signers_hash = keccak(abi_encode(["address[]"], [signers]))
    struct_hash = keccak(ROTATION_TYPEHASH + signers_hash + word(threshold) + word(nonce))
    return typed_data_digest(chain_id, oracle, struct_hash)
