"""Exporting procedures written in C for thread migration (``LAV_EXPORT`` in ``lavender.h``).

:func:`export_c_procedure` is the boot loader's step, over
:meth:`lavsim.kernel.sharing.Sharing.export_procedure`: the procedure's code segment (DPL 2) is
a copy of its program's whole code image (the C function keeps its link offsets and may call
the program's other functions), entered at the trampoline ``fn__lav_entry``; its private data
segment is a DPL 2 alias of the program's own data segment (``share_data_segment``), whose
selector is written into the trampoline's word ``fn__lav_sel``; the gate copies
``fn__lav_nargs`` doublewords; the export's address structure is written into the program's
``fn__lav_address`` (for ``lav_proc_register``). The ABI is in docs/design.md ("C programs").
"""

from __future__ import annotations

from lavsim.elf import ElfProgram
from lavsim.errors import ConfigError
from lavsim.kernel.sharing import ProcedureExport
from lavsim.kernel.system import LavenderSystem, Process


def export_c_procedure(
    system: LavenderSystem, process: Process, program: ElfProgram, function: str,
    *, slot: int | None = None,
) -> ProcedureExport:
    """Export ``function`` of ``process`` (made from ``program`` by ``create_elf_process``),
    declared there with ``LAV_EXPORT(function, nargs)``. Import it with
    ``system.sharing.import_procedure``; callers reach it with ``lav_proc_call``."""
    if not isinstance(program, ElfProgram):
        raise ConfigError("program", "must be an ElfProgram (lavsim.elf.load_elf)")
    if not isinstance(function, str):
        raise ConfigError("function", "must be the name of a C function")
    entry = f"{function}__lav_entry"
    for needed in (entry, f"{function}__lav_sel", f"{function}__lav_nargs"):
        if needed not in program.symbols:
            raise ConfigError(
                "function", f"{program.name} has no {needed!r}: declare "
                f"LAV_EXPORT({function}, nargs) in it (lavender.h)")
    if getattr(process, "symbols", None) != program.symbols:
        raise ConfigError("process", f"is not the process made from {program.name}")
    export = system.sharing.export_procedure(
        process, image=program.code, symbols=program.symbols, entry=entry,
        params=program.symbols[f"{function}__lav_nargs"], share_data_segment=True,
        data_selector_at=f"{function}__lav_sel", slot=slot, name=function,
    )  # fmt: skip
    where = program.symbols.get(f"{function}__lav_address")
    if where is not None:  # the program's own copy, to register with the name server
        system.sharing.write_address(process, where, export.address())
    return export
