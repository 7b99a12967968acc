"""The memory hierarchy below the MMU's access seam: caches, write buffers, bus timing.

:mod:`lavsim.memsys.cache` is one set-associative cache (organisation, replacement, write
policy, no timing); :mod:`lavsim.memsys.hierarchy` plugs L1 caches, write buffers and an
optional L2 into the MMU as a tracer and charges stall cycles to the TSC. Boards
(:mod:`lavsim.boards`) say which organisation and what bus timing a machine has.
"""

from lavsim.memsys.cache import CACHE_COUNTERS, Cache, CacheConfig, CacheResult
from lavsim.memsys.hierarchy import (
    HIERARCHY_COUNTERS,
    BusTiming,
    Clock,
    HierarchyConfig,
    MemoryHierarchy,
)

__all__ = [
    "CACHE_COUNTERS",
    "HIERARCHY_COUNTERS",
    "BusTiming",
    "Cache",
    "CacheConfig",
    "CacheResult",
    "Clock",
    "HierarchyConfig",
    "MemoryHierarchy",
]
