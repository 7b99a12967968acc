"""The leakage experiment: how many bytes next to a shared object can the importer read?

Lavender's argument for sharing by segment (the founding design §1, see ``docs/sources.md``):
a share by pages hands over the whole pages around the object, so the importer also reads
whatever else lies on them; a segment with an exact byte limit hands over the object alone.

The experiment places objects of random size and random alignment in an exporter's data
segment, each in a window of its own filled with a marker byte (``FILLER``) and the object's
bytes set to ``OBJECT``. Each object is shared twice with an importer of the same group: once
by segment (:meth:`~lavsim.kernel.sharing.Sharing.export_data` over the exact bytes, then
:meth:`~lavsim.kernel.sharing.Sharing.import_data`) and once by pages
(:meth:`~lavsim.kernel.sharing.Sharing.share_pages`). Then a **guest probe** runs in the
importer for every share: it asks the processor for the segment's limit (LSL), reads every
byte up to it (``rep lodsb``, through the real segmentation and paging checks: a byte it could
not read would kill it), finds the object's bytes in what it read (``repne/repe scasb``), and
finally reads one byte past the limit, which must fault with #GP(0). Its registers at that
fault hold the result: EAX = bytes readable, EDX = object bytes seen. Leaked = EAX - EDX.

The figures are cross-checked against the architectural state (descriptor limits and page
mappings), byte-exact, by :func:`architectural_leak`.
"""

from __future__ import annotations

import random
import statistics

import attrs

from lavsim.errors import ConfigError, check_bool
from lavsim.faults import GP
from lavsim.kernel import layout as L
from lavsim.kernel.system import LavenderSystem

FILLER = 0x55
OBJECT = 0xAA
#: Each object lives in its own window of the exporter's data segment (pages with no other
#: object on them): the first page holds its start, at most two more its rest.
WINDOW = 3 * L.PAGE_SIZE
#: Largest object: it must fit in its window from any start in the first page.
MAX_OBJECT = 2 * L.PAGE_SIZE
#: Objects per system (two shares each; an LDT has 120 shared slots).
BATCH = 40

#: The probe, run in the importer with EBX = the shared selector (see the module docstring).
PROBE = """
main:
    mov ds, bx
    mov es, bx
    # Bytes the segment claims: limit + 1.
    lsl ecx, ebx
    inc ecx
    mov ebp, ecx
    # Read every one of them (a byte that could not be read would fault here).
    xor esi, esi
    cld
    rep lodsb
    # The object's bytes: skip to the first OBJECT byte, then over the run of them.
    mov ecx, ebp
    xor edi, edi
    mov al, 0xAA
    repne scasb
    jne none
    lea esi, [edi-1]
    repe scasb
    je to_end
    lea edx, [edi-1]
    jmp counted
to_end:
    mov edx, edi
counted:
    sub edx, esi
    jmp past
none:
    xor edx, edx
past:
    # One byte past the limit: must fault with #GP(0). EAX = readable, EDX = object bytes.
    mov eax, ebp
    mov cl, byte ptr [eax]
    mov eax, 0
    int 0x30
"""


@attrs.frozen
class ShareProbe:
    """One shared object as the importer's probe saw it."""

    method: str  # "segment" or "pages"
    size: int
    alignment: int
    offset_in_page: int
    readable: int
    object_seen: int
    boundary_faulted: bool

    @property
    def leaked(self) -> int:
        """Bytes the importer could read that were not shared."""
        return self.readable - self.object_seen


@attrs.frozen
class LeakageSummary:
    method: str
    objects: int
    mean: float
    median: float
    maximum: int
    zero: int  # objects that leaked nothing


def random_objects(
    count: int, seed: int, *, page_aligned: bool = False
) -> list[tuple[int, int, int]]:
    """``count`` objects (size, alignment, offset in the page): size uniform in
    1..MAX_OBJECT, alignment 2**k with k uniform in 0..12, start a random multiple of the
    alignment in the first page (or 0 with ``page_aligned``)."""
    check_bool("page_aligned", page_aligned)
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        size = rng.randint(1, MAX_OBJECT)
        alignment = L.PAGE_SIZE if page_aligned else 1 << rng.randint(0, 12)
        offset = rng.randrange(0, L.PAGE_SIZE, alignment)
        out.append((size, alignment, offset))
    return out


