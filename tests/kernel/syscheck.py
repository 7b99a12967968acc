"""Host-side protection checkers for random Lavender systems.

- :class:`WriteWatcher` sees every write to physical memory during a run as a tracer of the MMU
  (``MMU.add_tracer``: while a tracer is attached every access is reported, fast-path hits
  included, so no write is missed) and attributes it to the CPL at the time of the write, the
  access's ``user`` flag and the running thread's home process; the processor's A/D and
  descriptor access-byte updates are known by their access kind.
- :class:`TransferChecker` is a step observer: CS changes at CPL > 0 must be gate entries at a
  registered entry point or far returns to the matching call site; CPL decreases must be far
  calls through a registered gate, or IDT deliveries landing on a handler the boot loader
  installed; a thread at CPL > 0 runs with its own process's LDT.
- :func:`run_checked` runs a built system under both and checks the kernel afterwards."""

from __future__ import annotations

import struct

import attrs
from sysbuild import Built, Ranges, _add, covered

from lavsim.cpu.state import CS, ESP, SS
from lavsim.kernel import layout as L
from lavsim.kernel.invariants import check_kernel_consistency, settle
from lavsim.kernel.system import RunOutcome
from lavsim.memory import PhysicalMemory
from lavsim.mmu.mmu import Access

# --- watching writes ------------------------------------------------------------


@attrs.frozen
class Violation:
    what: str
    cpl: int
    pid: int | None
    cs: int
    eip: int
    phys: int
    size: int

    def __str__(self) -> str:
        return (
            f"{self.what}: CPL {self.cpl} in process {self.pid} at {self.cs:#06x}:"
            f"{self.eip:#010x} wrote {self.size} bytes at physical {self.phys:#x}"
        )


