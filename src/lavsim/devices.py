"""Devices of the simulated machine: a port-I/O bus, an interrupt controller, an interval timer
and a console port.

Port map (all documented here, the machine installs these defaults):

========= ======================= ===========================================================
port      device                  meaning
========= ======================= ===========================================================
0x20      PIC command/status      write: ICW1 (bit 4 set) starts initialisation; OCW2 0x20 is a
                                  non-specific EOI, 0x60+n a specific EOI for IRQ n; OCW3 0x0A /
                                  0x0B selects whether reads give IRR / ISR. read: IRR or ISR
0x21      PIC data                write: ICW2 (vector base, low 3 bits ignored), ICW3, ICW4
                                  during initialisation, else the mask register (IMR);
                                  read: IMR
0x40      interval timer period   read/write, any size: the period in CPU cycles; writing
                                  restarts the count from the current cycle; 0 stops the timer
0x41      interval timer count    read: cycles left until the next tick (0 when stopped)
0xE9      console                 write: the low byte is appended to the console text;
                                  read: 0xE9 (lets a guest detect the port)
========= ======================= ===========================================================

The interrupt controller is a simplified single 8259A: eight edge-triggered lines, fully
nested priority (IRQ 0 highest), no cascade, no automatic EOI, no special mask mode. A line
raised while its request is already pending is coalesced (counted in ``lost``).

The interval timer is lavsim's own (it is not an 8254: a period in CPU cycles is what a
cycle-level simulation needs): it raises IRQ 0 every ``period`` cycles, at cycles
``start + k * period``, where ``start`` is the cycle the period was set. The machine advances
it from the time-stamp counter, so ticks fall at the same cycles in every run.

Port reads of an unconnected port return all ones of the access size (a floating bus) and
writes to it are ignored, as on a PC.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from lavsim.errors import ConfigError

__all__ = [
    "CONSOLE_PORT",
    "PIC_COMMAND",
    "PIC_DATA",
    "TIMER_COUNT",
    "TIMER_PERIOD",
    "Bus",
    "Console",
    "IntervalTimer",
    "PortDevice",
    "ProgrammableInterruptController",
]

PIC_COMMAND = 0x20
PIC_DATA = 0x21
TIMER_PERIOD = 0x40
TIMER_COUNT = 0x41
CONSOLE_PORT = 0xE9

_SIZE_MASK = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF}


class PortDevice(Protocol):
    """A device on the I/O bus."""

    def io_read(self, port: int, size: int) -> int: ...

    def io_write(self, port: int, size: int, value: int) -> None: ...


class Bus:
    """Dispatches port I/O to the device that claimed the port.

    A multi-byte access goes to the device owning its first port, with the access size.
    Unclaimed ports read as all ones and ignore writes.
    """

    def __init__(self) -> None:
        self._ports: dict[int, PortDevice] = {}

    def attach(self, device: PortDevice, *ports: int) -> None:
        """Give ``ports`` to ``device``; a port already claimed is a host error."""
        for port in ports:
            if not 0 <= port <= 0xFFFF:
                raise ConfigError("port", f"port {port:#x} is outside 0..0xFFFF")
            if port in self._ports:
                raise ConfigError("port", f"port {port:#x} is already claimed")
            self._ports[port] = device

    def read(self, port: int, size: int) -> int:
        """IN: the device's value masked to ``size`` bytes, or all ones if nothing answers."""
        device = self._ports.get(port)
        if device is None:
            return _SIZE_MASK[size]
        return device.io_read(port, size) & _SIZE_MASK[size]

    def write(self, port: int, size: int, value: int) -> None:
        """OUT: hand the value to the device; ignored if no device claimed the port."""
        device = self._ports.get(port)
        if device is not None:
            device.io_write(port, size, value & _SIZE_MASK[size])