def architectural_leak(method: str, size: int, offset_in_page: int) -> int:
    """What the installed descriptor and page mappings permit, computed: a segment share
    covers exactly the object; a page share covers every page the object touches."""
    if method == "segment":
        return 0
    pages = -(-(offset_in_page + size) // L.PAGE_SIZE)
    return pages * L.PAGE_SIZE - size


def probe_batch(
    objects: list[tuple[int, int, int]], profile: str = "i486"
) -> list[ShareProbe]:
    """Share each object by segment and by pages in one system and probe every share from
    guest code. At most :data:`BATCH` objects."""
    if not 1 <= len(objects) <= BATCH:
        raise ConfigError("objects", f"1..{BATCH} objects per batch, got {len(objects)}")
    system = LavenderSystem(profile=profile, memory_size=16 << 20, timer_period=0)
    group = system.create_group("leakage")
    content = bytearray([FILLER]) * (WINDOW * len(objects))
    for k, (size, _alignment, offset) in enumerate(objects):
        if not 1 <= size <= MAX_OBJECT or not 0 <= offset < L.PAGE_SIZE:
            raise ConfigError("objects", f"object {k}: size {size}, offset {offset}")
        start = k * WINDOW + offset
        content[start : start + size] = bytes([OBJECT]) * size
    exporter = system.create_process(
        group, "main:\n    mov eax, 0\n    int 0x30\n", data=bytes(content),
        data_size=len(content), name="exporter",
    )  # fmt: skip
    importers = [
        system.create_process(group, PROBE, max_threads=L.MAX_THREADS_PER_PROCESS,
                              name=f"importer{i}")
        for i in range(-(-2 * len(objects) // L.MAX_THREADS_PER_PROCESS))
    ]  # fmt: skip
    shares: list[tuple[str, int, int]] = []  # method, object index, thread id
    slot = 0
    for k, (size, _alignment, offset) in enumerate(objects):
        for method in ("segment", "pages"):
            importer = importers[slot // L.MAX_THREADS_PER_PROCESS]
            slot += 1
            if method == "segment":
                export = system.sharing.export_data(
                    exporter, size, offset=k * WINDOW + offset, writable=False
                )
                selector = system.sharing.import_data(importer, export)
            else:
                selector = system.sharing.share_pages(
                    exporter, k * WINDOW + offset, size, importer
                ).selector
            thread = system.create_thread(importer, "main", registers={"ebx": selector})
            shares.append((method, k, thread.tid))
    outcome = system.run(max_cycles=200_000_000)
    if outcome.status != "done":
        raise RuntimeError(f"leakage probes did not finish: {outcome}")
    results = []
    for method, k, tid in shares:
        state = system.thread_state(tid)
        assert state.registers is not None
        fault = state.fault
        size, alignment, offset = objects[k]
        results.append(ShareProbe(
            method=method, size=size, alignment=alignment, offset_in_page=offset,
            readable=state.registers.eax, object_seen=state.registers.edx,
            boundary_faulted=fault is not None and fault.vector == GP
            and fault.error_code == 0,
        ))  # fmt: skip
    return results


def run_experiment(
    count: int, seed: int = 1, *, page_aligned: bool = False, profile: str = "i486"
) -> list[ShareProbe]:
    """``count`` random objects (in batches of :data:`BATCH`), each shared both ways."""
    objects = random_objects(count, seed, page_aligned=page_aligned)
    out: list[ShareProbe] = []
    for start in range(0, count, BATCH):
        out.extend(probe_batch(objects[start : start + BATCH], profile))
    return out


def summarize(results: list[ShareProbe]) -> list[LeakageSummary]:
    """Mean, median and maximum leaked bytes per object, by method."""
    out = []
    for method in ("pages", "segment"):
        leaks = [r.leaked for r in results if r.method == method]
        if leaks:
            out.append(LeakageSummary(
                method, len(leaks), statistics.fmean(leaks), statistics.median(leaks),
                max(leaks), sum(1 for x in leaks if x == 0),
            ))  # fmt: skip
    return out
