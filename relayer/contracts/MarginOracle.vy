# pragma version ~=0.4.3
"""
@title MarginOracle
@notice Accepts EIP-712 margin attestations signed by at least `threshold` registered
        signers and keeps the latest one per trader. Venues on this chain ask it for the
        trader's free collateral on this chain; off-chain readers use the same views.
@dev The domain separator binds the chain id and this contract's address (EIP-712), so
     an attestation for another chain or another oracle does not verify here. The
     per-trader sequence only rises, so a replayed or older attestation reverts.
     Signatures must come sorted by signer address, which makes duplicates impossible
     without a per-call set; each must be canonical (low s, v of 27 or 28) and recover
     a registered signer (ecrecover's zero address never is one). The signer set is replaced only by a rotation signed by a
     threshold of the current set over (new signers, new threshold, rotation nonce);
     the nonce rises with every rotation, so a rotation cannot be replayed.

     Pauses (a watchtower's brake, as CCIP's Risk Management Network curses a lane):
     any one current signer may pause one trader, or the whole oracle, with its own
     signature over a `Pause` (or `PauseAll`) at the current `pause_nonce`; only a
     threshold of the current set may lift it (`Unpause`, `UnpauseAll`). While a trader
     is paused its credit reads as 0 (venues refuse new risk: `CreditLedger` asks
     `is_paused`) and no attestation flags it for liquidation; attestations are still
     accepted (the threshold stays the verifier; a pause only stops what rides on it).
     Every unpause raises `pause_nonce`, so an unpause is single-use and pause
     signatures made before it no longer verify. Each purpose has its own EIP-712 type:
     a signature over an attestation can authorise neither a pause nor a rotation.
"""

struct Attestation:
    trader: address
    sequence: uint64
    equity: int256
    maintenance_margin: uint256
    initial_margin: uint256
    free_collateral: uint256
    params_version: uint32
    source_blocks_hash: bytes32
    source_block: uint64  # the newest block of this chain the figures have seen
    valid_until: uint64

event SignersRotated:
    nonce: uint256
    threshold: uint256
    signers: DynArray[address, 32]

event AttestationAccepted:
    trader: indexed(address)
    sequence: uint64
    equity: int256
    maintenance_margin: uint256
    free_collateral: uint256
    digest: bytes32  # what the signers signed: a watchtower compares it with its own

event Paused:
    trader: indexed(address)
    signer: address
    nonce: uint256

event PausedAll:
    signer: address
    nonce: uint256

event Unpaused:
    trader: indexed(address)
    nonce: uint256

event UnpausedAll:
    nonce: uint256

MAX_SIGNERS: constant(uint256) = 32

EIP712_DOMAIN_TYPEHASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
ATTESTATION_TYPEHASH: constant(bytes32) = keccak256(
    "Attestation(address trader,uint64 sequence,int256 equity,uint256 maintenanceMargin,uint256 initialMargin,uint256 freeCollateral,uint32 paramsVersion,bytes32 sourceBlocksHash,uint64 sourceBlock,uint64 validUntil)"
)
ROTATION_TYPEHASH: constant(bytes32) = keccak256(
    "Rotation(bytes32 signersHash,uint256 threshold,uint256 nonce)"
)
PAUSE_TYPEHASH: constant(bytes32) = keccak256("Pause(address trader,uint256 nonce)")
PAUSE_ALL_TYPEHASH: constant(bytes32) = keccak256("PauseAll(uint256 nonce)")
UNPAUSE_TYPEHASH: constant(bytes32) = keccak256("Unpause(address trader,uint256 nonce)")
UNPAUSE_ALL_TYPEHASH: constant(bytes32) = keccak256("UnpauseAll(uint256 nonce)")
# The upper bound of a canonical signature's s (EIP-2): for every (r, s) the pair
# (r, n - s) recovers the same signer, so only the low half is accepted.
SECP256K1N_HALF: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168
NAME_HASH: constant(bytes32) = keccak256("xmargin MarginOracle")
VERSION_HASH: constant(bytes32) = keccak256("1")

CACHED_CHAIN_ID: immutable(uint256)
CACHED_DOMAIN_SEPARATOR: immutable(bytes32)
is_signer: public(HashMap[address, bool])
signers: public(DynArray[address, MAX_SIGNERS])
threshold: public(uint256)
rotation_nonce: public(uint256)
latest: public(HashMap[address, Attestation])
trader_paused: public(HashMap[address, bool])
all_paused: public(bool)
pause_nonce: public(uint256)


@deploy
def __init__(signers: DynArray[address, MAX_SIGNERS], threshold: uint256):
    self._install(signers, threshold)
    CACHED_CHAIN_ID = chain.id
    CACHED_DOMAIN_SEPARATOR = self._separator()


