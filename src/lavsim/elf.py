"""ELF32 executables for lavsim: static i386 programs linked for a Lavender C process.

:func:`load_elf` reads an ELF file with pyelftools (a well-kept parser; ELF is not parsed by
hand here) and checks that it is something lavsim can run, returning an :class:`ElfProgram`:
the code segment's bytes, the data segment's bytes and size (its ``.bss`` zeroed), the entry
point and the symbol table (by name, for breakpoints, traces and the observer).

What is accepted: ``ELFCLASS32``, little-endian, ``EM_386``, ``ET_EXEC`` (static: no
``PT_INTERP``, no ``PT_DYNAMIC``), exactly one executable ``PT_LOAD`` (the code) at offset 0 and
at most one writable one (the data), each lying inside the file and below :data:`MAX_OFFSET`,
the entry point inside the code. The code and the data are two segments, so their offsets may
overlap (both start near 0, as the linker script of :mod:`lavsim.programs` places them); two
loads of the same kind may not. Anything else is refused with :class:`ElfError`, naming what
is wrong; nothing is built from a refused file.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from types import MappingProxyType

from attrs import frozen

from lavsim.errors import LavsimError

#: Highest segment offset + size accepted (a process's segments must fit its group's space).
MAX_OFFSET = 0x10000000
_PF_X = 1
_PF_W = 2


class ElfError(LavsimError):
    """An ELF file lavsim refuses; ``field`` names what is wrong (``e_machine``, ``PT_LOAD``
    ...)."""

    def __init__(self, source: str, field: str, message: str) -> None:
        self.source = source
        self.field = field
        super().__init__(f"{source}: {field}: {message}")


@frozen
class ElfProgram:
    """A checked static executable: code and data images at their segment offsets."""

    name: str
    entry: int
    code: bytes
    code_offset: int
    data: bytes  # the file bytes of the data segment (``.data``); the rest is zero
    data_offset: int
    data_size: int  # memory size of the data segment (``.data`` + ``.bss``)
    symbols: Mapping[str, int]

    def symbol(self, name: str) -> int:
        """The value of symbol ``name``; :class:`ElfError` if the program has none."""
        if name not in self.symbols:
            raise ElfError(self.name, "symbols", f"no symbol {name!r}")
        return self.symbols[name]

    def data_image(self) -> bytes:
        """The data segment as memory holds it: file bytes, then zeros (``.bss``)."""
        return self.data + bytes(self.data_size - len(self.data))


def load_elf(data: bytes, name: str = "<elf>", flat: bool = False) -> ElfProgram:
    """Check ``data`` as a lavsim executable and return its images (see the module).
    ``flat``: a bare program (``lavsim cc --bare``): one address space, so the code may start
    anywhere but may not overlap the data."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    if not isinstance(data, bytes | bytearray):
        raise ElfError(name, "file", "must be bytes")
    if len(data) < 52 or data[:4] != b"\x7fELF":
        raise ElfError(name, "e_ident", "not an ELF file (too short or no ELF magic)")
    if data[4] != 1:
        raise ElfError(name, "EI_CLASS", "not a 32-bit ELF file (ELFCLASS32 needed)")
    if data[5] != 1:
        raise ElfError(name, "EI_DATA", "not little-endian")
    try:
        elf = ELFFile(io.BytesIO(bytes(data)))
        header = elf.header
        segments = [elf.get_segment(k) for k in range(elf.num_segments())]
    except (ELFError, ValueError, KeyError, OSError, EOFError) as error:
        raise ElfError(name, "file", f"truncated or malformed: {error}") from error
    except Exception as error:  # construct's StreamError and friends on a truncated file
        raise ElfError(name, "file", f"truncated or malformed: {error}") from error
    if header["e_machine"] != "EM_386":
        raise ElfError(name, "e_machine", f"{header['e_machine']} is not EM_386 (i386)")
    if header["e_type"] != "ET_EXEC":
        raise ElfError(name, "e_type", f"{header['e_type']}: a static executable (ET_EXEC) "
                                       "is needed")
    code_seg = None
    data_seg = None
    for k, seg in enumerate(segments):
        kind = seg["p_type"]
        if kind in ("PT_INTERP", "PT_DYNAMIC"):
            raise ElfError(name, kind, "dynamically linked programs are not supported")
        if kind != "PT_LOAD":
            continue
        where = f"PT_LOAD[{k}]"
        offset, filesz, memsz = seg["p_offset"], seg["p_filesz"], seg["p_memsz"]
        vaddr, flags = seg["p_vaddr"], seg["p_flags"]
        if filesz > memsz:
            raise ElfError(name, where, f"p_filesz {filesz:#x} exceeds p_memsz {memsz:#x}")
        if offset + filesz > len(data):
            raise ElfError(name, where, f"file bytes {offset:#x}+{filesz:#x} lie beyond the "
                                        f"end of the file ({len(data):#x}): truncated")
        if vaddr + memsz > MAX_OFFSET:
            raise ElfError(name, where, f"{vaddr:#x}+{memsz:#x} is beyond the highest "
                                        f"segment offset {MAX_OFFSET:#x}")
        if memsz == 0:
            continue
        if flags & _PF_X:
            if code_seg is not None:
                raise ElfError(name, where, "overlaps or adds to the code: one executable "
                                            "PT_LOAD is supported")
            if flags & _PF_W:
                raise ElfError(name, where, "a writable code segment is not supported")
            code_seg = seg
        else:
            if data_seg is not None:
                raise ElfError(name, where, "overlaps or adds to the data: one writable "
                                            "PT_LOAD is supported")
            data_seg = seg
    if code_seg is None:
        raise ElfError(name, "PT_LOAD", "no executable segment")
    if flat and data_seg is not None:
        c0, c1 = code_seg["p_vaddr"], code_seg["p_vaddr"] + code_seg["p_memsz"]
        d0, d1 = data_seg["p_vaddr"], data_seg["p_vaddr"] + data_seg["p_memsz"]
        if c0 < d1 and d0 < c1:
            raise ElfError(name, "PT_LOAD", f"code {c0:#x}..{c1:#x} and data {d0:#x}..{d1:#x} "
                                            "overlap in a flat program")
    if not flat and code_seg["p_vaddr"] != 0:
        raise ElfError(name, "PT_LOAD", f"the code must start at offset 0, not "
                                        f"{code_seg['p_vaddr']:#x} (link with lavsim cc)")
    entry = header["e_entry"]
    if not code_seg["p_vaddr"] <= entry < code_seg["p_vaddr"] + code_seg["p_memsz"]:
        raise ElfError(name, "e_entry", f"{entry:#x} is outside the code segment")
    code = _segment_bytes(data, code_seg)
    code_offset = code_seg["p_vaddr"]
    if data_seg is not None:
        d_off, d_size = data_seg["p_vaddr"], data_seg["p_memsz"]
        d_bytes = bytes(data[data_seg["p_offset"]:data_seg["p_offset"] + data_seg["p_filesz"]])
    else:
        d_off, d_size, d_bytes = 0, 0, b""
    try:
        symbols = _symbols(elf)
    except Exception as error:
        raise ElfError(name, ".symtab", f"unreadable: {error}") from error
    return ElfProgram(
        name=name, entry=entry, code=code, code_offset=code_offset, data=d_bytes, data_offset=d_off,
        data_size=d_size, symbols=MappingProxyType(symbols),
    )  # fmt: skip


def _segment_bytes(data: bytes, seg: object) -> bytes:
    s = seg  # an elftools Segment: mapping-like header fields
    start = s["p_offset"]  # type: ignore[index]
    body = bytes(data[start : start + s["p_filesz"]])  # type: ignore[index]
    return body + bytes(s["p_memsz"] - len(body))  # type: ignore[index]


def _symbols(elf: object) -> dict[str, int]:
    """Named symbols with a section (functions, objects, labels), by name."""
    out: dict[str, int] = {}
    table = elf.get_section_by_name(".symtab")  # type: ignore[attr-defined]
    if table is None:
        return out
    for sym in table.iter_symbols():
        if not sym.name or sym["st_shndx"] == "SHN_UNDEF":
            continue
        if sym["st_info"]["type"] in ("STT_SECTION", "STT_FILE"):
            continue
        out.setdefault(sym.name, sym["st_value"])
    return out


def load_elf_file(path: str, flat: bool = False) -> ElfProgram:
    """:func:`load_elf` of a file on disk (the error names the path)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise ElfError(path, "file", error.strerror or str(error)) from error
    return load_elf(data, path, flat)
