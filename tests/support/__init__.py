"""What tests import: helpers, constants and builders; never fixtures (those live in conftest.py).

The layout mirrors the packages under test:

- ``services``: where the tests find the real services (``REDIS_URL``, ``PG_BASE_URL`` from
  ``TEST_REDIS_URL`` / ``TEST_PG_URL``), the simulator's user, the settings' variables;
- ``tiers``: the unit tier (the ``service`` decorator of fixtures, the rule, the unit guard);
- ``feast``: repository copies of ``feature_repo/`` (``make_repo``), ``FeastEnv``;
- ``redis_cluster``: a real Redis Cluster and Sentinel on loopback (also used by ``bench/``);
- ``segmentation.repo`` / ``.realtime`` / ``.look``: the segmentation tests' own repository,
  their membership namespaces, plain-Python references;
- ``xiva_source.jobs`` / ``.faults``: the merged truth of the fallback tests; the fault tests'
  private Redis, job subprocess and checks.
"""
