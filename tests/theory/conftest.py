"""Hypothesis profile for the theory tests: deterministic by default.

``derandomize=True`` makes every property test draw the same examples on every run (a test that can
catch a mutation catches it every time, and a failure reproduces without a seed). Tests that pass
``@settings(max_examples=...)`` keep their own count and inherit everything else from this profile,
because their decorators run after this file is loaded. ``HYPOTHESIS_PROFILE=explore`` draws fresh
random examples (for local bug hunting, not CI).
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=50,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "explore",
    derandomize=False,
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