class WriteWatcher:
    """Checks every physical write made while :attr:`active` against :class:`Grants`.

    Writes at CPL 0 are the kernel's (trusted). At CPL 1..3:

    - a processor update of Accessed/Dirty bits in a page-table frame, or of the Accessed bit
      of a GDT/LDT descriptor, is allowed (it changes only those bits);
    - an explicit CPL 3 write (the MMU's ``user`` flag, or a bulk string write at CPL 3) must
      fall in the process's own writable segments, its exports and its writable imports;
    - an implicit write while at CPL 3 (the processor pushing a gate or interrupt frame) may
      also go to the running thread's ring-0 stack page and its process's ring-2 stack;
    - a CPL 2 (procedure) write may go where the calling thread's CPL 3 code may, to the
      process's ring-2 stack, to the running thread's ring-0 stack page (the processor's
      interrupt frames), and to the private data of procedures whose DPL 2 segments the
      process's LDT or the GDT holds (the documented weakness: one ring for all imported
      procedures).
    """

    def __init__(self, built: Built) -> None:
        self.built = built
        self.system = built.system
        self.cpu = built.system.machine.cpu
        self.mmu = built.system.machine.mmu
        self.active = False
        self.writes_checked = 0
        self.violations: list[Violation] = []
        self._k_current = built.system.image.symbol("k_current") - L.KERNEL_BASE
        self._gdt = (L.GDT_PHYS, L.GDT_PHYS + 8 * L.GDT_ENTRIES)
        self._ldt = (L.LDT_PHYS, L.LDT_PHYS + L.MAX_PROCESSES * L.LDT_BYTES)

    def start(self) -> None:
        """Attach to the MMU as a tracer (every access is reported while attached) and check."""
        self.mmu.add_tracer(self)
        self.active = True

    def stop(self) -> None:
        self.active = False
        self.mmu.remove_tracer(self)

    def current(self, memory: PhysicalMemory) -> tuple[int | None, int | None]:
        """(thread id, home pid) of the running thread, from k_current."""
        tcb = memory.read32(self._k_current)
        tid = (tcb - L.TCB_LINEAR) // L.TCB_SIZE
        if not 0 < tid < L.MAX_THREADS:
            return None, None
        pcb = memory.read32(tcb - L.KERNEL_BASE + L.TCB_PROCESS)
        return tid, (pcb - L.PCB_LINEAR) // L.PCB_SIZE

    def _hardware_bits(self, kind: Access, addr: int, n: int) -> bool:
        """Whether the write is the processor's own update of A/D bits in a page-table frame
        or of a descriptor's access byte in the GDT or an LDT."""
        if kind is Access.AD_WRITE:
            return all(((addr + k) >> 12) in self.built.table_frames for k in range(n))
        if kind is Access.LOCKED_WRITE:
            return all(
                self._gdt[0] <= addr + k < self._gdt[1] or self._ldt[0] <= addr + k < self._ldt[1]
                for k in range(n)
            )
        return False

    def on_access(self, kind: Access, addr: int, n: int, user: bool) -> None:
        """The MMU's tracer callback: check each write made at CPL 1..3."""
        if not self.active or not kind.is_write or not n:
            return
        cpl = self.cpu.cpl
        if cpl == 0:
            return
        self.writes_checked += 1
        if self._hardware_bits(kind, addr, n):
            return
        memory = self.system.memory
        tid, pid = self.current(memory)
        grants = self.built.grants
        allowed = pid is not None and covered(grants.user.get(pid, {}), addr, n)
        if not allowed and pid is not None and (cpl < 3 or not user):
            extra: Ranges = {}
            for source in (
                grants.ring2.get(pid, {}),
                grants.procedure_data.get(pid, {}) if cpl < 3 else {},
            ):
                for pfn, spans in source.items():
                    extra.setdefault(pfn, []).extend(spans)
            if tid is not None:
                _add(extra, L.TCB_PHYS + tid * L.TCB_SIZE, L.TCB_SIZE)
            for pfn, spans in grants.user.get(pid, {}).items():
                extra.setdefault(pfn, []).extend(spans)
            allowed = covered(extra, addr, n)
        if not allowed:
            owner = grants.owners.get(addr >> 12)
            if addr < L.FRAMES_PHYS or (addr >> 12) in self.built.table_frames:
                what = "kernel memory"
            elif owner is not None and owner != pid:
                what = f"memory of process {owner} not shared with it"
            else:
                what = "memory not granted to it"
            cs = self.cpu.seg[CS]
            self.violations.append(Violation(what, cpl, pid, cs.selector, self.cpu.eip, addr, n))


# --- watching control transfers ------------------------------------------------------------

_PREFIXES = frozenset({0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0xF0, 0xF2, 0xF3})


