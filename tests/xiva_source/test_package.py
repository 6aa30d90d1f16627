"""The package's public surface: every exported name resolves, and the light path stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import xiva_source


def test_every_public_name_resolves() -> None:
    for name in xiva_source.__all__:
        assert getattr(xiva_source, name) is not None, name


@pytest.mark.usefixtures("subprocesses")
def test_importing_the_client_does_not_import_feast() -> None:
    code = "import sys, xiva_source; print('feast' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.usefixtures("subprocesses")
def test_module_cli_lists_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "xiva_source", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("usage", "materialize", "refresh", "demo", "simulator"):
        assert command in out.stdout
