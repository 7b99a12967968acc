"""lavsim: a cycle-level simulator of a simplified IA-32 machine running the Lavender
microkernel's process model."""

__version__ = "0.1.0"
