"""A minimal ELF32 (i386) file holding code sections and a symbol table, for gdb's
``symbol-file``: the names of the kernel's routines and variables and of the programs' labels.

Written by hand with :mod:`struct` (no ELF library is needed for this much): the ELF header, one
``SHT_PROGBITS`` section per code image at its linear address, ``.symtab``, ``.strtab`` and
``.shstrtab``. No program headers: the file describes addresses, it is never loaded.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import attrs

__all__ = ["ElfSection", "ElfSymbol", "elf_bytes", "write_elf"]

_EHDR = struct.Struct("<16sHHIIIIIHHHHHH")
_SHDR = struct.Struct("<IIIIIIIIII")
_SYM = struct.Struct("<IIIBBH")
SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB = 1, 2, 3
SHF_ALLOC, SHF_EXECINSTR = 2, 4
STB_GLOBAL = 1
STT_OBJECT, STT_FUNC = 1, 2
EM_386 = 3
ET_EXEC = 2


@attrs.frozen
class ElfSection:
    """Code (or data) bytes at a linear address."""

    name: str
    address: int
    data: bytes


@attrs.frozen
class ElfSymbol:
    """A name for ``value`` in section ``section`` (an index into the sections given to
    :func:`elf_bytes`); ``function`` makes it STT_FUNC (else STT_OBJECT)."""

    name: str
    value: int
    size: int
    section: int
    function: bool = True


class _Strings:
    def __init__(self) -> None:
        self.data = bytearray(b"\0")

    def add(self, text: str) -> int:
        offset = len(self.data)
        self.data += text.encode() + b"\0"
        return offset


def elf_bytes(sections: Sequence[ElfSection], symbols: Sequence[ElfSymbol]) -> bytes:
    """The ELF file's bytes."""
    shstr = _Strings()
    strtab = _Strings()
    body = bytearray()
    offset = _EHDR.size
    headers = [_SHDR.pack(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)]
    for section in sections:
        headers.append(_SHDR.pack(shstr.add(section.name), SHT_PROGBITS,
                                  SHF_ALLOC | SHF_EXECINSTR, section.address,
                                  offset + len(body), len(section.data), 0, 0, 16, 0))
        body += section.data
        body += bytes(-len(body) % 4)
    syms = bytearray(_SYM.pack(0, 0, 0, 0, 0, 0))
    for sym in symbols:
        kind = STT_FUNC if sym.function else STT_OBJECT
        syms += _SYM.pack(strtab.add(sym.name), sym.value & 0xFFFFFFFF, sym.size,
                          (STB_GLOBAL << 4) | kind, 0, sym.section + 1)
    symtab_index = len(headers)
    headers.append(_SHDR.pack(shstr.add(".symtab"), SHT_SYMTAB, 0, 0, offset + len(body),
                              len(syms), symtab_index + 1, 1, 4, _SYM.size))
    body += syms
    headers.append(_SHDR.pack(shstr.add(".strtab"), SHT_STRTAB, 0, 0, offset + len(body),
                              len(strtab.data), 0, 0, 1, 0))
    body += strtab.data
    shstrndx = len(headers)
    name = shstr.add(".shstrtab")
    headers.append(_SHDR.pack(name, SHT_STRTAB, 0, 0, offset + len(body), len(shstr.data),
                              0, 0, 1, 0))
    body += shstr.data
    body += bytes(-len(body) % 4)
    shoff = offset + len(body)
    ident = b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8)
    header = _EHDR.pack(ident, ET_EXEC, EM_386, 1, 0, 0, shoff, 0, _EHDR.size, 0, 0,
                        _SHDR.size, len(headers), shstrndx)
    return header + bytes(body) + b"".join(headers)


def write_elf(path: str | Path, sections: Sequence[ElfSection],
              symbols: Sequence[ElfSymbol]) -> Path:
    """Write :func:`elf_bytes` to ``path`` and return the path."""
    target = Path(path)
    target.write_bytes(elf_bytes(sections, symbols))
    return target
