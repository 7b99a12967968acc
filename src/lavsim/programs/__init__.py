"""C programs on lavsim: the C runtime shipped in the package (``runtime/``: crt0, the linker
scripts, a small libc and ``lavender.h``), :mod:`lavsim.programs.cc` (``lavsim cc``, a thin
wrapper around the system's ``gcc -m32``) and :mod:`lavsim.programs.run` (``lavsim run``: ELF
programs as Lavender processes, or bare)."""
