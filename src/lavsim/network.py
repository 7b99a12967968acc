"""A network joining several machines: the cost model, the wire, and each machine's interface.

:class:`NetworkModel` is the configuration (a frozen value, every field checked, a
:class:`~lavsim.errors.ConfigError` names a bad one). :class:`Network` carries frames between
:class:`NetworkInterface` devices; :class:`lavsim.cluster.Cluster` advances the machines in
lock-step and hands each frame to its receiver at the cycle it arrives.

Cost of one frame of ``n`` bytes (header included) sent at cycle ``t`` of the sender::

    departure = max(t, the end of the sender's previous transmission)   # one wire per NIC
    arrival   = departure + n * per_byte + latency

Both terms are *modelled* cycles (no guest instruction runs for them); the sender's CPU pays
only for the instructions of its driver (the OUTs that start the transmission), the receiver's
for its interrupt handler and copies. DMA by the interface costs the CPU nothing (cycle stealing
is not modelled).

Network interface register map (port I/O, 32-bit registers, at ``NIC_BASE`` = 0x300; the
machine's PIC line ``NIC_IRQ`` = 3):

========= ============== ====================================================================
port      register       meaning
========= ============== ====================================================================
0x300     ID             read: this host's id (1..n; 0 is "this host" in address structures)
0x304     STATUS         read: bit q set = a frame was put in receive queue q since the bit
                         was last cleared; write: clears the bits written as 1 (W1C)
0x308     TX_ADDR        read/write: physical address of the frame to transmit
0x30C     TX_LEN         write: length in bytes; transmits the frame now (DMA read of TX_ADDR
                         .. TX_ADDR+len-1); read: frames transmitted so far
0x310     TX_STATUS      read: result of the last transmission: 0 sent, 1 no such host (or
                         host down), 2 bad length (< FRAME_HEADER or > the MTU)
0x314     RX0_RING       read/write: physical address of receive queue 0's ring
0x318     RX1_RING       read/write: physical address of receive queue 1's ring
0x31C     RX_SLOTS       read/write: slots per ring; writing it resets both rings' next slot
                         to 0 (the driver writes it after the ring addresses)
0x320     RX_DROPPED     read: frames dropped (the next slot still owned by the driver, or
                         the frame longer than a slot)
0x324     RX0_TIMER      write n > 0: arm queue 0's receive timer to expire n cycles from now;
0x328     RX1_TIMER      write 0: disarm it. The next frame put in the queue disarms it; if
                         none comes first, at expiry the interface sets STATUS bit q and
                         raises NIC_IRQ with nothing in the ring (a receive timeout, as a
                         UART's character timeout). Read: cycles left, 0 when disarmed
========= ============== ====================================================================

A frame (built by the sender in its memory, little-endian dwords)::

    +0  destination host id
    +4  receive queue at the destination (bit 0: 0 requests, 1 replies)
    +8  source host id (overwritten by the receiving interface: it cannot be forged)
    +12 payload (the network servers' protocol, lavsim.netserver)

A receive ring is ``RX_SLOTS`` slots of ``RX_SLOT_SIZE`` bytes; a slot is a length dword (0:
the slot belongs to the interface) followed by the frame. The interface writes the next slot of
the frame's queue (if its length is 0), then its length, advances to the next slot (cyclically),
sets STATUS bit q and raises ``NIC_IRQ``. The driver copies the frame out and writes 0 to the
length to give the slot back. Two queues let a driver wake the thread waiting for requests and
the one waiting for replies separately, as multi-queue interfaces steer frames by a header field.

**Faults** (:class:`NetworkFaults`, a frozen checked configuration; its mutable part, the random
generator and the counters, is one :class:`FaultState`): each frame put on the wire by
:meth:`Network.send` may be dropped, delayed by extra cycles, held back so that the next frame
on the same link overtakes it (reordered), and duplicated, each with its own probability, all
drawn from one seeded generator in a fixed order, so that the same seed and the same program
give the same cycles bit for bit. Delayed, held and duplicated frames are ordinary frames in
flight. A crashed host (:meth:`Network.crash`) is unreachable from then on (TX_STATUS 1) and the
frames in flight to it are lost; the cluster stops running its machine.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from lavsim.errors import ConfigError, MemoryAccessError

__all__ = [
    "FRAME_HEADER",
    "NIC_BASE",
    "NIC_IRQ",
    "NIC_PORTS",
    "RX_QUEUES",
    "RX_SLOT_SIZE",
    "FaultCounters",
    "FaultState",
    "Frame",
    "Network",
    "NetworkFaults",
    "NetworkInterface",
    "NetworkModel",
]

NIC_BASE = 0x300
NIC_ID = NIC_BASE + 0x00
NIC_STATUS = NIC_BASE + 0x04
NIC_TX_ADDR = NIC_BASE + 0x08
NIC_TX_LEN = NIC_BASE + 0x0C
NIC_TX_STATUS = NIC_BASE + 0x10
NIC_RX0_RING = NIC_BASE + 0x14
NIC_RX1_RING = NIC_BASE + 0x18
NIC_RX_SLOTS = NIC_BASE + 0x1C
NIC_RX_DROPPED = NIC_BASE + 0x20
NIC_RX0_TIMER = NIC_BASE + 0x24
NIC_RX1_TIMER = NIC_BASE + 0x28
NIC_PORTS = (NIC_ID, NIC_STATUS, NIC_TX_ADDR, NIC_TX_LEN, NIC_TX_STATUS, NIC_RX0_RING,
             NIC_RX1_RING, NIC_RX_SLOTS, NIC_RX_DROPPED, NIC_RX0_TIMER, NIC_RX1_TIMER)
NIC_IRQ = 3
RX_QUEUES = 2
#: Bytes of one receive-ring slot: a length dword and at most RX_SLOT_SIZE - 4 frame bytes.
RX_SLOT_SIZE = 4096
#: Destination, queue, source.
FRAME_HEADER = 12

TX_OK = 0
TX_NO_HOST = 1
TX_BAD_LENGTH = 2

_MAX_INT = 1 << 40


#: Bound of the cycle counts and counters in a saved state (the TSC is 64 bits).
_MAX_STATE = 1 << 64


def _state_int(field: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{field}: {value!r} is not an int in {low}..{high}")
    return value


def _state_host(field: str, value: object, interfaces: Mapping[int, object]) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value not in interfaces:
        raise ValueError(f"{field}: {value!r} is not a host of this network")


def _positive(field: str, value: object, low: int, high: int = _MAX_INT) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, f"must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ConfigError(field, f"must be in {low}..{high}, got {value}")


@attrs.frozen
class NetworkModel:
    """How frames cross the network, in CPU cycles of the hosts (all hosts share one clock rate).

    ``latency``: cycles from the end of a frame's transmission to its arrival in the
    receiver's ring (propagation, switching, the receiving interface), at least 1;
    ``per_byte``: cycles per byte on the wire (the inverse of the bandwidth: at 33 MHz,
    1 cycle per byte is 33 MB/s), at least 0; ``mtu``: the largest frame in bytes, header
    included (at most ``RX_SLOT_SIZE - 4``); ``quantum``: cycles each host runs before the
    others catch up (lock-step), 1..``latency``, None for ``latency`` itself. Because no frame
    arrives sooner than ``latency`` after it leaves, a frame never arrives in the past of the
    host that receives it, so every run is deterministic.
    """

    latency: int = 2_000
    per_byte: int = 1
    mtu: int = RX_SLOT_SIZE - 4
    quantum: int | None = None

    def __attrs_post_init__(self) -> None:
        _positive("latency", self.latency, 1)
        _positive("per_byte", self.per_byte, 0, 1 << 20)
        _positive("mtu", self.mtu, 64, RX_SLOT_SIZE - 4)
        if self.quantum is not None:
            _positive("quantum", self.quantum, 1, self.latency)

    @property
    def step(self) -> int:
        """The lock-step quantum in force."""
        return self.latency if self.quantum is None else self.quantum

    def frame_cycles(self, length: int) -> int:
        """Modelled cycles of one frame of ``length`` bytes from departure to arrival."""
        return length * self.per_byte + self.latency


@attrs.frozen(order=True)
class Frame:
    """A frame on the wire: it arrives at ``arrival`` (receiver's cycle); ``seq`` orders frames
    arriving at the same cycle by transmission order."""

    arrival: int
    seq: int
    source: int = attrs.field(order=False)
    destination: int = attrs.field(order=False)
    data: bytes = attrs.field(order=False, repr=lambda b: f"<{len(b)} bytes>")


@attrs.define
class LinkStats:
    """Counters of one interface."""

    frames_sent: int = 0
    bytes_sent: int = 0
    frames_received: int = 0
    bytes_received: int = 0
    frames_dropped: int = 0
    unreachable: int = 0
    timeouts: int = 0


def _probability(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(field, f"must be a probability (a float in 0..1), not "
                                 f"{type(value).__name__}")
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise ConfigError(field, f"must be a probability in 0..1, got {value!r}")


#: The largest extra delay or hold of a frame, in cycles.
MAX_FAULT_CYCLES = 1 << 30


@attrs.frozen
class NetworkFaults:
    """What the network does wrong, deterministically from ``seed``.

    For every frame put on the wire, in this order: ``drop`` (probability that it is lost),
    ``delay`` (probability that it arrives ``delay_cycles`` = (low, high) extra cycles late,
    uniform, inclusive), ``reorder`` (probability that it is held back until the next frame on
    the same link, same source and destination, overtakes it: the held frame then arrives one
    cycle after that frame, or ``reorder_hold`` cycles late if none follows in time),
    ``duplicate`` (probability that a copy follows it, ``delay_cycles`` later). ``crashes``:
    (host id, global cycle) pairs: the host crashes at that cycle of :meth:`Cluster.run
    <lavsim.cluster.Cluster.run>` (it stops, frames to it are lost, sending to it reports
    "host down"), each host at most once.
    """

    seed: int = 0
    drop: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0
    delay_cycles: tuple[int, int] = (1, 10_000)
    reorder: float = 0.0
    reorder_hold: int = 20_000
    crashes: tuple[tuple[int, int], ...] = ()

    def __attrs_post_init__(self) -> None:
        _positive("seed", self.seed, 0, (1 << 64) - 1)
        for field in ("drop", "duplicate", "delay", "reorder"):
            _probability(field, getattr(self, field))
        pair = self.delay_cycles
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise ConfigError("delay_cycles", "must be a (low, high) tuple of two ints")
        _positive("delay_cycles", pair[0], 0, MAX_FAULT_CYCLES)
        _positive("delay_cycles", pair[1], pair[0], MAX_FAULT_CYCLES)
        _positive("reorder_hold", self.reorder_hold, 1, MAX_FAULT_CYCLES)
        if not isinstance(self.crashes, tuple):
            raise ConfigError("crashes", "must be a tuple of (host id, cycle) pairs")
        seen: set[int] = set()
        for entry in self.crashes:
            if not isinstance(entry, tuple) or len(entry) != 2:
                raise ConfigError("crashes", f"each entry must be a (host id, cycle) pair, "
                                             f"got {entry!r}")
            _positive("crashes", entry[0], 1, 0xFFFF)
            _positive("crashes", entry[1], 0)
            if entry[0] in seen:
                raise ConfigError("crashes", f"host {entry[0]} is listed twice")
            seen.add(entry[0])

    @property
    def frame_faults(self) -> bool:
        """Whether any per-frame fault can happen (else no random number is drawn)."""
        return bool(self.drop or self.duplicate or self.delay or self.reorder)


@attrs.define
class FaultCounters:
    """What the faults did: frames ``dropped``, ``delayed``, ``reordered`` (held back for the
    next frame on their link to overtake), ``duplicated`` (copies made), ``lost`` (in flight to,
    or sent to, a host that crashed)."""

    dropped: int = 0
    delayed: int = 0
    reordered: int = 0
    duplicated: int = 0
    lost: int = 0


_COUNTERS = tuple(f.name for f in attrs.fields(FaultCounters))
#: Random.getstate(): version 3, 624 words of the Mersenne twister and its position, no gauss.
_MT_WORDS = 625


class FaultState:
    """The fault model's mutable state, in one place so that a snapshot can save it: the random
    generator, the counters, the frames held back for reordering (by link, the held frame's
    ``seq``) and the hosts that have crashed. :meth:`get_state` gives a JSON-ready dict,
    :meth:`check_state` refuses a bad one naming the key, :meth:`set_state` installs one."""

    def __init__(self, config: NetworkFaults) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.counters = FaultCounters()
        self.held: dict[tuple[int, int], int] = {}
        self.crashed: set[int] = set()

    def get_state(self) -> dict[str, object]:
        version, words, gauss = self.rng.getstate()
        return {
            "rng": [version, list(words), gauss],
            "counters": attrs.asdict(self.counters),
            "held": [[src, dst, seq] for (src, dst), seq in sorted(self.held.items())],
            "crashed": sorted(self.crashed),
        }

    @staticmethod
    def check_state(state: object) -> None:
        """Raise :class:`ConfigError` (its field the offending key) unless ``state`` is what
        :meth:`get_state` gives."""
        if not isinstance(state, dict) or set(state) != {"rng", "counters", "held", "crashed"}:
            raise ConfigError("faults", "must be a dict with keys rng, counters, held, crashed")
        rng = state["rng"]
        if (not isinstance(rng, list) or len(rng) != 3 or rng[0] != 3 or rng[2] is not None
                or not isinstance(rng[1], list) or len(rng[1]) != _MT_WORDS):
            raise ConfigError("faults.rng", "must be [3, 625 words, None] (Random.getstate)")
        for word in rng[1][:-1]:
            _positive("faults.rng", word, 0, 0xFFFFFFFF)
        _positive("faults.rng", rng[1][-1], 1, _MT_WORDS - 1)
        counters = state["counters"]
        if not isinstance(counters, dict) or set(counters) != set(_COUNTERS):
            raise ConfigError("faults.counters", f"must have exactly the keys {_COUNTERS}")
        for name in _COUNTERS:
            _positive(f"faults.counters.{name}", counters[name], 0)
        held = state["held"]
        if not isinstance(held, list):
            raise ConfigError("faults.held", "must be a list of [source, destination, seq]")
        links = set()
        for entry in held:
            if not isinstance(entry, list) or len(entry) != 3:
                raise ConfigError("faults.held", f"bad entry {entry!r}")
            for value in entry:
                _positive("faults.held", value, 0)
            links.add((entry[0], entry[1]))
        if len(links) != len(held):
            raise ConfigError("faults.held", "a link is listed twice")
        crashed = state["crashed"]
        if not isinstance(crashed, list):
            raise ConfigError("faults.crashed", "must be a list of host ids")
        for host in crashed:
            _positive("faults.crashed", host, 1, 0xFFFF)

    def set_state(self, state: dict[str, object]) -> None:
        """Install a state from :meth:`get_state` (checked first: a bad one changes nothing)."""
        self.check_state(state)
        rng = state["rng"]
        assert isinstance(rng, list)
        counters = state["counters"]
        assert isinstance(counters, dict)
        held = state["held"]
        assert isinstance(held, list)
        crashed = state["crashed"]
        assert isinstance(crashed, list)
        self.rng.setstate((rng[0], tuple(rng[1]), rng[2]))
        self.counters = FaultCounters(**counters)
        self.held = {(src, dst): seq for src, dst, seq in held}
        self.crashed = set(crashed)


class Network:
    """The wire: frames in flight between the interfaces attached to it, ordered by arrival;
    ``faults`` (default: none) says what goes wrong on it (:class:`NetworkFaults`)."""

    def __init__(self, model: NetworkModel, faults: NetworkFaults | None = None) -> None:
        if not isinstance(model, NetworkModel):
            raise ConfigError("network", "must be a NetworkModel")
        if faults is None:
            faults = NetworkFaults()
        if not isinstance(faults, NetworkFaults):
            raise ConfigError("faults", "must be a NetworkFaults")
        self.model = model
        self.faults = FaultState(faults)
        self.interfaces: dict[int, NetworkInterface] = {}
        self.down: set[int] = set()
        self._in_flight: list[Frame] = []
        self._seq = 0

    def attach(self, interface: NetworkInterface) -> None:
        if interface.host_id in self.interfaces:
            raise ConfigError("host_id", f"host {interface.host_id} is already attached")
        self.interfaces[interface.host_id] = interface

    def reachable(self, host: int) -> bool:
        return (host in self.interfaces and host not in self.down
                and host not in self.faults.crashed)

    def send(self, source: int, destination: int, data: bytes, departure: int) -> int | None:
        """Put a frame on the wire; returns its arrival cycle, or None if the network lost it
        (dropped by a fault, or its destination has crashed)."""
        state = self.faults
        if destination in state.crashed:
            state.counters.lost += 1
            return None
        arrival = departure + self.model.frame_cycles(len(data))
        config = state.config
        if not config.frame_faults:
            self._put(Frame(arrival, self._next_seq(), source, destination, data))
            return arrival
        # Four draws per frame whatever happens, so that one fault's probability does not
        # shift the others' random streams.
        rng = state.rng
        drop, delay, reorder, duplicate = (rng.random() for _ in range(4))
        if drop < config.drop:
            state.counters.dropped += 1
            return None
        if delay < config.delay:
            arrival += rng.randint(*config.delay_cycles)
            state.counters.delayed += 1
        link = (source, destination)
        held = state.held.pop(link, None)
        if held is not None:
            self._overtaken(held, arrival + 1, config.reorder_hold)
        seq = self._next_seq()
        if reorder < config.reorder:
            self._put(Frame(arrival + config.reorder_hold, seq, source, destination, data))
            state.held[link] = seq
            state.counters.reordered += 1
        else:
            self._put(Frame(arrival, seq, source, destination, data))
        if duplicate < config.duplicate:
            lag = rng.randint(*config.delay_cycles)
            self._put(Frame(arrival + lag, self._next_seq(), source, destination, data))
            state.counters.duplicated += 1
        return arrival

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _put(self, frame: Frame) -> None:
        bisect.insort(self._in_flight, frame)

    def _overtaken(self, seq: int, arrival: int, hold: int) -> None:
        """The frame ``seq`` held back ``hold`` cycles on its link now arrives at ``arrival``
        (after the frame that overtook it), but never before it would have without the hold,
        and not at all if it has arrived already. Moving it earlier is safe: a later frame's
        arrival is at least a latency after the current quantum began."""
        for k, frame in enumerate(self._in_flight):
            if frame.seq == seq:
                released = max(arrival, frame.arrival - hold)
                if frame.arrival > released:
                    del self._in_flight[k]
                    self._put(attrs.evolve(frame, arrival=released))
                return

    def crash(self, host: int) -> None:
        """``host`` crashes: unreachable from now on, the frames in flight to it are lost."""
        state = self.faults
        state.crashed.add(host)
        kept = [f for f in self._in_flight if f.destination != host]
        state.counters.lost += len(self._in_flight) - len(kept)
        self._in_flight = kept

    def next_arrival(self, host: int) -> int | None:
        """The earliest arrival cycle of a frame in flight to ``host``, or None."""
        for frame in self._in_flight:
            if frame.destination == host:
                return frame.arrival
        return None

    def take_arrived(self, host: int, now: int) -> list[Frame]:
        """Remove and return the frames to ``host`` arriving at or before cycle ``now``."""
        taken = [f for f in self._in_flight if f.destination == host and f.arrival <= now]
        if taken:
            self._in_flight = [f for f in self._in_flight if f not in taken]
        return taken

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    # --- checkpoints (lavsim.cluster's snapshot files) -------------------------------------
    def get_state(self) -> dict[str, Any]:
        """The wire's mutable state as JSON data: the frames in flight (arrival, seq, source,
        destination, bytes as hex) in arrival order, the sequence counter, the hosts that are
        down, and ``faults`` (the fault model's own ``get_state()``) when the network has one."""
        state: dict[str, Any] = {
            "seq": self._seq,
            "down": sorted(self.down),
            "in_flight": [[f.arrival, f.seq, f.source, f.destination, f.data.hex()]
                          for f in self._in_flight],
        }
        faults = getattr(self, "faults", None)
        if faults is not None:
            state["faults"] = faults.get_state()
        return state

    def check_state(self, state: object) -> None:
        """``ValueError`` naming the field unless ``state`` (from :meth:`get_state`) fits this
        network: every frame between attached hosts, of a length the model allows, in arrival
        order; the hosts down attached; a fault-model state exactly when it has a fault model."""
        faults = getattr(self, "faults", None)
        keys = {"seq", "down", "in_flight"} | ({"faults"} if faults is not None else set())
        if isinstance(state, dict) and ("faults" in state) != (faults is not None):
            raise ValueError("network.faults: the snapshot's network " + (
                "has a fault model and this one has none" if faults is None
                else "has no fault model and this one has one"))
        if not isinstance(state, dict) or set(state) != keys:
            raise ValueError(f"network: must have exactly the keys {sorted(keys)}")
        seq = _state_int("network.seq", state["seq"], 0, _MAX_STATE)
        down = state["down"]
        if not isinstance(down, list) or len(set(map(repr, down))) != len(down):
            raise ValueError("network.down: must be a list of distinct host ids")
        for k, host in enumerate(down):
            _state_host(f"network.down[{k}]", host, self.interfaces)
        frames = state["in_flight"]
        if not isinstance(frames, list):
            raise ValueError("network.in_flight: must be a list")
        last: tuple[int, int] = (-1, -1)
        for k, item in enumerate(frames):
            where = f"network.in_flight[{k}]"
            if not isinstance(item, list) or len(item) != 5:
                raise ValueError(f"{where}: must be [arrival, seq, source, destination, hex]")
            arrival = _state_int(f"{where}.arrival", item[0], 0, _MAX_STATE)
            order = (arrival, _state_int(f"{where}.seq", item[1], 1, seq))
            if order < last:
                raise ValueError(f"{where}: frames must be in arrival order")
            last = order
            _state_host(f"{where}.source", item[2], self.interfaces)
            _state_host(f"{where}.destination", item[3], self.interfaces)
            data = item[4]
            if not isinstance(data, str) or len(data) > 2 * self.model.mtu:
                raise ValueError(f"{where}.data: must be at most {self.model.mtu} bytes as hex")
            try:
                length = len(bytes.fromhex(data))
            except ValueError:
                raise ValueError(f"{where}.data: not hex") from None
            if length < FRAME_HEADER:
                raise ValueError(f"{where}.data: {length} bytes is shorter than a header")
        if faults is not None:
            faults.check_state(state["faults"])

    def set_state(self, state: dict[str, Any]) -> None:
        """Install a state :meth:`check_state` accepted."""
        self._seq = state["seq"]
        self.down = set(state["down"])
        self._in_flight = [Frame(a, q, s, d, bytes.fromhex(h)) for a, q, s, d, h in
                           state["in_flight"]]
        faults = getattr(self, "faults", None)
        if faults is not None:
            faults.set_state(state["faults"])


class NetworkInterface:
    """One machine's network interface (a port-I/O device doing DMA; see the module docstring
    for the registers). ``read_memory``/``write_memory`` are the machine's physical memory
    (``write_memory`` must drop decoded instructions of the frames written, as
    :meth:`lavsim.machine.Machine.load` does); ``raise_irq`` raises the interrupt line;
    ``clock`` gives the machine's cycle counter."""

    def __init__(
        self,
        host_id: int,
        network: Network,
        clock: Callable[[], int],
        read_memory: Callable[[int, int], bytes],
        write_memory: Callable[[int, bytes], None],
        raise_irq: Callable[[], None],
    ) -> None:
        _positive("host_id", host_id, 1, 0xFFFF)
        self.host_id = host_id
        self.network = network
        self.clock = clock
        self.read_memory = read_memory
        self.write_memory = write_memory
        self.raise_irq = raise_irq
        self.status = 0
        self.tx_addr = 0
        self.tx_status = TX_OK
        self.rx_rings = [0] * RX_QUEUES
        self.rx_slots = 0
        self.rx_next = [0] * RX_QUEUES
        #: Cycle at which the wire is free again after the last transmission.
        self.tx_free = 0
        #: Per queue: the cycle its receive timer expires, None when disarmed.
        self.rx_deadline: list[int | None] = [None] * RX_QUEUES
        self.stats = LinkStats()
        network.attach(self)

    # --- port I/O --------------------------------------------------------------------------
    def io_read(self, port: int, size: int) -> int:
        if port == NIC_ID:
            return self.host_id
        if port == NIC_STATUS:
            return self.status
        if port == NIC_TX_ADDR:
            return self.tx_addr
        if port == NIC_TX_LEN:
            return self.stats.frames_sent
        if port == NIC_TX_STATUS:
            return self.tx_status
        if port in (NIC_RX0_RING, NIC_RX1_RING):
            return self.rx_rings[(port - NIC_RX0_RING) // 4]
        if port == NIC_RX_SLOTS:
            return self.rx_slots
        if port == NIC_RX_DROPPED:
            return self.stats.frames_dropped
        if port in (NIC_RX0_TIMER, NIC_RX1_TIMER):
            deadline = self.rx_deadline[(port - NIC_RX0_TIMER) // 4]
            return 0 if deadline is None else max(0, deadline - self.clock()) & 0xFFFFFFFF
        return 0xFFFFFFFF

    def io_write(self, port: int, size: int, value: int) -> None:
        if port == NIC_STATUS:
            self.status &= ~value
        elif port == NIC_TX_ADDR:
            self.tx_addr = value
        elif port == NIC_TX_LEN:
            self._transmit(value)
        elif port in (NIC_RX0_RING, NIC_RX1_RING):
            self.rx_rings[(port - NIC_RX0_RING) // 4] = value
        elif port == NIC_RX_SLOTS:
            self.rx_slots = value
            self.rx_next = [0] * RX_QUEUES
        elif port in (NIC_RX0_TIMER, NIC_RX1_TIMER):
            self.rx_deadline[(port - NIC_RX0_TIMER) // 4] = (
                self.clock() + value if value else None)

    # --- receive timers ----------------------------------------------------------------------
    def next_timer(self) -> int | None:
        """The earliest cycle a receive timer expires, or None."""
        armed = [d for d in self.rx_deadline if d is not None]
        return min(armed) if armed else None

    def expire_timers(self, now: int) -> None:
        """Fire every receive timer due at or before ``now``: STATUS bit q and the interrupt,
        with nothing put in the ring."""
        for queue, deadline in enumerate(self.rx_deadline):
            if deadline is not None and deadline <= now:
                self.rx_deadline[queue] = None
                self.stats.timeouts += 1
                self.status |= 1 << queue
                self.raise_irq()

    # --- checkpoints -----------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """The card's registers, ring pointers, counters and TX timing as JSON data."""
        return {
            "host_id": self.host_id, "status": self.status, "tx_addr": self.tx_addr,
            "tx_status": self.tx_status, "rx_rings": list(self.rx_rings),
            "rx_slots": self.rx_slots, "rx_next": list(self.rx_next), "tx_free": self.tx_free,
            "rx_deadline": list(self.rx_deadline), "stats": attrs.asdict(self.stats),
        }  # fmt: skip

    def check_state(self, state: object, memory_size: int | None = None) -> None:
        """``ValueError`` naming the field unless ``state`` (from :meth:`get_state`) fits this
        card: its host id, registers in range, each ring's next slot inside the ring and, given
        the machine's ``memory_size``, every ring that is set inside installed memory (the
        Lavender driver places its rings in the kernel's network area)."""
        keys = {"host_id", "status", "tx_addr", "tx_status", "rx_rings", "rx_slots", "rx_next",
                "tx_free", "rx_deadline", "stats"}
        if not isinstance(state, dict) or set(state) != keys:
            raise ValueError(f"nic: must have exactly the keys {sorted(keys)}")
        if state["host_id"] != self.host_id:
            raise ValueError(f"nic.host_id: {state['host_id']!r} is not this card's "
                             f"{self.host_id}")
        _state_int("nic.status", state["status"], 0, (1 << RX_QUEUES) - 1)
        _state_int("nic.tx_addr", state["tx_addr"], 0, 0xFFFFFFFF)
        _state_int("nic.tx_status", state["tx_status"], TX_OK, TX_BAD_LENGTH)
        slots = _state_int("nic.rx_slots", state["rx_slots"], 0, 0xFFFFFFFF)
        _state_int("nic.tx_free", state["tx_free"], 0, _MAX_STATE)
        deadlines = state["rx_deadline"]
        if not isinstance(deadlines, list) or len(deadlines) != RX_QUEUES:
            raise ValueError(f"nic.rx_deadline: must be a list of {RX_QUEUES} cycles or nulls")
        for q, deadline in enumerate(deadlines):
            if deadline is not None:
                _state_int(f"nic.rx_deadline[{q}]", deadline, 0, _MAX_STATE)
        for name in ("rx_rings", "rx_next"):
            if not isinstance(state[name], list) or len(state[name]) != RX_QUEUES:
                raise ValueError(f"nic.{name}: must be a list of {RX_QUEUES} ints")
        for q in range(RX_QUEUES):
            ring = _state_int(f"nic.rx_rings[{q}]", state["rx_rings"][q], 0, 0xFFFFFFFF)
            _state_int(f"nic.rx_next[{q}]", state["rx_next"][q], 0, max(slots - 1, 0))
            if memory_size is not None and ring and slots and (
                ring + slots * RX_SLOT_SIZE > memory_size
            ):
                raise ValueError(f"nic.rx_rings[{q}]: the ring at {ring:#x} ({slots} slots) "
                                 f"is not inside installed memory ({memory_size:#x} bytes)")
        stats = state["stats"]
        names = set(attrs.asdict(self.stats))
        if not isinstance(stats, dict) or set(stats) != names:
            raise ValueError(f"nic.stats: must have exactly the counters {sorted(names)}")
        for name, value in stats.items():
            _state_int(f"nic.stats.{name}", value, 0, _MAX_STATE)

    def set_state(self, state: dict[str, Any]) -> None:
        """Install a state :meth:`check_state` accepted."""
        self.status = state["status"]
        self.tx_addr = state["tx_addr"]
        self.tx_status = state["tx_status"]
        self.rx_rings = list(state["rx_rings"])
        self.rx_slots = state["rx_slots"]
        self.rx_next = list(state["rx_next"])
        self.tx_free = state["tx_free"]
        self.rx_deadline = list(state["rx_deadline"])
        self.stats = LinkStats(**state["stats"])

    # --- the wire --------------------------------------------------------------------------
    def _transmit(self, length: int) -> None:
        if not FRAME_HEADER <= length <= self.network.model.mtu:
            self.tx_status = TX_BAD_LENGTH
            return
        data = bytearray(self.read_memory(self.tx_addr, length))
        destination = int.from_bytes(data[0:4], "little")
        if not self.network.reachable(destination) or destination == self.host_id:
            self.tx_status = TX_NO_HOST
            self.stats.unreachable += 1
            return
        now = self.clock()
        departure = max(now, self.tx_free)
        self.tx_free = departure + length * self.network.model.per_byte
        self.network.send(self.host_id, destination, bytes(data), departure)
        self.tx_status = TX_OK
        self.stats.frames_sent += 1
        self.stats.bytes_sent += length

    def deliver(self, frame: Frame) -> bool:
        """Put an arrived frame into its receive queue (DMA) and interrupt; False if dropped."""
        data = bytearray(frame.data)
        data[8:12] = frame.source.to_bytes(4, "little")
        queue = int.from_bytes(data[4:8], "little") & (RX_QUEUES - 1)
        ring = self.rx_rings[queue]
        if not self.rx_slots or not ring or len(data) > RX_SLOT_SIZE - 4:
            self.stats.frames_dropped += 1
            return False
        slot = ring + self.rx_next[queue] * RX_SLOT_SIZE
        try:
            if int.from_bytes(self.read_memory(slot, 4), "little") != 0:
                self.stats.frames_dropped += 1
                return False
            # Check the far end first so that a slot running past installed memory writes
            # nothing at all.
            self.read_memory(slot + 4 + len(data) - 1, 1)
            self.write_memory(slot + 4, bytes(data))
            self.write_memory(slot, len(data).to_bytes(4, "little"))
        except MemoryAccessError:
            # The guest pointed its ring outside installed memory: the DMA fails and the card
            # drops the frame; the host never sees a Python error.
            self.stats.frames_dropped += 1
            return False
        self.rx_next[queue] = (self.rx_next[queue] + 1) % self.rx_slots
        self.rx_deadline[queue] = None
        self.stats.frames_received += 1
        self.stats.bytes_received += len(data)
        self.status |= 1 << queue
        self.raise_irq()
        return True
