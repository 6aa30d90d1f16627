"""A failed run's problem and fix: project errors speak for themselves, foreign ones are mapped
to their failure domain in one place. Pure logic, no service."""

from __future__ import annotations

import redis.exceptions
import sqlalchemy.exc

from xiva_source.dwh.errors import DwhError
from xiva_source.errors import DataSourceError, LoyaltyError
from xiva_source.feast_plugin.errors import OnlineStoreError, RepositoryError
from xiva_source.jobs.errors import LockLostError, MaterializationFailedError
from xiva_source.jobs.failures import RERUN_NOTE, as_project_error, explain_failure
from xiva_source.jobs.summary import RunSummary


def test_a_data_source_error_gives_its_own_problem_and_hint() -> None:
    error = DataSourceError("xiva", "401 Unauthorized", hint="Check XIVA_API_PASSWORD.")

    cause, fix = explain_failure(error, "view customer_features")

    assert cause == "view customer_features: Data source 'xiva' failed: 401 Unauthorized"
    assert fix == f"Check XIVA_API_PASSWORD. {RERUN_NOTE}"


def test_project_errors_pass_through_unchanged() -> None:
    for error in (DwhError("no table"), LockLostError(), OnlineStoreError("down")):
        assert as_project_error(error) is error
    cause, fix = explain_failure(LockLostError(), "view v")
    assert cause.startswith("view v: the materialization lock was lost")
    assert fix.startswith("Check that Redis is reachable") and fix.endswith(RERUN_NOTE)


def test_redis_errors_are_the_online_store_s() -> None:
    error = as_project_error(redis.exceptions.ConnectionError("Error 111 connecting"))

    assert isinstance(error, OnlineStoreError)
    assert error.problem == "the online store (Redis) failed: Error 111 connecting"
    assert "REDIS_URL" in error.fix
    cause, _ = explain_failure(redis.exceptions.TimeoutError("t"), "the lock")
    assert cause.startswith("the lock: the online store (Redis) failed")


def test_sql_errors_are_the_dwh_s() -> None:
    error = as_project_error(
        sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("password=pw-123 refused"))
    )
    assert isinstance(error, DwhError) and error.source == "dwh"
    assert "DWH_URL" in error.fix


def test_feast_errors_are_the_repository_s() -> None:
    from feast.errors import FeatureViewNotFoundException

    error = as_project_error(FeatureViewNotFoundException("v", "p"))
    assert isinstance(error, RepositoryError) and "make apply" in error.fix


def test_anything_else_names_its_type_and_points_at_the_log() -> None:
    error = as_project_error(KeyError("boom"))
    assert type(error) is LoyaltyError
    assert error.problem == "KeyError: 'boom'" and "--log-level" in error.fix


def test_secrets_never_reach_the_problem() -> None:
    cause, _ = explain_failure(
        ValueError("cannot reach postgresql://root:dwh-pw@db/x"), "view customer_features"
    )
    assert "dwh-pw" not in cause


def test_the_failed_run_error_carries_problem_fix_and_summary() -> None:
    summary = RunSummary(status="failed", mode="dwh")
    cause, fix = explain_failure(DwhError("relation missing"), "view v")

    error = MaterializationFailedError(summary, cause, fix)

    assert error.summary is summary and error.exit_code == 1
    assert error.problem == cause and error.cause == cause and error.fix == fix
    assert str(error) == f"{cause}. Fix: {fix}"