class ProgrammableInterruptController:
    """A simplified 8259A (see the module docstring for the ports and what is left out).

    ``irr`` request register, ``isr`` in-service register, ``imr`` mask register, ``base``
    the vector of IRQ 0. The machine calls :meth:`raise_irq` for device lines and
    :meth:`acknowledge` when the CPU takes the interrupt (the INTA cycle).
    """

    def __init__(self, base: int = 0x20) -> None:
        if not 0 <= base <= 0xF8 or base & 7:
            raise ConfigError("pic_base", f"vector base must be a multiple of 8 in 0..0xF8, "
                                          f"got {base:#x}")
        self.base = base
        self.irr = 0
        self.isr = 0
        self.imr = 0
        #: Raises of a line whose previous request was still pending (coalesced).
        self.lost = 0
        #: Requests acknowledged by the CPU.
        self.acknowledged = 0
        self._read_isr = False
        # Initialisation sequence: which ICW the next data-port write is (0 = none).
        self._icw = 0
        self._need_icw3 = False
        self._need_icw4 = False

    # --- checkpoints --------------------------------------------------------------------------
    _STATE_FIELDS = ("base", "irr", "isr", "imr", "lost", "acknowledged", "_read_isr", "_icw",
                     "_need_icw3", "_need_icw4")

    def get_state(self) -> dict[str, int]:
        """Every register and counter, as ints (booleans as 0/1), for a checkpoint."""
        return {name.lstrip("_"): int(getattr(self, name)) for name in self._STATE_FIELDS}

    def set_state(self, state: Mapping[str, int]) -> None:
        """Put back what :meth:`get_state` returned (``KeyError``/``ValueError`` if malformed,
        nothing changed)."""
        values = {name: int(state[name.lstrip("_")]) for name in self._STATE_FIELDS}
        if not 0 <= values["base"] <= 0xF8 or values["base"] & 7:
            raise ValueError(f"PIC base {values['base']:#x}")
        for name in ("irr", "isr", "imr"):
            if not 0 <= values[name] <= 0xFF:
                raise ValueError(f"PIC {name} {values[name]:#x}")
        for name, value in values.items():
            setattr(self, name, bool(value) if name in ("_read_isr", "_need_icw3",
                                                        "_need_icw4") else value)

    # --- lines and the CPU side --------------------------------------------------------------
    def raise_irq(self, line: int) -> None:
        """An edge on IRQ ``line`` (0..7)."""
        bit = 1 << (line & 7)
        if self.irr & bit:
            self.lost += 1
        self.irr |= bit

    def _highest(self, bits: int) -> int | None:
        for line in range(8):
            if bits & (1 << line):
                return line
        return None

    def pending_line(self) -> int | None:
        """The line the controller would present: the highest-priority unmasked request
        above every line in service (fully nested mode), or None."""
        line = self._highest(self.irr & ~self.imr)
        if line is None:
            return None
        in_service = self._highest(self.isr)
        if in_service is not None and in_service <= line:
            return None
        return line

    @property
    def output(self) -> bool:
        """The INTR line to the CPU."""
        return self.pending_line() is not None

    def acknowledge(self) -> int | None:
        """INTA: move the presented request into service and return its vector."""
        line = self.pending_line()
        if line is None:
            return None
        self.irr &= ~(1 << line)
        self.isr |= 1 << line
        self.acknowledged += 1
        return self.base + line

    # --- port I/O ------------------------------------------------------------------------------
    def io_read(self, port: int, size: int) -> int:
        if port == PIC_COMMAND:
            return self.isr if self._read_isr else self.irr
        return self.imr

    def io_write(self, port: int, size: int, value: int) -> None:
        value &= 0xFF
        if port == PIC_COMMAND:
            self._command(value)
        else:
            self._data(value)

    def _command(self, value: int) -> None:
        if value & 0x10:  # ICW1
            self._icw = 2
            self._need_icw3 = not value & 0x02  # not single mode: a cascade ICW3 follows
            self._need_icw4 = bool(value & 0x01)
            self.imr = 0
            self.isr = 0
            self.irr = 0
            self._read_isr = False
            return
        if value & 0x18 == 0x08:  # OCW3: bit 1 set selects the register reads return
            if value & 0x02:
                self._read_isr = bool(value & 0x01)
            return
        # OCW2: the EOI commands; rotations are not modelled and ignored.
        command = value & 0xE0
        if command == 0x20:  # non-specific EOI: the highest-priority line in service
            line = self._highest(self.isr)
            if line is not None:
                self.isr &= ~(1 << line)
        elif command == 0x60:  # specific EOI
            self.isr &= ~(1 << (value & 7))

    def _data(self, value: int) -> None:
        if self._icw == 2:
            self.base = value & 0xF8
            self._icw = 3 if self._need_icw3 else (4 if self._need_icw4 else 0)
        elif self._icw == 3:
            self._icw = 4 if self._need_icw4 else 0
        elif self._icw == 4:
            self._icw = 0
        else:
            self.imr = value


