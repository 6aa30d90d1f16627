"""The README's training and serving examples run as written against a materialized repository."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from tests.support.feast import FeastEnv
from xiva_source.jobs.materialize import run_materialization

README = Path(__file__).resolve().parents[2] / "README.md"


def _examples() -> list[str]:
    text = README.read_text()
    section = text.split("## Training and serving with Feast", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_training_and_serving_examples_run(feast_env: FeastEnv, feast_repo: Path) -> None:
    assert run_materialization(str(feast_repo), progress=False).status == "ok"
    training_code, serving_code = _examples()
    os.chdir(feast_repo.parent)  # the examples use repo_path="feature_repo"
    (feast_repo.parent / "feature_repo").symlink_to(feast_repo)

    scope: dict[str, object] = {}
    exec(compile(training_code, "README training example", "exec"), scope)
    training = scope["training"]
    assert isinstance(training, pd.DataFrame) and len(training) > 0
    assert {"churned", "total_revenue", "churn_score", "customer_status"} <= set(training.columns)
    assert training["total_revenue"].notna().any()

    exec(compile(serving_code, "README serving example", "exec"), scope)
    features = scope["features"]
    assert isinstance(features, dict)
    assert features["customer_id"] == ["c3a23741-f257-4fec-ac82-b61554ae0811"]
    assert "customer_tier" in features and "churn_score" in features
