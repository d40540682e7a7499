"""Block headers for every fork, and the block hash keccak256(RLP(header)).

The header's field list grows with forks (Yellow Paper §4.3, then EIP-1559 London,
EIP-4895 Shanghai, EIP-4844/EIP-4788 Cancun, EIP-7685 Prague). The field set is decided
from the fields present in the JSON-RPC block, in fork order, never from a count: a
later fork's field without all earlier ones is an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import rlp

from proofs import rpcdata
from proofs.errors import HeaderHashMismatch, MalformedInput
from proofs.keccak import keccak

# (JSON-RPC name, kind) in RLP order; kind "data" is bytes, "quantity" an integer.
FRONTIER_FIELDS: tuple[tuple[str, str], ...] = (
    ("parentHash", "data"),
    ("sha3Uncles", "data"),
    ("miner", "data"),
    ("stateRoot", "data"),
    ("transactionsRoot", "data"),
    ("receiptsRoot", "data"),
    ("logsBloom", "data"),
    ("difficulty", "quantity"),
    ("number", "quantity"),
    ("gasLimit", "quantity"),
    ("gasUsed", "quantity"),
    ("timestamp", "quantity"),
    ("extraData", "data"),
    ("mixHash", "data"),
    ("nonce", "data"),
)

# Fields each fork appends, in order.
FORK_FIELDS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("london", (("baseFeePerGas", "quantity"),)),
    ("shanghai", (("withdrawalsRoot", "data"),)),
    (
        "cancun",
        (("blobGasUsed", "quantity"), ("excessBlobGas", "quantity"),
         ("parentBeaconBlockRoot", "data")),
    ),
    ("prague", (("requestsHash", "data"),)),
)


@dataclass(frozen=True)
class BlockHeader:
    """A header whose hash has been recomputed; ``fields`` are in RLP order."""

    fork: str
    number: int
    hash: bytes
    parent_hash: bytes
    state_root: bytes
    timestamp: int
    rlp: bytes


# ethereum/tests fixtures name five header fields differently from JSON-RPC.
ETHEREUM_TESTS_NAMES = {
    "uncleHash": "sha3Uncles",
    "coinbase": "miner",
    "transactionsTrie": "transactionsRoot",
    "receiptTrie": "receiptsRoot",
    "bloom": "logsBloom",
}


def header_fields(block: Mapping[str, object]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The fork and ordered field list that ``block`` carries."""
    fields = list(FRONTIER_FIELDS)
    fork = "frontier"
    missing: str | None = None
    for name, added in FORK_FIELDS:
        present = [f for f, _ in added if block.get(f) is not None]
        if not present:
            missing = missing or name
            continue
        if missing is not None or len(present) != len(added):
            raise MalformedInput("header", f"fields of {name} present without those of "
                                 f"{missing or name}")
        fields.extend(added)
        fork = name
    return fork, tuple(fields)


def layouts() -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    """Every header layout, oldest first: (fork that introduced it, ordered fields)."""
    result = [("frontier", FRONTIER_FIELDS)]
    for name, added in FORK_FIELDS:
        result.append((name, result[-1][1] + added))
    return result


def header_from_rlp(encoded: bytes, expected_hash: bytes | None = None) -> BlockHeader:
    """Decode a raw header (``debug_getRawHeader``) and, if given, check its hash.

    A raw header carries no names, so its layout is the one fork layout with exactly
    as many fields as the RLP list has items.
    """
    try:
        items = rlp.decode(encoded)
    except rlp.exceptions.DecodingError as e:
        raise MalformedInput("header RLP", str(e)) from e
    if not isinstance(items, list) or any(not isinstance(i, bytes) for i in items):
        raise MalformedInput("header RLP", "expected a flat list of byte strings")
    layout = next(((f, fields) for f, fields in layouts() if len(fields) == len(items)), None)
    if layout is None:
        raise MalformedInput("header RLP", f"{len(items)} fields match no fork's layout")
    _, fields = layout
    block: dict[str, object] = {}
    for (name, kind), item in zip(fields, items, strict=True):
        block[name] = hex(int.from_bytes(item, "big")) if kind == "quantity" else "0x" + item.hex()
    if expected_hash is not None:
        block["hash"] = "0x" + expected_hash.hex()
    header = header_from_rpc(block)
    if header.rlp != encoded:
        raise MalformedInput("header RLP", "not in canonical form (re-encoding differs)")
    return header


def header_from_rpc(block: Mapping[str, object]) -> BlockHeader:
    """Rebuild the header of an ``eth_getBlockByNumber`` result and check its hash.

    Also accepts the field names of ethereum/tests fixtures. Without a ``hash`` field
    the hash is computed, not checked.
    """
    block = {ETHEREUM_TESTS_NAMES.get(k, k): v for k, v in block.items()}
    for name, _ in FRONTIER_FIELDS:
        if block.get(name) is None:
            raise MalformedInput("header", f"missing field {name}")
    fork, fields = header_fields(block)
    values: list[object] = []
    for name, kind in fields:
        if kind == "quantity":
            values.append(rpcdata.quantity(block[name], name))
        else:
            values.append(rpcdata.data(block[name], name))
    encoded = rlp.encode(values)
    actual = keccak(encoded)
    number = rpcdata.quantity(block["number"], "number")
    if "hash" in block and block["hash"] is not None:
        expected = rpcdata.data(block["hash"], "hash")
        if expected != actual:
            raise HeaderHashMismatch(number, expected, actual)
    return BlockHeader(
        fork=fork,
        number=number,
        hash=actual,
        parent_hash=rpcdata.data(block["parentHash"], "parentHash"),
        state_root=rpcdata.data(block["stateRoot"], "stateRoot"),
        timestamp=rpcdata.quantity(block["timestamp"], "timestamp"),
        rlp=encoded,
    )