class TransferChecker:
    """A step observer checking entries, returns and privilege changes (see the module
    docstring). ``gate_entries`` and ``returns`` count what it saw."""

    def __init__(self, built: Built, watcher: WriteWatcher) -> None:
        self.built = built
        self.system = built.system
        self.cpu = built.system.machine.cpu
        self.watcher = watcher
        self.calls: dict[int, list[tuple[int, int]]] = {}
        self.violations: list[str] = []
        self.gate_entries = 0
        self.returns = 0
        self.idt_entries = 0

    def _bytes(self, pid: int, linear: int, n: int) -> bytes:
        system = self.system
        process = system.processes[pid]
        directory = process.group.directory if process.group is not None else system.boot_directory
        out = bytearray()
        for k in range(n):
            phys = system.page_tables.translate(
                directory, (linear + k) & 0xFFFFFFFF, user=False, write=False
            )
            if phys is None:
                break
            out.append(PhysicalMemory.read8(system.memory, phys))
        return bytes(out)

    def _is_far_call(self, pid: int, pc: int) -> bool:
        code = self._bytes(pid, pc, 15)
        k = 0
        while k < len(code) and code[k] in _PREFIXES:
            k += 1
        if k >= len(code):
            return False
        if code[k] == 0x9A:
            return True
        return code[k] == 0xFF and k + 1 < len(code) and (code[k + 1] >> 3) & 7 == 3

    def __call__(
        self, kind: str, cs: int, eip: int, pc: int, cpl: int, before: int, after: int
    ) -> None:
        cpu = self.cpu
        new_cpl = cpu.cpl
        new_cs = cpu.seg[CS].selector
        if kind == "idle" or (new_cpl == cpl and new_cs == cs):
            return
        tid, pid = self.watcher.current(self.system.memory)
        where = f"{cs:#06x}:{eip:#x} (CPL {cpl}) -> {new_cs:#06x}:{cpu.eip:#x} (CPL {new_cpl})"
        if new_cpl > 0 and pid is not None and cpu.ldtr.selector & ~3 != L.ldt_selector(pid):
            self.violations.append(
                f"thread {tid} of process {pid} runs with LDT {cpu.ldtr.selector:#x}: {where}"
            )
        if new_cpl == 0 and cpl > 0:
            # Into the kernel: only through the IDT, onto a handler the boot loader installed.
            self.idt_entries += 1
            if new_cs & ~3 != L.KERNEL_CS or cpu.eip not in self.built.idt_targets:
                self.violations.append(f"CPL 0 entered outside the IDT's handlers: {where}")
            return
        if cpl == 0 or pid is None or tid is None:
            return  # the kernel's own transfers (IRET to a thread, switches) are trusted
        export = self.built.entries.get((pid, new_cs & ~3))
        if export is not None and (
            new_cpl < cpl
            or (kind == "instruction" and new_cpl == cpl and self._is_far_call(pid, pc))
        ):
            # A gate entry (3 -> 2, or a nested 2 -> 2 call).
            self.gate_entries += 1
            if kind != "instruction" or not self._is_far_call(pid, pc):
                self.violations.append(f"CPL lowered without a far call through a gate: {where}")
            if cpu.eip != export.entry:
                self.violations.append(
                    f"{export.name} entered at {cpu.eip:#x}, not at its entry "
                    f"{export.entry:#x}: {where}"
                )
            ss = cpu.seg[SS]
            raw = self._bytes(pid, ss.base + cpu.regs[ESP], 8)
            if len(raw) == 8:
                ret_eip, ret_cs = struct.unpack("<II", raw)
                self.calls.setdefault(tid, []).append((ret_cs & 0xFFFF, ret_eip))
            return
        if new_cpl < cpl:
            self.violations.append(
                f"CPL lowered to {new_cpl} not through a registered gate: {where}"
            )
            return
        stack = self.calls.get(tid)
        if stack and stack[-1] == (new_cs, cpu.eip):
            stack.pop()
            self.returns += 1
            return
        self.violations.append(
            f"code segment changed to {new_cs:#06x} at {cpu.eip:#x} neither "
            f"through a registered gate nor back to a call site: {where}"
        )


# --- running ------------------------------------------------------------


@attrs.define
class Checked:
    outcome: RunOutcome
    writes: list[Violation]
    transfers: list[str]
    kernel: list[str]
    writes_checked: int
    gate_entries: int
    returns: int
    idt_entries: int
    instructions: int


def run_checked(built: Built, max_cycles: int, watcher: WriteWatcher | None = None) -> Checked:
    """Run with the write watcher and the transfer checker, settle, and check the kernel."""
    system = built.system
    watcher = watcher or WriteWatcher(built)
    checker = TransferChecker(built, watcher)
    system.machine.add_observer(checker)
    watcher.start()
    try:
        outcome = system.run(max_cycles=max_cycles)
        settled = settle(system)
    finally:
        watcher.stop()
        system.machine.remove_observer(checker)
    kernel = check_kernel_consistency(system) if settled else ["did not settle"]
    return Checked(
        outcome,
        watcher.violations,
        checker.violations,
        kernel,
        watcher.writes_checked,
        checker.gate_entries,
        checker.returns,
        checker.idt_entries,
        system.machine.cpu.instructions,
    )

