"""A tool a test needs that the machine may not have (Chromium, promtool, Kafka's jars):
the test is skipped with how to get it, except under ``CI=true``, where it fails."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def missing(message: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def needed(command: str, how: str) -> str:
    """The path of ``command``; without it, ``missing`` saying ``how`` to get it."""
    found = shutil.which(command)
    if found is None:
        missing(f"no {command}: {how}")
    return found
