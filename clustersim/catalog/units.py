"""Units the catalog's data files may use, and their one-time conversion to SI.

A chip file writes each figure as the vendor quotes it (`{value: 3.35, unit: TB/s}`); the
loader turns it into SI (bytes, bytes/s, FLOP/s, W, USD) here, once. Decimal prefixes are
powers of 1000 (GB = 1e9 bytes), binary ones powers of 1024 (GiB = 2**30 bytes); `Gb/s` is
bits per second (divide by 8).
"""

from __future__ import annotations

from typing import Final

BYTES: Final = "bytes"
BYTES_S: Final = "bytes/s"
FLOPS: Final = "FLOP/s"
WATTS: Final = "W"
USD: Final = "USD"
COUNT: Final = "count"

UNITS: Final[dict[str, tuple[str, float]]] = {
    # capacity
    "B": (BYTES, 1.0),
    "MB": (BYTES, 1e6),
    "GB": (BYTES, 1e9),
    "TB": (BYTES, 1e12),
    "MiB": (BYTES, 2.0**20),
    "GiB": (BYTES, 2.0**30),
    "TiB": (BYTES, 2.0**40),
    # bandwidth, bytes
    "B/s": (BYTES_S, 1.0),
    "GB/s": (BYTES_S, 1e9),
    "TB/s": (BYTES_S, 1e12),
    "GiB/s": (BYTES_S, 2.0**30),
    "TiB/s": (BYTES_S, 2.0**40),
    # bandwidth, bits (NIC and link rates)
    "Gb/s": (BYTES_S, 1e9 / 8),
    "Tb/s": (BYTES_S, 1e12 / 8),
    # compute
    "TFLOPS": (FLOPS, 1e12),
    "PFLOPS": (FLOPS, 1e15),
    # power
    "W": (WATTS, 1.0),
    "kW": (WATTS, 1e3),
    # money
    "USD": (USD, 1.0),
}
"""unit -> (dimension, SI factor). The whole vocabulary a chip file may use."""


def units_of(dimension: str) -> list[str]:
    """Units that measure `dimension`, in table order (for error messages).

    >>> units_of(WATTS)
    ['W', 'kW']
    """
    return [unit for unit, (dim, _) in UNITS.items() if dim == dimension]


def to_si(value: float, unit: str) -> float:
    """`value` in `unit` converted to its SI base (bytes, bytes/s, FLOP/s, W, USD).

    Raises KeyError for a unit outside UNITS; callers turn that into a SpecError.

    >>> to_si(80, "GB")
    80000000000.0
    >>> to_si(400, "Gb/s")  # a 400G NIC moves 50 GB/s
    50000000000.0
    >>> to_si(32, "GiB") == 32 * 2**30
    True
    """
    _, factor = UNITS[unit]
    return float(value) * factor
