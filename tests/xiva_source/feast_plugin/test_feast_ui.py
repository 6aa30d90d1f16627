"""``feast ui`` browses the applied repository (README, "Training and serving with Feast"): Feast's
web UI starts from the repository (it needs the ``grpcio`` packages the project depends on), serves
its page, lists the project and answers the registry REST API the page reads (views, services,
data sources)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.feast_serve import FeastUi


@pytest.mark.usefixtures("subprocesses", "local_servers")
def test_feast_ui_serves_the_page_and_the_repository(applied_feast_repo: Path) -> None:
    project = yaml.safe_load((applied_feast_repo / "feature_store.yaml").read_text())["project"]
    with FeastUi(applied_feast_repo) as ui:
        status, page = ui.get("/")
        assert status == 200
        assert "<title>Feast" in page or 'id="root"' in page

        status, listing = ui.get("/projects-list.json")
        assert status == 200
        assert [p["id"] for p in listing["projects"]] == [project]

        status, views = ui.get(f"/api/v1/feature_views?project={project}")
        assert status == 200
        names = {v["spec"]["name"] for v in views["featureViews"]}
        assert {"customer_features", "customer_dwh_features"} <= names

        status, services = ui.get(f"/api/v1/feature_services?project={project}")
        assert status == 200
        assert "ml_features" in {s["spec"]["name"] for s in services["featureServices"]}

        status, sources = ui.get(f"/api/v1/data_sources?project={project}")
        assert status == 200
        assert sources["dataSources"]