@view
@internal
def _separator() -> bytes32:
    return keccak256(abi_encode(EIP712_DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, chain.id, self))


@view
@internal
def _domain_separator() -> bytes32:
    # Recomputed when the chain id is no longer the one at deployment (a fork), as
    # OpenZeppelin's EIP712 does: a signature for the old id must not verify here.
    if chain.id == CACHED_CHAIN_ID:
        return CACHED_DOMAIN_SEPARATOR
    return self._separator()


@view
@external
def DOMAIN_SEPARATOR() -> bytes32:
    return self._domain_separator()


@internal
def _install(signers: DynArray[address, MAX_SIGNERS], threshold: uint256):
    assert threshold > 0 and threshold <= len(signers), "bad threshold"
    for old: address in self.signers:
        self.is_signer[old] = False
    for s: address in signers:
        assert s != empty(address), "zero signer"
        assert not self.is_signer[s], "duplicate signer"
        self.is_signer[s] = True
    self.signers = signers
    self.threshold = threshold


@view
@internal
def _recover(d: bytes32, sig: Bytes[65]) -> address:
    """The signer of a canonical signature over `d` (never the zero address)."""
    assert len(sig) == 65, "bad signature length"
    r: uint256 = convert(extract32(sig, 0), uint256)
    s: uint256 = convert(extract32(sig, 32), uint256)
    v: uint256 = convert(slice(sig, 64, 1), uint256)
    assert s <= SECP256K1N_HALF, "malleable signature"
    assert v == 27 or v == 28, "bad signature v"
    signer: address = ecrecover(d, v, r, s)
    assert signer != empty(address), "bad signature"
    return signer


@view
@internal
def _check_signatures(d: bytes32, signatures: DynArray[Bytes[65], MAX_SIGNERS]):
    previous: address = empty(address)
    for sig: Bytes[65] in signatures:
        signer: address = self._recover(d, sig)
        assert convert(signer, uint160) > convert(previous, uint160), "signers unsorted or duplicate"
        assert self.is_signer[signer], "unknown signer"
        previous = signer
    assert len(signatures) >= self.threshold, "below threshold"


@view
@internal
def _rotation_digest(signers: DynArray[address, MAX_SIGNERS], threshold: uint256, nonce: uint256) -> bytes32:
    struct_hash: bytes32 = keccak256(abi_encode(
        ROTATION_TYPEHASH, keccak256(abi_encode(signers)), threshold, nonce))
    return keccak256(concat(b"\x19\x01", self._domain_separator(), struct_hash))


@view
@external
def rotation_digest(signers: DynArray[address, MAX_SIGNERS], threshold: uint256) -> bytes32:
    """The digest the current signers sign to install ``signers`` at the next nonce."""
    return self._rotation_digest(signers, threshold, self.rotation_nonce)


@external
def rotate(signers: DynArray[address, MAX_SIGNERS], threshold: uint256,
           signatures: DynArray[Bytes[65], MAX_SIGNERS]):
    self._check_signatures(self._rotation_digest(signers, threshold, self.rotation_nonce), signatures)
    self._install(signers, threshold)
    self.rotation_nonce += 1
    log SignersRotated(nonce=self.rotation_nonce, threshold=threshold, signers=signers)


@view
@internal
def _digest(a: Attestation) -> bytes32:
    struct_hash: bytes32 = keccak256(abi_encode(
        ATTESTATION_TYPEHASH, a.trader, a.sequence, a.equity, a.maintenance_margin,
        a.initial_margin, a.free_collateral, a.params_version, a.source_blocks_hash,
        a.source_block, a.valid_until,
    ))
    return keccak256(concat(b"\x19\x01", self._domain_separator(), struct_hash))


@view
@external
def digest(a: Attestation) -> bytes32:
    return self._digest(a)


@external
def submit(a: Attestation, signatures: DynArray[Bytes[65], MAX_SIGNERS]):
    # No default counts (Nomad): an attestation names a trader and the blocks it saw.
    assert a.trader != empty(address), "zero trader"
    assert a.source_blocks_hash != empty(bytes32), "no source blocks"
    assert a.sequence > self.latest[a.trader].sequence, "stale sequence"
    assert convert(a.valid_until, uint256) >= block.timestamp, "expired"
    d: bytes32 = self._digest(a)
    self._check_signatures(d, signatures)
    self.latest[a.trader] = a
    log AttestationAccepted(trader=a.trader, sequence=a.sequence, equity=a.equity,
                            maintenance_margin=a.maintenance_margin,
                            free_collateral=a.free_collateral, digest=d)


@view
@internal
def _typed(struct_hash: bytes32) -> bytes32:
    return keccak256(concat(b"\x19\x01", self._domain_separator(), struct_hash))


