"""Control groups and splits: a customer's group in a segment, a pure function of its id.

The hashing (docs/segmentation.md, "Control groups and splits"; pinned for every component)::

    u(salt, id) = int(sha256(f"{salt}:{id}".encode("utf-8")).hexdigest()[:13], 16) / 16**13

``u`` is uniform in [0, 1) and has 52 bits, so it is exact in a double and in SQL. A customer is
in the **global control group** when ``u("global_control", id) < SEGMENTS_GLOBAL_CONTROL``: its
group is ``global_control`` in every segment. Otherwise, in a segment with salt ``s`` (the
segment's ``salt``, else its name) and ``u = u(s, id)``: ``holdout`` when ``u < holdout``; else,
with splits, the arm whose cumulative fraction first exceeds ``v = (u - holdout) / (1 - holdout)``
(arms in the file's order); else ``target``.

The group depends on the id and the salt only: the same on every machine and at every refresh,
whoever else is in the segment, and a customer who leaves and comes back gets its old group.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from xiva_source.settings import Settings

__all__ = [
    "GLOBAL_CONTROL",
    "GLOBAL_CONTROL_SALT",
    "HOLDOUT",
    "RESERVED_GROUPS",
    "TARGET",
    "UNTARGETED_GROUPS",
    "GroupSpec",
    "global_control_fraction",
    "group_of",
    "groups_of",
    "in_global_control",
    "unit_hash",
    "unit_hashes",
]

HOLDOUT = "holdout"
"""The group of a segment's held-back members (its control group)."""
GLOBAL_CONTROL = "global_control"
"""The group, in every segment, of a customer of the global control group."""
TARGET = "target"
"""The group of a targeted member of a segment without splits."""
GLOBAL_CONTROL_SALT = "global_control"
"""The salt of the global control group's hash."""
UNTARGETED_GROUPS: frozenset[str] = frozenset({HOLDOUT, GLOBAL_CONTROL})
"""Members of a segment in these groups are eligible but not targeted."""
RESERVED_GROUPS: frozenset[str] = frozenset({HOLDOUT, GLOBAL_CONTROL, TARGET})
"""Names a split arm may not take."""

_SCALE = float(16**13)  # 2**52


def unit_hash(salt: str, customer_id: str) -> float:
    """``u(salt, customer_id)``: the pinned hash of one id, uniform in [0, 1).

    Example:
        >>> round(unit_hash("global_control", "C00001"), 6)  # doctest: +SKIP
        0.83...
    """
    digest = hashlib.sha256(f"{salt}:{customer_id}".encode()).hexdigest()
    return int(digest[:13], 16) / _SCALE


def unit_hashes(salt: str, customer_ids: Iterable[Any]) -> np.ndarray:
    """``u(salt, id)`` of every id (a float64 array, in the order given).

    One sha256 per id (about a microsecond each); the first 52 bits of every digest (its first
    13 hex digits) are then extracted as one numpy operation: the first 8 bytes as a big-endian
    integer, shifted right by 12 bits.

    Args:
        salt: The segment's salt (or :data:`GLOBAL_CONTROL_SALT`).
        customer_ids: The ids (anything ``str()`` gives the id of: ``str``, numpy strings).
    """
    prefix = f"{salt}:".encode()
    sha = hashlib.sha256
    raw = b"".join([sha(prefix + str(c).encode()).digest()[:8] for c in customer_ids])
    if not raw:
        return np.empty(0, dtype="float64")
    top = np.frombuffer(raw, dtype=">u8") >> np.uint64(12)  # 64 - 52 bits
    return top.astype("float64") / _SCALE


def _check_fraction(value: float, what: str) -> float:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{what} must be in [0, 1), got {value!r}")
    return float(value)


@dataclass(frozen=True)
class GroupSpec:
    """How a segment's eligible customers are split into groups.

    Attributes:
        salt: The hash salt (the segment's ``salt``, else its name).
        holdout: The fraction held back (``0 <= holdout < 1``).
        splits: ``(arm, fraction)`` pairs in the file's order (fractions sum to 1), or empty.
    """

    salt: str
    holdout: float = 0.0
    splits: tuple[tuple[str, float], ...] = ()

    def assign(self, u: np.ndarray) -> np.ndarray:
        """The group of every hash value ``u`` (an object array of group names)."""
        u = np.asarray(u, dtype="float64")
        out = np.full(u.shape, TARGET, dtype=object)
        held = u < self.holdout
        if self.splits:
            names = np.array([name for name, _ in self.splits], dtype=object)
            cumulative = np.cumsum([fraction for _, fraction in self.splits])
            v = (u - self.holdout) / (1.0 - self.holdout)
            # The first arm whose cumulative fraction exceeds v; the last one takes the rounding.
            arm = np.minimum(np.searchsorted(cumulative, v, side="right"), len(names) - 1)
            out[:] = names[arm]
        out[held] = HOLDOUT
        return out

    def groups(self, customer_ids: Sequence[Any], *, global_control: float = 0.0) -> np.ndarray:
        """The group of every id in this segment (global control included).

        Args:
            customer_ids: The ids.
            global_control: The global control fraction (``SEGMENTS_GLOBAL_CONTROL``).
        """
        ids = list(customer_ids)
        out = self.assign(unit_hashes(self.salt, ids))
        if global_control > 0 and ids:
            out[in_global_control(ids, global_control)] = GLOBAL_CONTROL
        return out


def in_global_control(customer_ids: Sequence[Any], fraction: float) -> np.ndarray:
    """Which ids are in the global control group (``u("global_control", id) < fraction``)."""
    _check_fraction(fraction, "the global control fraction")
    if fraction == 0:
        return np.zeros(len(customer_ids), dtype=bool)
    return unit_hashes(GLOBAL_CONTROL_SALT, customer_ids) < fraction


def groups_of(
    customer_ids: Sequence[Any],
    *,
    salt: str,
    holdout: float = 0.0,
    splits: Mapping[str, float] | Sequence[tuple[str, float]] | None = None,
    global_control: float = 0.0,
) -> np.ndarray:
    """The group of every id, from the pinned hashing (see the module's docstring).

    Args:
        customer_ids: The ids.
        salt: The segment's salt (its name when the file gives none).
        holdout: The held-back fraction.
        splits: Arm -> fraction, in order (fractions summing to 1), or None.
        global_control: The global control fraction.

    Returns:
        An object array of group names.
    """
    pairs = tuple((splits.items() if isinstance(splits, Mapping) else splits) or ())
    spec = GroupSpec(salt, _check_fraction(holdout, "holdout"), pairs)
    return spec.groups(customer_ids, global_control=global_control)


def group_of(
    customer_id: Any,
    *,
    salt: str,
    holdout: float = 0.0,
    splits: Mapping[str, float] | Sequence[tuple[str, float]] | None = None,
    global_control: float = 0.0,
) -> str:
    """The group of one id (see :func:`groups_of`).

    Example:
        >>> group_of("C00042", salt="gold_vip", holdout=0.0)
        'target'
    """
    group: str = groups_of(
        [customer_id],
        salt=salt,
        holdout=holdout,
        splits=splits,
        global_control=global_control,
    )[0]
    return group


def global_control_fraction(settings: Settings | None = None) -> float:
    """``SEGMENTS_GLOBAL_CONTROL`` (``settings.segments_global_control``; loaded when not given)."""
    if settings is None:
        from xiva_source.settings import load_settings

        settings = load_settings()
    return float(settings.segments_global_control)
