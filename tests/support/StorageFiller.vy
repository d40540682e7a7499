# pragma version ~=0.4.3
"""
@notice Test fixture: fills a mapping with pseudo-random words so that storage tries of
        thousands of slots can be proven on anvil.
"""

data: public(HashMap[uint256, uint256])


@external
def fill(start: uint256, count: uint256, seed: uint256):
    for i: uint256 in range(count, bound=1024):
        self.data[start + i] = convert(keccak256(abi_encode(seed, start + i)), uint256)


@external
def put(keys: DynArray[uint256, 1024], values: DynArray[uint256, 1024]):
    for i: uint256 in range(len(keys), bound=1024):
        self.data[keys[i]] = values[i]
