"""The one byte-order helper of the project.

Network fields are big-endian on the wire, and lane 0 of a beat is the first byte on the wire,
while Amaranth's ``Cat()`` and bit/array index 0 are the *least* significant. Every conversion
between the two goes through these functions, so nobody writes ``Cat(reversed(...))`` by hand.
"""

from amaranth import *

__all__ = ["lane", "lanes", "be_value", "be_bytes", "be_to_lanes"]


def lane(data, index):
    """Byte ``index`` (0 = first on the wire) of a beat's ``data`` signal."""
    return data.word_select(index, 8)


def lanes(data, width):
    """All ``width`` bytes of a beat, in wire order."""
    return [lane(data, i) for i in range(width)]


def be_value(wire_bytes):
    """Combine bytes given in wire order into the big-endian integer they encode."""
    return Cat(*reversed(list(wire_bytes)))


def be_bytes(value, count):
    """Split ``value`` into ``count`` bytes in wire (big-endian) order."""
    value = Value.cast(value)
    if len(value) > 8 * count:
        raise ValueError(f"a {len(value)}-bit value does not fit {count} bytes")
    padded = Cat(value.as_unsigned(), Const(0, 8 * count - len(value)))
    return [padded.word_select(count - 1 - i, 8) for i in range(count)]


def be_to_lanes(value, count):
    """Place a big-endian ``count``-byte value onto ``count`` consecutive lanes (lane 0 first)."""
    return Cat(*be_bytes(value, count))