class IntervalTimer:
    """Raises IRQ 0 of ``pic`` every ``period`` cycles (0: stopped); see the module docstring.
    """

    def __init__(
        self,
        pic: ProgrammableInterruptController,
        clock: Callable[[], int],
        period: int = 0,
        line: int = 0,
    ) -> None:
        self.pic = pic
        #: Returns the current cycle (the machine's time-stamp counter).
        self.clock = clock
        self.line = line
        self.period = 0
        self.next_event: int | None = None
        #: Ticks raised so far.
        self.ticks = 0
        self.set_period(period, clock())

    def get_state(self) -> dict[str, int | None]:
        """Period, next event (None when stopped) and tick count, for a checkpoint."""
        return {"period": self.period, "next_event": self.next_event, "ticks": self.ticks,
                "line": self.line}

    def set_state(self, state: Mapping[str, int | None]) -> None:
        """Put back what :meth:`get_state` returned (``KeyError``/``ValueError``/``TypeError``
        if malformed, nothing changed)."""
        period, event, ticks, line = (state["period"], state["next_event"], state["ticks"],
                                      state["line"])
        if not isinstance(period, int) or period < 0:
            raise ValueError(f"timer period {period!r}")
        if not isinstance(ticks, int) or ticks < 0 or not isinstance(line, int):
            raise ValueError(f"timer ticks {ticks!r} / line {line!r}")
        if (event is None) != (period == 0) or (event is not None and not isinstance(event, int)):
            raise ValueError(f"timer next event {event!r} with period {period}")
        self.period, self.next_event, self.ticks, self.line = period, event, ticks, line & 7

    def set_period(self, period: int, now: int) -> None:
        """Program the period (cycles) and restart counting at cycle ``now``."""
        if period < 0:
            raise ConfigError("timer_period", f"must be >= 0, got {period}")
        self.period = period
        self.next_event = now + period if period else None

    def advance(self, now: int) -> bool:
        """Raise a tick for every event at or before cycle ``now``; True if any was raised."""
        event = self.next_event
        if event is None or now < event:
            return False
        period = self.period
        count = (now - event) // period + 1
        for _ in range(count):
            self.pic.raise_irq(self.line)
        self.ticks += count
        self.next_event = event + count * period
        return True

    def io_read(self, port: int, size: int) -> int:
        if port == TIMER_PERIOD:
            return self.period
        return 0 if self.next_event is None else max(0, self.next_event - self.clock())

    def io_write(self, port: int, size: int, value: int) -> None:
        if port == TIMER_PERIOD:
            self.set_period(value, self.clock())


class Console:
    """A write-only character port: bytes written become :attr:`text` (Latin-1)."""

    def __init__(self) -> None:
        self._data = bytearray()

    @property
    def text(self) -> str:
        return self._data.decode("latin-1")

    @property
    def data(self) -> bytes:
        return bytes(self._data)

    def set_data(self, data: bytes) -> None:
        """Replace everything written so far (restoring a checkpoint)."""
        self._data[:] = data

    def io_read(self, port: int, size: int) -> int:
        return CONSOLE_PORT

    def io_write(self, port: int, size: int, value: int) -> None:
        self._data.append(value & 0xFF)
