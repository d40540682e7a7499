"""Creating topics and waiting until every broker knows them, on the real local broker."""

from __future__ import annotations

import asyncio

import pytest

from bus.admin import create_missing, topic_partitions, wait_known

pytestmark = pytest.mark.integration


def test_a_created_topic_is_known_and_an_unknown_one_is_named(broker: str) -> None:
    async def run() -> None:
        await create_missing(broker, [("admin-probe-changelog", 3,
                                       {"cleanup.policy": "compact"})])
        await create_missing(broker, [("admin-probe-changelog", 5, {})])  # exists: kept
        await wait_known(broker, ["admin-probe-changelog"])
        assert await topic_partitions(broker, ["admin-probe-changelog"]) == {
            "admin-probe-changelog": [0, 1, 2]}
        with pytest.raises(TimeoutError, match="admin-probe-missing"):
            await wait_known(broker, ["admin-probe-changelog", "admin-probe-missing"], 1.0)

    asyncio.run(run())
