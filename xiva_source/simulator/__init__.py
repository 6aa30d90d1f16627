"""The bundled Xiva simulator: a real threaded HTTP server serving the Xiva API contract.

Used by the tests (one per session, on loopback), the demo and the benchmarks::

    from xiva_source.simulator import XivaSimulator, SimulatorConfig, FaultConfig

    with XivaSimulator(SimulatorConfig(customers=1000, seed=42)) as sim:
        sim.set_faults(FaultConfig(kinds=("429",), count=1))
        ...  # point XIVA_API_BASE_URL at sim.base_url

See docs/simulator.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xiva_source import lazy

if TYPE_CHECKING:
    from xiva_source.simulator.app import ENDPOINTS
    from xiva_source.simulator.config import (
        FAULT_KINDS,
        FaultConfig,
        FaultKind,
        ListShape,
        RetryAfterStyle,
        SimulatorConfig,
    )
    from xiva_source.simulator.errors import (
        ControlRequestError,
        SimulatorError,
        SimulatorNotRunningError,
        TokenRejectedError,
        UnknownCustomerError,
    )
    from xiva_source.simulator.recorder import RequestRecord
    from xiva_source.simulator.simulator import XivaSimulator

__all__ = lazy.attach(__name__, __file__)
