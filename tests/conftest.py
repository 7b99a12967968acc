"""Shared test configuration: hypothesis profiles, and where the shared test kits are.

Tests are laid out like the source: tests/cpu, tests/mmu, tests/machine (machine, devices,
snapshots), tests/timing (timing profiles and CPU models), tests/kernel, tests/multihost,
tests/experiments (the measurement layer, the CLI and the golden figures), tests/project
(layering, sources, documentation examples).

``ci`` is the default (quick); ``deep`` (``HYPOTHESIS_PROFILE=deep``) runs 25x the examples.
"""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings

# Kits shared by tests of several folders live in tests/kits; a kit used by one folder sits
# beside its tests (tests/cpu/cpu_harness.py, tests/kernel/sysbuild.py ...).
sys.path.insert(0, str(Path(__file__).parent / "kits"))

# The assembler's cache on disk (lavsim.cpu.asmcache) lives in a directory of this test run's
# own (inherited by the lavsim processes tests start), never in the user's ~/.cache.
os.environ["LAVSIM_CACHE_DIR"] = tempfile.mkdtemp(prefix="lavsim-test-asm-")
atexit.register(shutil.rmtree, os.environ["LAVSIM_CACHE_DIR"], ignore_errors=True)

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
