"""Repository copies of ``feature_repo/`` for the Feast tests (fixtures: tests/conftest.py).

- :func:`make_repo`: ``feature_repo/`` copied under a project (and snapshot table) of its own and
  applied in-process, as ``feast apply`` would;
- :class:`FeastEnv`: what the ``feast_env`` fixture set up (the simulator, the DWH, Redis);
- ``FEAST_SIM_CUSTOMERS``: the size of the Feast tests' simulator (``feast_sim``).
- :func:`feast_cli` / :func:`feast_cli_on_terminal`: the Feast CLI in its own process (stderr
  captured, or on a pseudo-terminal as in an interactive shell).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    import pytest

    from xiva_source.demo.data import DemoDwh
    from xiva_source.simulator import XivaSimulator

__all__ = [
    "FEAST_SIM_CUSTOMERS",
    "ROOT",
    "FeastEnv",
    "feast_cli",
    "feast_cli_on_terminal",
    "make_repo",
]

ROOT = Path(__file__).resolve().parents[2]
"""The repository's root (``feature_repo/`` is below it)."""
FEAST_SIM_CUSTOMERS = 400
"""Customers of ``feast_sim``, the Feast tests' simulator."""


def make_repo(target: Path, project: str, *, snapshot_table: str | None = None) -> Path:
    """Copy ``feature_repo/`` to ``target`` with its own project/registry and apply it in-process.

    Args:
        target: Directory to create.
        project: Feast project name (letters, digits, ``_``).
        snapshot_table: Snapshot table of this copy (default: the repository's).

    Returns:
        ``target``.
    """
    from feast.repo_config import load_repo_config
    from feast.repo_operations import apply_total

    shutil.copytree(
        ROOT / "feature_repo", target, ignore=shutil.ignore_patterns("data", "__pycache__")
    )
    path = target / "feature_store.yaml"
    config = yaml.safe_load(path.read_text())
    config["project"] = project
    config["registry"] = str(target / "data" / "registry.db")
    if snapshot_table:
        config["offline_store"]["snapshot_table"] = snapshot_table
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    cwd = os.getcwd()
    # Like the feast CLI: the repository's files import each other (from entities import ...).
    sys.path.insert(0, str(target))
    try:
        apply_total(load_repo_config(target, path), target, skip_source_validation=False)
    finally:
        os.chdir(cwd)  # apply_total chdirs into the repository
        sys.path.remove(str(target))
        for module in target.glob("*.py"):
            sys.modules.pop(module.stem, None)
    return target


@dataclass
class FeastEnv:
    """What ``feast_env`` set up."""

    sim: XivaSimulator
    dwh: DemoDwh
    dwh_url: str
    redis_url: str
    monkeypatch: pytest.MonkeyPatch

    def set_mode(self, mode: str, strategy: str = "xiva_first") -> None:
        """Set ``FEATURE_STORE_DATA_SOURCE`` / ``FEATURE_STORE_MERGE_STRATEGY``."""
        self.monkeypatch.setenv("FEATURE_STORE_DATA_SOURCE", mode)
        self.monkeypatch.setenv("FEATURE_STORE_MERGE_STRATEGY", strategy)


def feast_cli(repo: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``feast -c REPO ARGS`` in its own process, as a user runs it (the test's environment).

    Args:
        repo: The repository (``feast -c``).
        args: The command and its arguments, e.g. ``"materialize-incremental", "2026-..."``.
        timeout: Seconds before the process is killed.

    Returns:
        The finished process (its return code, stdout and stderr as text).
    """
    feast = Path(sys.executable).parent / "feast"
    return subprocess.run(
        [str(feast), "-c", str(repo), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def feast_cli_on_terminal(repo: Path, *args: str, timeout: float = 300) -> tuple[int, str, str]:
    """``feast -c REPO ARGS`` with its stderr on a pseudo-terminal, as in an interactive shell.

    Args:
        repo: The repository (``feast -c``).
        args: The command and its arguments.
        timeout: Seconds before the process is killed.

    Returns:
        The return code, stdout, and everything written to the terminal (stderr).
    """
    import fcntl
    import pty
    import struct
    import termios
    import threading

    feast = Path(sys.executable).parent / "feast"
    master, slave = pty.openpty()
    # A window of 24 x 120, as a terminal has (a pty starts at 0 x 0: tqdm would draw nothing).
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    chunks: list[bytes] = []

    def drain() -> None:  # a full terminal buffer would block the child
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        process = subprocess.run(
            [str(feast), "-c", str(repo), *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
            timeout=timeout,
        )
    finally:
        os.close(slave)
        reader.join(timeout=10)
        os.close(master)
    return process.returncode, process.stdout, b"".join(chunks).decode(errors="replace")
