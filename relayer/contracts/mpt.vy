# pragma version ~=0.4.3
"""
@title mpt
@notice RLP decoding (Yellow Paper appendix B) and Merkle-Patricia proof verification
        (appendix D; EIP-1186 proofs) on chain, for a contract that must believe a
        value in another chain's state: a storage slot of a known account, in the state
        whose root is named by a block header. The walk follows Lido's
        `StateProofVerifier` / `MerklePatriciaProofVerifier`:
        header → state root → account leaf (its storage root) → storage leaf.
@dev Fails closed on everything it does not prove: a node that does not hash to the
     reference pointing at it, a proof with nodes left over or missing, a non-canonical
     or overrunning RLP length, a hex-prefix flag above 3, a leaf that ends before the
     key does, and embedded nodes (children shorter than 32 bytes, stored inside their
     parent). Embedded nodes never occur on the paths this verifier is used for (an
     account leaf and a 32-byte storage value each encode to more than 32 bytes), so
     refusing them costs nothing and keeps the walk to hashed nodes only.
"""

MAX_NODE: constant(uint256) = 1024   # a branch node is at most 532 bytes; a header ~600
MAX_DEPTH: constant(uint256) = 16    # nodes per proof: 64 nibbles of path, hashed nodes
MAX_ITEMS: constant(uint256) = 24   # a header has up to 21 fields; a branch 17


struct Item:
    offset: uint256  # where the payload starts
    length: uint256  # payload bytes
    is_list: bool
    end: uint256     # the position after the item


@pure
@internal
def _byte(b: Bytes[MAX_NODE], i: uint256) -> uint256:
    return convert(convert(slice(b, i, 1), bytes1), uint256)


@pure
@internal
def _uint(b: Bytes[MAX_NODE], start: uint256, length: uint256) -> uint256:
    """Big-endian unsigned integer of `length` ≤ 32 bytes at `start`."""
    assert length <= 32, "integer longer than 32 bytes"
    v: uint256 = 0
    for i: uint256 in range(32):
        if i == length:
            break
        v = (v << 8) | self._byte(b, start + i)
    return v


@pure
@internal
def _item(b: Bytes[MAX_NODE], pos: uint256) -> Item:
    """The RLP item starting at `pos`; reverts when it runs past the end of `b` or its
    length is not in canonical (shortest) form."""
    n: uint256 = len(b)
    assert pos < n, "RLP item past the end"
    p0: uint256 = self._byte(b, pos)
    offset: uint256 = 0
    length: uint256 = 0
    is_list: bool = p0 >= 192
    if p0 < 128:
        return Item(offset=pos, length=1, is_list=False, end=pos + 1)
    elif p0 < 184:
        offset = pos + 1
        length = p0 - 128
        if length == 1:
            assert offset < n, "RLP item past the end"
            assert self._byte(b, offset) >= 128, "non-canonical RLP single byte"
    elif p0 < 192:
        ll: uint256 = p0 - 183
        assert pos + 1 + ll <= n, "RLP length past the end"
        length = self._uint(b, pos + 1, ll)
        assert length >= 56 and self._byte(b, pos + 1) != 0, "non-canonical RLP length"
        offset = pos + 1 + ll
    elif p0 < 248:
        offset = pos + 1
        length = p0 - 192
    else:
        ll: uint256 = p0 - 247
        assert pos + 1 + ll <= n, "RLP length past the end"
        length = self._uint(b, pos + 1, ll)
        assert length >= 56 and self._byte(b, pos + 1) != 0, "non-canonical RLP length"
        offset = pos + 1 + ll
    assert offset + length <= n, "RLP item past the end"
    return Item(offset=offset, length=length, is_list=is_list, end=offset + length)


@pure
@internal
def _items(b: Bytes[MAX_NODE]) -> DynArray[Item, MAX_ITEMS]:
    """The items of the RLP list that is the whole of `b`."""
    top: Item = self._item(b, 0)
    assert top.is_list, "RLP is not a list"
    assert top.end == len(b), "bytes after the RLP list"
    items: DynArray[Item, MAX_ITEMS] = []
    pos: uint256 = top.offset
    for i: uint256 in range(MAX_ITEMS + 1):
        if pos == top.end:
            return items
        assert i < MAX_ITEMS, "RLP list too long"
        it: Item = self._item(b, pos)
        assert it.end <= top.end, "RLP item overruns its list"
        items.append(it)
        pos = it.end
    raise "RLP list too long"


@pure
@internal
def _word(b: Bytes[MAX_NODE], it: Item) -> bytes32:
    """A 32-byte string item (a hash)."""
    assert not it.is_list and it.length == 32, "not a 32-byte hash"
    return extract32(b, it.offset)


