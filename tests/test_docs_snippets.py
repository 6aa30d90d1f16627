"""Every ```python and ```bash block of README.md and docs/*.md runs as pasted.

The convention is in ``tests/support/snippets.py``: a block without a ``<!-- not-runnable: reason
-->`` marker runs from a project directory like a fresh clone's after ``make apply`` and a first
``make materialize``: ``feature_repo/`` applied (a project of this module's own), ``.venv`` beside
it, the simulator that ``make demo`` runs (seed 42, so the documented customer ids exist), the
DWH filled for it, Redis, and the settings in the environment (as ``.env`` would give them).
Python blocks run in a fresh namespace each, bash blocks with ``bash -e -o pipefail``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.feast import make_repo
from tests.support.services import SIM_PASSWORD, SIM_USER
from tests.support.snippets import ROOT, Snippet, snippets

SNIPPETS = snippets()
RUNNABLE = [s for s in SNIPPETS if s.runnable]
DOCS_CUSTOMERS = 400


@dataclass
class DocsProject:
    """The directory snippets run in and the environment they see."""

    path: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def docs_project(
    pg_base_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DocsProject]:
    """A loaded project: the seed-42 simulator, its DWH, ``feature_repo/`` applied, materialized."""
    import redis
    import sqlalchemy as sa

    from xiva_source.demo.data import create_demo_dwh
    from xiva_source.dwh import dispose_engines
    from xiva_source.jobs.materialize import run_materialization
    from xiva_source.simulator import SimulatorConfig, XivaSimulator

    suffix = uuid.uuid4().hex[:10]
    project, schema = f"loyalty_docs_{suffix}", f"docs_{suffix}"
    sim = XivaSimulator(
        SimulatorConfig(customers=DOCS_CUSTOMERS, seed=42, users={SIM_USER: SIM_PASSWORD})
    ).start()
    admin = sa.create_engine(pg_base_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    dwh_url = f"{pg_base_url}?options=-csearch_path%3D{schema}"
    path = tmp_path_factory.mktemp("docs") / "project"
    path.mkdir()
    for name in (".venv", "Makefile"):  # `make apply` and `.venv/bin/...` as in a clone
        (path / name).symlink_to(ROOT / name)
    env = {
        "XIVA_API_BASE_URL": sim.base_url,
        "XIVA_API_USERNAME": SIM_USER,
        "XIVA_API_PASSWORD": SIM_PASSWORD,
        "XIVA_REQUESTS_PER_SECOND": "0",
        "XIVA_REDIS_PREFIX": f"docs-{suffix}",
        "DWH_URL": dwh_url,
        "REDIS_URL": redis_url,
        "FEATURE_STORE_DATA_SOURCE": "auto",
        "FEATURE_STORE_ENV_FILE": "none",
    }
    try:
        create_demo_dwh(dwh_url, sim, seed=42)
        repo = make_repo(path / "feature_repo", project, snapshot_table=f"snap_{suffix}")
        with pytest.MonkeyPatch.context() as mp:
            for name, value in env.items():
                mp.setenv(name, value)
            assert run_materialization(repo, progress=False).status == "ok"
        yield DocsProject(path, env)
    finally:
        sim.stop()
        client = redis.Redis.from_url(redis_url)
        for pattern in (b"*" + project.encode() + b"*", f"*docs-{suffix}*".encode()):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)
        client.close()
        dispose_engines()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_every_skipped_block_says_why() -> None:
    skipped = [s for s in SNIPPETS if s.skip_reason is not None]
    assert skipped and RUNNABLE
    assert all(len(s.skip_reason or "") > 10 for s in skipped)


@pytest.mark.usefixtures("subprocesses")
@pytest.mark.parametrize("snippet", RUNNABLE, ids=[s.id for s in RUNNABLE])
def test_snippet_runs_as_pasted(
    snippet: Snippet, docs_project: DocsProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in docs_project.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(docs_project.path)
    if snippet.language == "python":
        monkeypatch.syspath_prepend(str(docs_project.path))
        code = compile(snippet.code, snippet.id, "exec")
        exec(code, {"__name__": "__snippet__"})
        return
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [shutil.which("bash") or "/bin/bash", "-e", "-o", "pipefail", "-c", snippet.code],
        cwd=docs_project.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"{snippet.id}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
