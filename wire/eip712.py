"""EIP-712 digests of margin attestations, as MarginOracle.vy computes them.

digest = keccak256(0x19 ‖ 0x01 ‖ domainSeparator ‖ hashStruct(attestation)) (EIP-712),
with the domain bound to the destination chain id and oracle address, so each chain
gets its own digest for the same figures. All fields are static ABI types, so
``abi.encode`` is the concatenation of 32-byte words.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from proofs.keccak import keccak

DOMAIN_TYPEHASH = keccak(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
ATTESTATION_TYPEHASH = keccak(
    b"Attestation(address trader,uint64 sequence,int256 equity,uint256 maintenanceMargin,"
    b"uint256 initialMargin,uint256 freeCollateral,uint32 paramsVersion,"
    b"bytes32 sourceBlocksHash,uint64 sourceBlock,uint64 validUntil)"
)
NAME_HASH = keccak(b"xmargin MarginOracle")
VERSION_HASH = keccak(b"1")
WORD_MODULUS = 1 << 256


def word(value: int | bytes) -> bytes:
    """One ABI word: a two's-complement int or a left-padded address / bytes32."""
    if isinstance(value, bytes):
        return value.rjust(32, b"\x00")
    return (value % WORD_MODULUS).to_bytes(32, "big")


@lru_cache(maxsize=64)  # one per satellite chain: the same few, on every attestation
def domain_separator(chain_id: int, oracle: bytes) -> bytes:
    return keccak(DOMAIN_TYPEHASH + NAME_HASH + VERSION_HASH + word(chain_id) + word(oracle))


def source_blocks_hash(blocks: Iterable[tuple[int, int, bytes]]) -> bytes:
    """keccak over (chain id, number, hash) words of every source block, sorted by chain."""
    return keccak(b"".join(word(c) + word(n) + word(h) for c, n, h in sorted(blocks)))


def attestation_struct_hash(
    *, trader: bytes, sequence: int, equity_wad: int, maintenance_margin_wad: int,
    initial_margin_wad: int, free_collateral_wad: int, params_version: int,
    source_blocks_hash: bytes, source_block: int, valid_until: int,
) -> bytes:
    """hashStruct(attestation) (EIP-712). ``source_block``: the newest block of the
    destination chain the figures have seen (its CreditLedger counts only draws after
    it), so the struct differs per chain."""
    return keccak(b"".join((
        ATTESTATION_TYPEHASH, word(trader), word(sequence), word(equity_wad),
        word(maintenance_margin_wad), word(initial_margin_wad), word(free_collateral_wad),
        word(params_version), word(source_blocks_hash), word(source_block), word(valid_until))))


def typed_data_digest(chain_id: int, oracle: bytes, struct_hash: bytes) -> bytes:
    """keccak256(0x19 ‖ 0x01 ‖ domainSeparator ‖ hashStruct) (EIP-712)."""
    return keccak(b"\x19\x01" + domain_separator(chain_id, oracle) + struct_hash)


def attestation_digest(
    *, chain_id: int, oracle: bytes, trader: bytes, sequence: int, equity_wad: int,
    maintenance_margin_wad: int, initial_margin_wad: int, free_collateral_wad: int,
    params_version: int, source_blocks_hash: bytes, source_block: int, valid_until: int,
) -> bytes:
    """The digest one chain's MarginOracle checks."""
    return typed_data_digest(chain_id, oracle, attestation_struct_hash(
        trader=trader, sequence=sequence, equity_wad=equity_wad,
        maintenance_margin_wad=maintenance_margin_wad, initial_margin_wad=initial_margin_wad,
        free_collateral_wad=free_collateral_wad, params_version=params_version,
        source_blocks_hash=source_blocks_hash, source_block=source_block,
        valid_until=valid_until))


def refusal_digest(trader: bytes, sequence: int, differences: Iterable[str]) -> bytes:
    """What an attester signs to own a refusal (off chain only): an EIP-191 personal
    message over keccak("xmargin refusal" ‖ trader ‖ sequence ‖ keccak(differences)).
    Its 0x19 0x45 prefix can never be an EIP-712 digest (0x19 0x01), so a refusal's
    signature authorises nothing on any oracle."""
    body = keccak(b"xmargin refusal" + word(trader) + word(sequence)
                  + keccak("\n".join(differences).encode()))
    return keccak(b"\x19Ethereum Signed Message:\n32" + body)


PAUSE_TYPEHASH = keccak(b"Pause(address trader,uint256 nonce)")
PAUSE_ALL_TYPEHASH = keccak(b"PauseAll(uint256 nonce)")
UNPAUSE_TYPEHASH = keccak(b"Unpause(address trader,uint256 nonce)")
UNPAUSE_ALL_TYPEHASH = keccak(b"UnpauseAll(uint256 nonce)")


def pause_digest(chain_id: int, oracle: bytes, trader: bytes | None, nonce: int,
                 lift: bool = False) -> bytes:
    """What MarginOracle.vy checks to pause (one signer) or, with ``lift``, to unpause (a
    threshold) ``trader``, or the whole oracle when ``trader`` is ``None``, at its
    ``pause_nonce``. Four types of their own, so no attestation's or rotation's
    signature is ever one of these."""
    if trader is None:
        struct_hash = keccak((UNPAUSE_ALL_TYPEHASH if lift else PAUSE_ALL_TYPEHASH) + word(nonce))
    else:
        struct_hash = keccak((UNPAUSE_TYPEHASH if lift else PAUSE_TYPEHASH) + word(trader)
                             + word(nonce))
    return typed_data_digest(chain_id, oracle, struct_hash)


SETTLEMENT_ORDER_TYPEHASH = keccak(
    b"SettlementOrder(address trader,uint64 nonce,uint256 srcChain,address srcVault,"
    b"address srcVenue,uint256 dstChain,address dstVault,address dstVenue,uint256 amount,"
    b"uint64 expiry)"
)
SOURCE_HEADER_TYPEHASH = keccak(b"SourceHeader(uint256 chainId,uint256 number,bytes32 blockHash)")


def settlement_order_struct_hash(
    *, trader: bytes, nonce: int, src_chain: int, src_vault: bytes, src_venue: bytes,
    dst_chain: int, dst_vault: bytes, dst_venue: bytes, amount: int, expiry: int,
) -> bytes:
    """hashStruct(SettlementOrder), as ClearingVault.vy computes it: what the source
    vault's receipt slot holds once the order is debited, and (under the source
    oracle's domain) what the signer threshold signs."""
    return keccak(b"".join((
        SETTLEMENT_ORDER_TYPEHASH, word(trader), word(nonce), word(src_chain), word(src_vault),
        word(src_venue), word(dst_chain), word(dst_vault), word(dst_venue), word(amount),
        word(expiry))))


def source_header_digest(chain_id: int, oracle: bytes, source_chain: int, number: int,
                         block_hash: bytes) -> bytes:
    """What a destination chain's signers sign to vouch that ``block_hash`` is the final
    block ``number`` of ``source_chain`` (under the destination oracle's domain)."""
    return typed_data_digest(chain_id, oracle, keccak(
        SOURCE_HEADER_TYPEHASH + word(source_chain) + word(number) + word(block_hash)))
