"""What surrounds the measured calls: the machine they run on and the load around them."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from lavsim.boards import Board, default_board, get_board
from lavsim.errors import ConfigError, check_int
from lavsim.kernel import layout as L
from lavsim.mmu.mmu import MMUConfig
from lavsim.mmu.tlb import TLBConfig
from lavsim.models import MODELS, CpuModel, ModelSpec, get_model

__all__ = [
    "DEFAULT",
    "DEFAULT_MEMORY",
    "DEFAULT_TIMER_PERIOD",
    "PROFILES",
    "Workload",
    "check_distinct",
    "check_profile",
]

#: The built-in CPU models, measured by default (``--profile both``).
PROFILES = tuple(MODELS)
#: Installed memory of every measured machine unless a workload says otherwise.
DEFAULT_MEMORY = 16 << 20
#: ``Workload.board`` value meaning "the CPU model's default board".
DEFAULT = "default"
#: The interval timer is off: nothing but the call's own threads is scheduled.
DEFAULT_TIMER_PERIOD = 0


def check_profile(profile: object) -> CpuModel:
    """The CPU model ``profile`` names (a registered name, a :class:`~lavsim.models.CpuModel`
    such as one loaded from a model file, or a user-made timing profile); the one place that
    decides what the experiments can run on."""
    return get_model(profile, "profile")


def check_distinct(field: str, values: Sequence[object]) -> None:
    """Refuse an empty list of ``values`` or one that names a value twice (it would be
    measured twice)."""
    if not values:
        raise ConfigError(field, "must name at least one")
    twice = [v for k, v in enumerate(values) if v in values[:k]]
    if twice:
        raise ConfigError(field, f"{', '.join(map(str, dict.fromkeys(twice)))} given more "
                          "than once")


def _multiple(field: str, value: int, unit: int, why: str) -> None:
    if value % unit:
        raise ConfigError(field, f"must be a multiple of {unit} ({why}), got {value}")


@attrs.frozen
class Workload:
    """What surrounds the calls: CPU profile, argument size, other runnable threads, the
    server's working set, the machine (TLB, global pages, memory, timer), and how many calls
    (the first is cold)."""

    #: The CPU: a model name, a :class:`~lavsim.models.CpuModel` or a timing profile.
    profile: ModelSpec = "i486"
    size: int = 0
    other_threads: int = 0
    #: Loop iterations each other thread runs before it yields (0: it only yields).
    other_work: int = 0
    working_set: int = 0
    #: Entries of the data (i486: unified) TLB, 4-way; None: the profile's TLBs.
    tlb_entries: int | None = None
    global_pages: bool = True
    calls: int = 8
    #: Installed memory in bytes (a multiple of 4096).
    memory_size: int = DEFAULT_MEMORY
    #: Interval-timer period in cycles; 0: no timer interrupts.
    timer_period: int = DEFAULT_TIMER_PERIOD
    #: The memory system: a board name or :class:`~lavsim.boards.Board`; ``"default"``: the
    #: CPU model's default board (:data:`lavsim.boards.DEFAULT_BOARDS`); ``"ideal"`` (the
    #: default here): every access hits.
    board: str | Board = "ideal"

    def __attrs_post_init__(self) -> None:
        check_profile(self.profile)
        if self.board != DEFAULT:
            get_board(self.board, "board")
        check_int("size", self.size, 0, L.IPC_MAX_MESSAGE)
        _multiple("size", self.size, 4, "whole doublewords")
        check_int("other_threads", self.other_threads, 0, 30)
        check_int("other_work", self.other_work, 0, 1_000_000)
        check_int("working_set", self.working_set, 0, 256)
        if self.tlb_entries is not None:
            check_int("tlb_entries", self.tlb_entries, 4, 4096)
            _multiple("tlb_entries", self.tlb_entries, 4, "4-way sets")
        if not isinstance(self.global_pages, bool):
            raise ConfigError("global_pages", f"must be a bool, not {self.global_pages!r}")
        check_int("calls", self.calls, 2, 10_000)
        # The same limits LavenderSystem applies, checked here so that a bad value is refused
        # before any measurement runs.
        check_int("memory_size", self.memory_size, L.MIN_MEMORY, L.KERNEL_WINDOW)
        _multiple("memory_size", self.memory_size, L.PAGE_SIZE, "whole pages")
        check_int("timer_period", self.timer_period, 0, 0xFFFFFFFF)

    @property
    def model(self) -> CpuModel:
        """The CPU model the calls run on."""
        return get_model(self.profile)

    @property
    def board_spec(self) -> Board:
        """The board the calls run on (``"default"`` resolved for the CPU model)."""
        if self.board == DEFAULT:
            model = self.model
            return default_board([model.name, *getattr(model.profile, "ancestry", ())])
        return get_board(self.board, "board")

    @property
    def profile_name(self) -> str:
        """The CPU model's name, as tables print it."""
        return self.model.name

    def mmu(self) -> MMUConfig | None:
        """The MMU organisation: None for the model's own, or its data TLB resized."""
        if self.tlb_entries is None:
            return None
        return attrs.evolve(self.model.mmu, tlb=TLBConfig(self.tlb_entries, 4))

    @property
    def default_settings(self) -> bool:
        """Whether TLB, memory and timer are the defaults (whatever the CPU model)."""
        return (self.tlb_entries is None and self.memory_size == DEFAULT_MEMORY
                and self.timer_period == DEFAULT_TIMER_PERIOD)  # fmt: skip

    @property
    def default_machine(self) -> bool:
        """Whether the machine is the profile's as every table is measured by default (the
        profile's TLBs, default memory, no timer)."""
        return self.default_settings and MODELS.get(self.model.key) is self.model

    def machine(self) -> str:
        """The machine in words: profile, TLB, memory, timer."""
        split = self.model.mmu.itlb is not None
        tlb = ("the profile's TLBs" if self.tlb_entries is None
               else f"{'data' if split else 'unified'} TLB "
               f"{self.tlb_entries} entries 4-way")  # fmt: skip
        memory = self.memory_size
        size = f"{memory >> 20} MiB" if not memory % (1 << 20) else f"{memory >> 10} KiB"
        timer = (f"timer every {self.timer_period:,} cycles" if self.timer_period
                 else "timer off")  # fmt: skip
        model = self.model
        name = model.name
        if MODELS.get(model.key) is not model:
            # A user's model: say what it derives from, so the header names the machine.
            ancestry = getattr(model.profile, "ancestry", ())
            base = f"derived from {ancestry[0]}" if ancestry else "a user model"
            name = f"{name} ({base}{': ' + model.description if model.description else ''})"
        board = self.board_spec
        on = "" if board.ideal else f", board {board.name} ({board.summary()})"
        return f"{name}, {tlb}, {size} memory, {timer}{on}"
