"""The light registry reader reads what Feast's ``FeatureStore`` reads, or declines (``None``)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from xiva_source.feast_plugin.registry_reader import FEAST_TYPE_NAMES, read_repository
from xiva_source.pipeline.sources import source_kind


def _copy(applied: Path, target: Path) -> Path:
    shutil.copytree(applied, target, ignore=shutil.ignore_patterns("__pycache__"))
    config_path = target / "feature_store.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["registry"] = "data/registry.db"  # relative, as the shipped repository writes it
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def _edit(repo: Path, **changes: object) -> None:
    path = repo / "feature_store.yaml"
    config = yaml.safe_load(path.read_text())
    config.update(changes)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _views(store: object) -> list[tuple[object, ...]]:
    return [
        (
            fv.name,
            fv.online,
            [(f.name, str(f.dtype)) for f in fv.features],
            list(fv.join_keys),
            fv.ttl,
            source_kind(fv.batch_source) if fv.batch_source is not None else None,
            list(fv.materialization_intervals),
            fv.most_recent_end_time,
        )
        for fv in store.list_feature_views()  # type: ignore[attr-defined]
    ]


def _on_demand(store: object) -> list[tuple[object, ...]]:
    return [
        (v.name, [(f.name, str(f.dtype)) for f in v.features])
        for v in store.list_on_demand_feature_views()  # type: ignore[attr-defined]
    ]


def test_it_reads_the_views_feast_reads(applied_feast_repo: Path, tmp_path: Path) -> None:
    from feast import FeatureStore

    repo = _copy(applied_feast_repo, tmp_path / "repo")
    store = FeatureStore(repo_path=str(repo))
    fv = store.get_feature_view("customer_features")
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    store.registry.apply_materialization(fv, store.project, start, end)  # as feast materialize

    light = read_repository(repo)
    store = FeatureStore(repo_path=str(repo))
    assert light is not None
    assert light.project == store.project
    assert _views(light) == _views(store)
    assert _on_demand(light) == _on_demand(store)
    ends = {v.name: v.most_recent_end_time for v in light.list_feature_views()}
    assert ends["customer_features"] == end
    assert Path(light.config.registry.path) == repo / "data" / "registry.db"
    assert light.config.offline_store.snapshot_table == store.config.offline_store.snapshot_table
    assert light.config.entity_key_serialization_version == 3
    assert light.redis_from_settings is True


def test_every_type_name_is_the_one_feast_prints() -> None:
    from feast.types import from_value_type
    from feast.value_type import ValueType

    for name, printed in FEAST_TYPE_NAMES.items():
        assert str(from_value_type(ValueType[name])) == printed


def test_a_repository_never_applied_reads_as_empty(
    applied_feast_repo: Path, tmp_path: Path
) -> None:
    repo = _copy(applied_feast_repo, tmp_path / "repo")
    (repo / "data" / "registry.db").unlink()
    light = read_repository(repo)
    assert light is not None
    assert light.list_feature_views() == []
    assert light.list_on_demand_feature_views() == []


@pytest.mark.parametrize(
    "change",
    [
        {"registry": {"registry_type": "sql", "path": "postgresql://x/y"}},
        {"registry": "s3://bucket/registry.db"},
        {"project": None},
    ],
    ids=["sql-registry", "remote-file", "no-project"],
)
def test_what_it_cannot_read_as_feast_does_is_left_to_feast(
    applied_feast_repo: Path, tmp_path: Path, change: dict[str, object]
) -> None:
    repo = _copy(applied_feast_repo, tmp_path / "repo")
    _edit(repo, **change)
    assert read_repository(repo) is None


def test_a_corrupted_registry_or_no_yaml_is_left_to_feast(
    applied_feast_repo: Path, tmp_path: Path
) -> None:
    repo = _copy(applied_feast_repo, tmp_path / "repo")
    (repo / "data" / "registry.db").write_bytes(b"\xff\xfe not a registry")
    assert read_repository(repo) is None
    assert read_repository(tmp_path / "nowhere") is None


def test_the_online_store_says_where_redis_comes_from(
    applied_feast_repo: Path, tmp_path: Path
) -> None:
    repo = _copy(applied_feast_repo, tmp_path / "repo")
    store_type = "xiva_source.feast_plugin.online_store.LoyaltyRedisOnlineStore"
    _edit(repo, online_store={"type": store_type, "connection_string": "localhost:6379"})
    light = read_repository(repo)
    assert light is not None and light.redis_from_settings is None  # the yaml's: Feast's
    _edit(repo, online_store={"type": "sqlite", "path": "data/online.db"})
    light = read_repository(repo)
    assert light is not None and light.redis_from_settings is False


def test_environment_variables_are_expanded_as_feast_does(
    applied_feast_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _copy(applied_feast_repo, tmp_path / "repo")
    project = yaml.safe_load((repo / "feature_store.yaml").read_text())["project"]
    monkeypatch.setenv("H20_PROJECT", project)
    _edit(repo, project="${H20_PROJECT}")
    light = read_repository(repo)
    assert light is not None and light.project == project
    assert len(light.list_feature_views()) == 3
