"""Hypothesis profiles for the parser fuzz tests.

``fuzz-ci`` (the default) is the fixed budget of the normal suite: 200 examples per property,
derandomized (the same inputs on every run, so CI is reproducible) and no example database
written to disk. ``fuzz-long`` is the longer, randomized run, chosen by setting
``AUDITOR_FUZZ_EXAMPLES``::

    AUDITOR_FUZZ_EXAMPLES=20000 python3 -m pytest -q -p no:cacheprovider tests/fuzz

Both keep a deadline per example: a parser that takes seconds on one input counts as a hang.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

_CI_EXAMPLES = 200
_LONG = os.environ.get("AUDITOR_FUZZ_EXAMPLES", "").strip()

settings.register_profile(
    "fuzz-ci",
    max_examples=_CI_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "fuzz-long",
    parent=settings.get_profile("fuzz-ci"),
    max_examples=int(_LONG) if _LONG.isdigit() and int(_LONG) > 0 else _CI_EXAMPLES,
    derandomize=False,
)
settings.load_profile("fuzz-long" if _LONG else "fuzz-ci")
