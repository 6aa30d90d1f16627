"""Fixtures of the segmentation tests: a Feast repository of their own on the real Redis.

``seg_repo`` is session-scoped: 600 customers (+3 stale) under a project unique per session,
shaped like ``feature_repo/`` (facts stored, counts derived when read; the builder is
``tests/support/segmentation/repo.py``). Its Redis keys are deleted at session end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.segmentation.repo import FeastRepo, build_repo, delete_project_keys


@pytest.fixture(scope="session")
def seg_repo(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[FeastRepo]:
    """The session's Feast repo: 600 customers (+3 stale) on the real Redis."""
    project = f"segtest_{uuid.uuid4().hex[:10]}"
    repo = build_repo(tmp_path_factory.mktemp("seg_repo"), project, 600, redis_url)
    yield repo
    delete_project_keys(project, redis_url)
