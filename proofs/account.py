"""Turning an EIP-1186 ``eth_getProof`` answer into verified values.

The account proof is checked against the block's state root (key: keccak(address));
each storage proof against the account's storage root (key: keccak(slot)). An absent
account proves the empty account; an absent slot proves zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import rlp

from proofs import rpcdata
from proofs.errors import InvalidNode, MalformedInput, ValueMismatch
from proofs.keccak import keccak
from proofs.mpt import BLANK_ROOT, NodeCache, verify_proof

EMPTY_CODE_HASH = keccak(b"")


@dataclass(frozen=True)
class Account:
    nonce: int
    balance: int
    storage_root: bytes
    code_hash: bytes


EMPTY_ACCOUNT = Account(nonce=0, balance=0, storage_root=BLANK_ROOT, code_hash=EMPTY_CODE_HASH)


@dataclass(frozen=True)
class VerifiedAccount:
    address: bytes
    account: Account
    storage: Mapping[int, int]  # slot -> value, every one proven


def verify_account(state_root: bytes, address: bytes, proof: Sequence[bytes],
                   cache: NodeCache | None = None) -> Account:
    """The account at ``address`` proven against ``state_root``."""
    encoded = verify_proof(state_root, address, proof, label="account proof", cache=cache)
    if encoded is None:
        return EMPTY_ACCOUNT
    try:
        nonce, balance, storage_root, code_hash = rlp.decode(encoded)
    except (rlp.exceptions.DecodingError, ValueError) as e:
        raise InvalidNode("account proof", len(proof) - 1,
                          "account is not [nonce, balance, root, code]") from e
    return Account(
        nonce=int.from_bytes(nonce, "big"),
        balance=int.from_bytes(balance, "big"),
        storage_root=storage_root,
        code_hash=code_hash,
    )


def verify_storage(storage_root: bytes, slot: int, proof: Sequence[bytes],
                   cache: NodeCache | None = None) -> int:
    """The storage word at ``slot`` proven against ``storage_root`` (0 when absent)."""
    label = f"storage proof of slot 0x{slot:x}"
    encoded = verify_proof(storage_root, slot.to_bytes(32, "big"), proof, label=label,
                           cache=cache)
    if encoded is None:
        return 0
    try:
        value = rlp.decode(encoded)
    except rlp.exceptions.DecodingError as e:
        raise InvalidNode(label, len(proof) - 1, "slot value is not RLP bytes") from e
    if not isinstance(value, bytes) or len(value) > 32 or value[:1] == b"\x00":
        raise InvalidNode(label, len(proof) - 1, "slot value is not a minimal 32-byte word")
    return int.from_bytes(value, "big")


def verify_get_proofs(
    state_root: bytes, answers: Sequence[Mapping[str, object]]
) -> list[VerifiedAccount]:
    """Verify many ``eth_getProof`` answers of one block in one call.

    Nodes shared between the answers (the state trie's upper levels, an account's
    storage root and its upper branches) are hashed and decoded once.
    """
    cache = NodeCache()
    return [verify_get_proof(state_root, answer, cache) for answer in answers]


def verify_get_proof(state_root: bytes, answer: Mapping[str, object],
                     cache: NodeCache | None = None) -> VerifiedAccount:
    """Verify a whole ``eth_getProof`` result against ``state_root``.

    Every field the answer claims (nonce, balance, roots, slot values) must equal what
    the proof proves; the proven values are returned.
    """
    cache = cache if cache is not None else NodeCache()
    address = rpcdata.data(answer.get("address"), "address")
    account_proof = _nodes(answer.get("accountProof"), "accountProof")
    account = verify_account(state_root, address, account_proof, cache)
    _claim("storageHash", answer, account.storage_root.hex(), rpcdata.data)
    _claim("balance", answer, account.balance, rpcdata.quantity)
    _claim("nonce", answer, account.nonce, rpcdata.quantity)
    storage: dict[int, int] = {}
    entries = answer.get("storageProof") or []
    if not isinstance(entries, list):
        raise MalformedInput("storageProof", "expected a list")
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise MalformedInput("storageProof", "entries must be objects")
        slot = int.from_bytes(rpcdata.data(_even(entry.get("key")), "storageProof.key"), "big")
        value = verify_storage(account.storage_root, slot, _nodes(entry.get("proof"), "proof"),
                               cache)
        claimed = rpcdata.quantity(entry.get("value"), "storageProof.value")
        if claimed != value:
            raise ValueMismatch(f"slot 0x{slot:x}", hex(claimed), hex(value))
        storage[slot] = value
    return VerifiedAccount(address=address, account=account, storage=storage)


def _nodes(value: object, what: str) -> list[bytes]:
    if not isinstance(value, list):
        raise MalformedInput(what, "expected a list of hex nodes")
    return [rpcdata.data(v, what) for v in value]


def _even(value: object) -> object:
    # Clients return storage keys both padded and as quantities ("0x0"): accept both.
    if isinstance(value, str) and value.startswith("0x") and len(value) % 2:
        return "0x0" + value[2:]
    return value


def _claim(field: str, answer: Mapping[str, object], proven: object, parse: object) -> None:
    if field not in answer:
        return
    claimed = parse(answer[field], field)  # type: ignore[operator]
    if isinstance(claimed, bytes):
        claimed = claimed.hex()
    if claimed != proven:
        raise ValueMismatch(field, str(claimed), str(proven))
