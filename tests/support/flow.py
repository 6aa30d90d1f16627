"""What the end-to-end flow tests share: stock Feast reads (sync and async) and the
``segmentation`` command line, each asserting success."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

__all__ = ["online", "online_async", "seg"]


def online(repo: Path, ids: list[str], refs: list[str]) -> dict[str, list[Any]]:
    """Stock ``get_online_features`` of ``refs`` for the customers ``ids``, as a dict."""
    from feast import FeatureStore

    rows: dict[str, list[Any]] = (
        FeatureStore(repo_path=str(repo))
        .get_online_features(features=refs, entity_rows=[{"customer_id": c} for c in ids])
        .to_dict()
    )
    return rows


def online_async(repo: Path, ids: list[str], refs: list[str]) -> dict[str, list[Any]]:
    """The same through ``get_online_features_async`` (``feast serve``'s path)."""
    from feast import FeatureStore

    async def read() -> dict[str, list[Any]]:
        response = await FeatureStore(repo_path=str(repo)).get_online_features_async(
            features=refs, entity_rows=[{"customer_id": c} for c in ids]
        )
        rows: dict[str, list[Any]] = response.to_dict()
        return rows

    return asyncio.run(read())


def seg(capsys: pytest.CaptureFixture[str], repo: Path, segdir: Path, *argv: str) -> str:
    """``segmentation --repo <repo> --segments-dir <segdir> <argv>``: its stdout (exit 0)."""
    from xiva_source.cli import segmentation_main

    code = segmentation_main(["--repo", str(repo), "--segments-dir", str(segdir), *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out