@pure
@internal
def _nibble(path: bytes32, i: uint256) -> uint256:
    return (convert(path, uint256) >> (4 * (63 - i))) & 15


@pure
@internal
def verify(root: bytes32, path: bytes32, proof: DynArray[Bytes[MAX_NODE], MAX_DEPTH]) -> Bytes[MAX_NODE]:
    """
    @notice The value at the secure-trie path `path` (keccak of the key) in the trie
            whose root hash is `root`; empty when the proof shows the key is absent.
            Reverts when the proof proves neither.
    """
    expected: bytes32 = root
    pos: uint256 = 0  # nibbles of the path consumed
    n: uint256 = len(proof)
    for i: uint256 in range(MAX_DEPTH):
        assert i < n, "proof incomplete"
        node: Bytes[MAX_NODE] = proof[i]
        assert keccak256(node) == expected, "node hash mismatch"
        items: DynArray[Item, MAX_ITEMS] = self._items(node)
        last: bool = i + 1 == n
        if len(items) == 17:
            if pos == 64:
                assert last, "proof has extra nodes"
                v: Item = items[16]
                assert not v.is_list, "branch value is a list"
                return slice(node, v.offset, v.length)
            child: Item = items[self._nibble(path, pos)]
            pos += 1
            if not child.is_list and child.length == 0:
                assert last, "proof has extra nodes"
                return b""
            assert not child.is_list and child.length == 32, "embedded node"
            expected = extract32(node, child.offset)
        elif len(items) == 2:
            key: Item = items[0]
            assert not key.is_list and key.length > 0, "bad hex-prefix path"
            b0: uint256 = self._byte(node, key.offset)
            flag: uint256 = b0 >> 4
            assert flag <= 3, "bad hex-prefix flag"
            odd: bool = (flag & 1) == 1
            if not odd:
                assert (b0 & 15) == 0, "bad hex-prefix padding"
            count: uint256 = 2 * (key.length - 1)
            if odd:
                count += 1
            assert pos + count <= 64, "path longer than the key"
            diverges: bool = False
            for j: uint256 in range(64):
                if j == count:
                    break
                # nibble j of the segment: after the flag nibble (odd) or flag byte (even)
                k: uint256 = j
                if not odd:
                    k = j + 2
                else:
                    k = j + 1
                nib: uint256 = self._byte(node, key.offset + k // 2)
                if k % 2 == 0:
                    nib = nib >> 4
                else:
                    nib = nib & 15
                if nib != self._nibble(path, pos + j):
                    diverges = True
                    break
            if diverges:
                assert last, "proof has extra nodes"
                return b""
            pos += count
            if flag >= 2:
                assert pos == 64, "leaf ends before the key does"
                assert last, "proof has extra nodes"
                v: Item = items[1]
                assert not v.is_list, "leaf value is a list"
                return slice(node, v.offset, v.length)
            expected = self._word(node, items[1])
        else:
            raise "node is neither branch nor extension/leaf"
    raise "proof too deep"


@pure
@internal
def account_storage_root(state_root: bytes32, account: address,
                         proof: DynArray[Bytes[MAX_NODE], MAX_DEPTH]) -> bytes32:
    """The storage root of `account` in the state `state_root`; reverts when the proof
    shows no such account (an absent account has no storage to prove)."""
    leaf: Bytes[MAX_NODE] = self.verify(state_root, keccak256(slice(convert(account, bytes32), 12, 20)), proof)
    assert len(leaf) > 0, "account absent"
    fields: DynArray[Item, MAX_ITEMS] = self._items(leaf)
    assert len(fields) == 4, "account is not [nonce, balance, storageRoot, codeHash]"
    return self._word(leaf, fields[2])


@pure
@internal
def storage_value(storage_root: bytes32, slot: uint256,
                  proof: DynArray[Bytes[MAX_NODE], MAX_DEPTH]) -> uint256:
    """The word at `slot` in the storage trie `storage_root` (0 when absent)."""
    leaf: Bytes[MAX_NODE] = self.verify(storage_root, keccak256(convert(slot, bytes32)), proof)
    if len(leaf) == 0:
        return 0
    it: Item = self._item(leaf, 0)
    assert not it.is_list and it.end == len(leaf), "storage value is not one RLP string"
    assert it.length > 0 and self._byte(leaf, it.offset) != 0, "non-canonical storage value"
    return self._uint(leaf, it.offset, it.length)


@pure
@internal
def header_state(header: Bytes[MAX_NODE]) -> (bytes32, uint256):
    """(state root, number) of an RLP block header: items 3 and 8."""
    fields: DynArray[Item, MAX_ITEMS] = self._items(header)
    assert len(fields) >= 15, "not a block header"
    number: Item = fields[8]
    assert not number.is_list, "header number is a list"
    return self._word(header, fields[3]), self._uint(header, number.offset, number.length)
