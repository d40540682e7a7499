# pragma version ~=0.4.3
"""
@title PriceFeed
@notice A round-based price feed in the shape of a Chainlink aggregator: one feed per
        asset, answers with `decimals` decimals, every update opens a new round.
"""

struct Round:
    answer: int256
    started_at: uint256
    updated_at: uint256

event AnswerUpdated:
    current: indexed(int256)
    roundId: indexed(uint256)
    updatedAt: uint256

asset: public(bytes32)
decimals: public(uint8)
owner: public(address)
latestRound: public(uint80)
rounds: HashMap[uint80, Round]


@deploy
def __init__(asset: bytes32, decimals: uint8):
    self.asset = asset
    self.decimals = decimals
    self.owner = msg.sender


@external
def submit(answer: int256):
    assert msg.sender == self.owner, "only owner"
    assert answer > 0, "answer must be positive"
    round_id: uint80 = self.latestRound + 1
    self.rounds[round_id] = Round(answer=answer, started_at=block.timestamp, updated_at=block.timestamp)
    self.latestRound = round_id
    log AnswerUpdated(current=answer, roundId=convert(round_id, uint256), updatedAt=block.timestamp)


@view
@external
def latestRoundData() -> (uint80, int256, uint256, uint256, uint80):
    r: Round = self.rounds[self.latestRound]
    return (self.latestRound, r.answer, r.started_at, r.updated_at, self.latestRound)


@view
@external
def latestAnswer() -> int256:
    return self.rounds[self.latestRound].answer
