"""The job's start-up: Feast imported without typeguard's instrumentation (fresh processes)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from xiva_source.feast_plugin.startup import skip_feast_type_instrumentation
skipped = skip_feast_type_instrumentation() if sys.argv[1] == "skip" else False
from feast import FeatureView
names = FeatureView.__init__.__code__.co_names
print(skipped, "typeguard" in names, skip_feast_type_instrumentation())
"""


def _probe(mode: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.mark.usefixtures("subprocesses")
def test_feast_classes_are_not_instrumented_once_skipped_before_the_import() -> None:
    # skipped, instrumented, a second call after the import has no effect
    assert _probe("skip") == "True False False"
    assert _probe("plain") == "False True False"  # everyone else keeps Feast's checks
