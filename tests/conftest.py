"""Shared test configuration: hypothesis profiles, and where the shared test kits are.

Tests are laid out like the source: tests/cpu, tests/mmu, tests/machine (machine, devices,
snapshots), tests/timing (timing profiles and CPU models), tests/kernel, tests/multihost,
tests/experiments (the measurement layer, the CLI and the golden figures), tests/project
(layering, sources, documentation examples).

``ci`` is the default (quick); ``deep`` (``HYPOTHESIS_PROFILE=deep``) runs 25x the examples.
"""

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

# Kits shared by tests of several folders live in tests/kits; a kit used by one folder sits
# beside its tests (tests/cpu/cpu_harness.py, tests/kernel/sysbuild.py ...).
sys.path.insert(0, str(Path(__file__).parent / "kits"))

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
settings.register_profile(
    "deep",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
