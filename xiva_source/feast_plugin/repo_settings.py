"""The settings of a Feast repository: where the plugin's entry points load them.

Feast calls the plugin (offline store, sources, online store) with a ``RepoConfig`` whose
``repo_path`` is the repository. Each such entry method loads the settings once, here, and passes
them down, so the ``.env`` beside or above the repository is found however Feast was started
(``cd feature_repo && feast ...``, ``feast -c feature_repo ...``, or
``FeatureStore(repo_path=...)`` from a notebook anywhere). Nothing else in the plugin calls
:func:`~xiva_source.settings.load_settings`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xiva_source.settings import Settings, load_settings

if TYPE_CHECKING:
    from feast.repo_config import RepoConfig

__all__ = ["repo_settings"]


def repo_settings(config: RepoConfig) -> Settings:
    """The settings of the repository ``config`` belongs to.

    Precedence: the environment, then the ``.env`` beside or above ``config.repo_path`` (from the
    working directory upward when Feast did not set one), then the defaults.

    Raises:
        ConfigurationError: A setting is invalid (the message names it and the fix).
    """
    return load_settings(repo_path=getattr(config, "repo_path", None))
