"""The fuzz budget: ``DICOMVAULT_FUZZ_EXAMPLES`` inputs per door (`make fuzz`: 10,000), else
each door's small in-suite number; fixed seeds; the counts per door, printed at the end."""

from __future__ import annotations

import os
from collections import Counter

from hypothesis import HealthCheck, settings

FUZZ_EXAMPLES = int(os.environ.get("DICOMVAULT_FUZZ_EXAMPLES", "0"))


def budget(in_suite: int, at_most: int | None = None) -> settings:
    """Hypothesis settings of one door: fixed seed, ``in_suite`` examples unless `make fuzz`
    asks for more (``at_most``: a slow way into a door that another test fuzzes in full)."""
    examples = FUZZ_EXAMPLES or in_suite
    if at_most is not None:
        examples = min(examples, max(at_most, in_suite))
    return settings(max_examples=examples, derandomize=True, deadline=None,
                    database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture,
                                           HealthCheck.filter_too_much])


COUNTS: dict[str, Counter] = {}
