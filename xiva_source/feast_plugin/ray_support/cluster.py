"""The Ray cluster of the repository's Ray engine: connecting to it, and how many parts a pull
is cut into (Feast's ``batch_engine`` settings)."""

from __future__ import annotations

from typing import Any

__all__ = ["connect_ray", "default_parallelism"]


def connect_ray(config: Any) -> None:
    """Connect to the Ray cluster of the repository's Ray engine, as Feast's engine does.

    ``batch_engine.ray_address`` (e.g. ``ray://head:10001``), KubeRay settings and ``ray_conf``
    are Feast's (:func:`feast.infra.ray_initializer.ensure_ray_initialized`); an already
    initialized Ray (a test's, a notebook's) is used as it is.
    """
    from feast.infra.ray_initializer import ensure_ray_initialized

    ensure_ray_initialized(config.batch_engine)


def default_parallelism(config: Any | None = None) -> int:
    """Parts per pull: the engine's ``max_workers``, else the cluster's CPUs times its
    ``max_parallelism_multiplier`` (Feast's Ray engine settings), at least 1."""
    import ray

    engine = getattr(config, "batch_engine", None) if config is not None else None
    workers = getattr(engine, "max_workers", None)
    if workers:
        return max(1, int(workers))
    multiplier = int(getattr(engine, "max_parallelism_multiplier", 2) or 2)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, cpus * multiplier)