@view
@external
def check_signed(struct_hash: bytes32, signatures: DynArray[Bytes[65], MAX_SIGNERS]) -> bytes32:
    """
    @notice Revert unless a threshold of the current signers signed the EIP-712 digest
            of `struct_hash` under this oracle's domain; return that digest. For the
            contracts of this chain that ride on the same signer set (the clearing
            vault), each of which computes `struct_hash` with its own type hash, so a
            signature made for one purpose never verifies for another.
    """
    d: bytes32 = self._typed(struct_hash)
    self._check_signatures(d, signatures)
    return d


@view
@external
def pause_digest(trader: address) -> bytes32:
    """What one signer signs to pause `trader` at the current pause nonce."""
    return self._typed(keccak256(abi_encode(PAUSE_TYPEHASH, trader, self.pause_nonce)))


@view
@external
def pause_all_digest() -> bytes32:
    return self._typed(keccak256(abi_encode(PAUSE_ALL_TYPEHASH, self.pause_nonce)))


@view
@external
def unpause_digest(trader: address) -> bytes32:
    """What a threshold of signers signs to lift `trader`'s pause."""
    return self._typed(keccak256(abi_encode(UNPAUSE_TYPEHASH, trader, self.pause_nonce)))


@view
@external
def unpause_all_digest() -> bytes32:
    return self._typed(keccak256(abi_encode(UNPAUSE_ALL_TYPEHASH, self.pause_nonce)))


@external
def pause(trader: address, signature: Bytes[65]):
    """Pause `trader` on the signature of one current signer (anyone may send it)."""
    assert trader != empty(address), "zero trader"
    d: bytes32 = self._typed(keccak256(abi_encode(PAUSE_TYPEHASH, trader, self.pause_nonce)))
    signer: address = self._recover(d, signature)
    assert self.is_signer[signer], "unknown signer"
    self.trader_paused[trader] = True
    log Paused(trader=trader, signer=signer, nonce=self.pause_nonce)


@external
def pause_all(signature: Bytes[65]):
    """Pause every trader on this oracle on the signature of one current signer."""
    d: bytes32 = self._typed(keccak256(abi_encode(PAUSE_ALL_TYPEHASH, self.pause_nonce)))
    signer: address = self._recover(d, signature)
    assert self.is_signer[signer], "unknown signer"
    self.all_paused = True
    log PausedAll(signer=signer, nonce=self.pause_nonce)


@external
def unpause(trader: address, signatures: DynArray[Bytes[65], MAX_SIGNERS]):
    assert self.trader_paused[trader], "not paused"
    self._check_signatures(
        self._typed(keccak256(abi_encode(UNPAUSE_TYPEHASH, trader, self.pause_nonce))), signatures)
    self.trader_paused[trader] = False
    self.pause_nonce += 1
    log Unpaused(trader=trader, nonce=self.pause_nonce)


@external
def unpause_all(signatures: DynArray[Bytes[65], MAX_SIGNERS]):
    assert self.all_paused, "not paused"
    self._check_signatures(
        self._typed(keccak256(abi_encode(UNPAUSE_ALL_TYPEHASH, self.pause_nonce))), signatures)
    self.all_paused = False
    self.pause_nonce += 1
    log UnpausedAll(nonce=self.pause_nonce)


@view
@internal
def _paused(trader: address) -> bool:
    return self.all_paused or self.trader_paused[trader]


@view
@external
def is_paused(trader: address) -> bool:
    """Is `trader` paused, alone or with the whole oracle?"""
    return self._paused(trader)


@view
@internal
def _live(a: Attestation) -> bool:
    # A paused trader's attestation is suspect: it grants no credit and flags nobody.
    return a.sequence > 0 and convert(a.valid_until, uint256) >= block.timestamp \
        and not self._paused(a.trader)


@view
@external
def free_collateral(trader: address) -> uint256:
    """The attested free collateral (USD, 18 decimals); 0 once the attestation expired
    or while the trader is paused."""
    a: Attestation = self.latest[trader]
    if not self._live(a):
        return 0
    return a.free_collateral


@view
@external
def credit_of(trader: address) -> (uint256, uint64):
    """(free collateral, or 0 once expired or paused; the block of this chain it has seen)."""
    a: Attestation = self.latest[trader]
    if not self._live(a):
        return 0, a.source_block
    return a.free_collateral, a.source_block


@view
@external
def is_liquidatable(trader: address) -> bool:
    """Flagged on an attestation that has not expired: a stale flag liquidates nobody,
    since the trader may have recovered since."""
    a: Attestation = self.latest[trader]
    return self._live(a) and a.equity < convert(a.maintenance_margin, int256)
