"""What a debugger needs to know of Lavender: its threads, their saved registers, and the
symbols of the kernel and of the programs (a :class:`lavsim.gdbstub.Target`).

:class:`LavenderTarget` lists every thread the kernel handed out (``info threads`` in gdb:
``thread 3 of client (pid 2), blocked``); the gdb thread id is the Lavender thread id, and
:data:`NO_THREAD` stands for the processor while no thread is current (boot, idle). A thread
that is not running shows the user registers of its saved trap frame, ``eip`` as a linear
address (its CS base + EIP). :meth:`LavenderTarget.write_symbols` writes an ELF file with the
kernel's labels and every process's labels (named ``process.label``; the labels of a
procedure a process exports too) at their linear addresses, for gdb's ``symbol-file``; the
stub also offers it as the executable (``qXfer:exec-file``), so gdb loads it when it connects.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lavsim.elfsyms import ElfSection, ElfSymbol, write_elf
from lavsim.gdbstub import GdbServer, ThreadInfo
from lavsim.kernel import layout as L
from lavsim.kernel.tables import read_descriptor
from lavsim.mmu import descriptors as d

if TYPE_CHECKING:
    from lavsim.kernel.system import LavenderSystem

__all__ = ["NO_THREAD", "LavenderTarget", "gdb_server"]

#: gdb's id for the processor while no Lavender thread is current.
NO_THREAD = L.MAX_THREADS + 1

_LOCAL = re.compile(r"\.L\w*$")


class LavenderTarget:
    """The :class:`~lavsim.gdbstub.Target` of a :class:`~lavsim.kernel.LavenderSystem`."""

    def __init__(self, system: LavenderSystem, symbol_path: str | Path | None = None) -> None:
        self.system = system
        self.machine = system.machine
        self._symbol_path = Path(symbol_path) if symbol_path is not None else None
        self._written = False
        self._temporary = False

    # --- threads --------------------------------------------------------------------------------
    def _tcb(self, tid: int, field: int) -> int:
        return self.system.read_kernel32(L.TCB_LINEAR + tid * L.TCB_SIZE + field)

    def _pid(self, tid: int) -> int:
        return self.system.read_kernel32(self._tcb(tid, L.TCB_PROCESS) + L.PCB_PID)

    def current_thread(self) -> int:
        tcb = self.system.kernel_variable("k_current")
        tid = (tcb - L.TCB_LINEAR) // L.TCB_SIZE if tcb >= L.TCB_LINEAR else 0
        # TCB 0 is the kernel's own (boot and idle), not a Lavender thread.
        return tid if 0 < tid < L.MAX_THREADS else NO_THREAD

    def threads(self) -> Sequence[ThreadInfo]:
        out = []
        for tid in self.system._tids():
            state = self._tcb(tid, L.TCB_STATE)
            if state == L.THREAD_FREE:
                continue
            pid = self._pid(tid)
            process = self.system.processes.get(pid)
            name = process.name if process is not None else "?"
            state_name = L.THREAD_STATE_NAMES.get(state, f"state {state}")
            out.append(ThreadInfo(tid, f"thread {tid} of {name} (pid {pid}), {state_name}"))
        if self.current_thread() == NO_THREAD:
            out.append(ThreadInfo(NO_THREAD, "the kernel, no current thread"))
        return out

    def saved_registers(self, thread: int) -> dict[str, int] | None:
        if thread == NO_THREAD or thread == self.current_thread():
            return None
        raw = self.system.memory.read(
            L.TCB_PHYS + thread * L.TCB_SIZE + L.TCB_SIZE - L.FRAME_SIZE, L.FRAME_SIZE)
        names = ("gs", "fs", "es", "ds", "edi", "esi", "ebp", "kesp", "ebx", "edx", "ecx",
                 "eax", "vector", "error", "eip", "cs", "eflags", "esp", "ss")
        frame = {n: int.from_bytes(raw[4 * k:4 * k + 4], "little") for k, n in enumerate(names)}
        out = {n: frame[n] for n in ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi",
                                     "eflags")}
        for name in ("cs", "ss", "ds", "es", "fs", "gs"):
            out[name] = frame[name] & 0xFFFF
        base = self._segment_base(self._pid(thread), out["cs"])
        out["eip_offset"] = frame["eip"]
        out["eip"] = (base + frame["eip"]) & 0xFFFFFFFF
        out["cs_base"] = base
        out["cpl"] = out["cs"] & 3
        return out

    def _segment_base(self, pid: int, selector: int) -> int:
        index = selector >> 3
        table = L.LDT_PHYS + pid * L.LDT_BYTES if selector & 4 else L.GDT_PHYS
        if selector & 4 and index >= L.LDT_ENTRIES:
            return 0
        desc = read_descriptor(self.system.memory, table, index)
        return desc.base if isinstance(desc, d.SegmentDescriptor) else 0

    # --- symbols ----------------------------------------------------------------------------
    def symbol_file(self) -> str | None:
        if self._symbol_path is None:
            descriptor, name = tempfile.mkstemp(prefix="lavsim-", suffix=".elf")
            os.close(descriptor)
            self._symbol_path = Path(name)
            self._temporary = True
        if not self._written:
            self.write_symbols(self._symbol_path)
            self._written = True
        return str(self._symbol_path)

    def close(self) -> None:
        """Remove the symbol file if this target made it up (a temporary file)."""
        if self._temporary and self._symbol_path is not None:
            self._symbol_path.unlink(missing_ok=True)
            self._symbol_path = None
            self._written = False

    def write_symbols(self, path: str | Path) -> Path:
        """Write the ELF symbol file: the kernel image (its bytes and labels, local ``.L``
        labels left out) and each process's code labels as ``name.label``."""
        image = self.system.image
        sections = [ElfSection(".text.kernel", image.base, image.code)]
        symbols: list[ElfSymbol] = []
        routines = list(zip(image.routine_starts, image.routine_names, strict=True))
        for k, (start, name) in enumerate(routines):
            end = routines[k + 1][0] if k + 1 < len(routines) else image.end
            symbols.append(ElfSymbol(name, start, end - start, 0, not name.startswith("k_")))
        for name, value in image.program.symbols.items():
            if "." in name and not _LOCAL.search(name) and image.base <= value < image.end:
                symbols.append(ElfSymbol(name, value, 0, 0))
        for process in self.system.processes.values():
            index = len(sections)
            # The bytes are the target's (gdb reads code from memory); the section only
            # places the labels.
            sections.append(ElfSection(f".text.{process.name}.{process.pid}",
                                       process.code_base, bytes(process.code_size)))
            for label, offset in process.symbols.items():
                # Upper-case names are the prelude's constants (SYS_EXIT ...), not labels.
                if (0 <= offset < process.code_size and not _LOCAL.search(label)
                        and not label.isupper()):
                    symbols.append(ElfSymbol(f"{process.name}.{label}",
                                             process.code_base + offset, 0, index))
        # Exported procedures live in code segments of their own: their labels are named
        # ``owner.label`` too (the sharing state exists once something was shared).
        for export in (self.system._sharing.procedures if self.system._sharing else ()):
            index = len(sections)
            sections.append(ElfSection(f".text.{export.owner.name}.export{index}",
                                       export.code_base, bytes(export.code_size)))
            for label, offset in export.symbols.items():
                if (0 <= offset < export.code_size and not _LOCAL.search(label)
                        and not label.isupper()):
                    symbols.append(ElfSymbol(f"{export.owner.name}.{label}",
                                             export.code_base + offset, 0, index))
        return write_elf(path, sections, symbols)

    def monitor(self, command: str) -> str | None:
        words = command.split()
        if words and words[0] == "kvar" and len(words) == 2:
            return f"{words[1]} = {self.system.kernel_variable(words[1]):#x}\n"
        return None


def gdb_server(system: LavenderSystem, port: int = 0, *, wait: bool = True,
               timeout: float | None = 60.0) -> GdbServer:
    """A gdb stub for ``system`` on ``127.0.0.1:port``; with ``wait`` it blocks until gdb
    connects and resumes (see :class:`lavsim.gdbstub.GdbServer`)."""
    server = GdbServer(LavenderTarget(system), port, timeout=timeout)
    if wait:
        server.wait_for_gdb()
    return server
