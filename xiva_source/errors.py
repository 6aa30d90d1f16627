"""The root of the project's errors: every error carries its ``problem`` and its ``fix``.

Errors are grouped by failure domain; each branch lives in the errors module of its package, and
none of those modules imports a job or a service client::

    LoyaltyError                      problem, fix, exit_code          xiva_source.errors
    ├── ConfigurationError            a bad or missing setting (exit 2)
    ├── DataSourceError               a feature source failed in a pull
    │   ├── DwhError                  the warehouse                    xiva_source.dwh.errors
    │   └── AllSourcesFailedError     every source of a view failed    xiva_source.pipeline.errors
    ├── XivaError                     the Xiva HTTP API                xiva_source.xiva_api.errors
    │   ├── XivaAuthenticationError ─ XivaNotConfiguredError
    │   ├── XivaRateLimitError, XivaNotFoundError, XivaServerError
    │   └── XivaBadResponseError, XivaConnectionError, XivaRetryBudgetError
    ├── OnlineStoreError              Redis, the online store        xiva_source.feast_plugin.errors
    ├── RepositoryError               the Feast repository           xiva_source.feast_plugin.errors
    ├── FeatureNameCollisionError     two training-set columns alike xiva_source.feast_plugin.errors
    ├── MaterializationError          the cron job                     xiva_source.jobs.errors
    │   └── MaterializationConfigError (exit 2), MaterializationFailedError, LockLostError
    ├── LiveRefreshError              live refresh of one customer     xiva_source.jobs.errors
    └── SegmentationError             segments, rules, memberships     segmentation.errors

The command line prints ``problem`` and ``fix`` of any :class:`LoyaltyError` and exits with its
``exit_code``; no caller needs an ``isinstance`` ladder to find the right advice. Messages are built
in ``__init__`` and are secret-free (:func:`xiva_source.redaction.redact`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from xiva_source.redaction import redact

__all__ = ["ConfigurationError", "DataSourceError", "LoyaltyError"]


class LoyaltyError(Exception):
    """Base class of every error the project raises.

    Args:
        problem: What went wrong, in a sentence.
        fix: What to do about it; the class's ``default_fix`` when not given.

    Attributes:
        problem: As above, secrets masked.
        fix: As above, secrets masked (may be empty).
        exit_code: The command line's exit status for this error (1 failure, 2 configuration).
    """

    default_fix: ClassVar[str] = ""
    exit_code: ClassVar[int] = 1

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = redact(problem.strip())
        self.fix = redact((fix if fix is not None else self.default_fix).strip())
        super().__init__(self._render())

    def _render(self) -> str:
        if not self.fix:
            return self.problem
        stop = "" if self.problem.endswith((".", "!", "?", ")")) else "."
        return f"{self.problem}{stop} Fix: {self.fix}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments do not survive default pickling (multiprocessing, Ray, Feast).
        return (_rebuild, (type(self), str(self), dict(self.__dict__)))


def _rebuild(cls: type[LoyaltyError], text: str, state: dict[str, Any]) -> LoyaltyError:
    err = cls.__new__(cls)
    Exception.__init__(err, text)
    err.__dict__.update(state)
    return err


class ConfigurationError(LoyaltyError):
    """A setting is missing or invalid; nothing was done (exit 2).

    Args:
        problem: What is wrong, naming the setting.
        fix: What to set, and where (``.env`` or the environment).
        setting: The environment variable concerned, when there is one.
    """

    exit_code: ClassVar[int] = 2

    def __init__(self, problem: str, fix: str | None = None, *, setting: str | None = None) -> None:
        self.setting = setting
        super().__init__(problem, fix)


class DataSourceError(LoyaltyError):
    """A feature source (Xiva or the DWH) failed while a pull read from it.

    Args:
        source: The source's name, e.g. ``"xiva"`` or ``"dwh"``.
        cause: What went wrong, in one sentence (the original exception is chained).
        hint: What to do about it.
    """

    def __init__(self, source: str, cause: str, *, hint: str | None = None) -> None:
        self.source = source
        self.cause = cause
        self.hint = hint
        super().__init__(f"Data source {source!r} failed: {cause}", hint)
