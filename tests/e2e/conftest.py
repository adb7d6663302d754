"""The end-to-end tests share one state folder for the session, so the base image is built
once and later tests use the image the bake test made."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bakehouse-state")
