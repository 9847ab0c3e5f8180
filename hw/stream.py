"""The packet stream convention used by every TunnelNIC block.

A packet is a run of beats on an :mod:`amaranth.lib.stream` interface (valid/ready, AXI-Stream
semantics: ``valid`` never waits for ``ready``, the payload holds steady while ``valid`` and not
``ready``). The payload is a :class:`~amaranth.lib.data.StructLayout` with

``data``  ``8*W`` bits: W bytes, lane 0 (bits 0..7) is the first byte on the wire.
``keep``  ``W`` bits: byte enables, contiguous from lane 0; only the last beat may be partial.
``last``  1 on the final beat of a packet.
``meta``  optional per-packet sideband (a layout chosen by the block), constant over the packet.

Framing lives inside the payload, so a FIFO of payloads is a FIFO of packets.
"""

from amaranth import *
from amaranth.lib import data, stream

__all__ = ["check_width", "packet_layout", "PacketSignature", "keep_count"]

#: Datapath widths (bytes per beat) the blocks are designed and tested for.
SUPPORTED_WIDTHS = (4, 8, 16)


def check_width(width):
    """Raise a clear :class:`ValueError` unless ``width`` is a supported datapath width."""
    if not isinstance(width, int) or width not in SUPPORTED_WIDTHS:
        raise ValueError(f"datapath width must be one of {SUPPORTED_WIDTHS} bytes per beat, "
                         f"not {width!r}")
    return width


def packet_layout(width, meta=None):
    """The payload layout of a packet stream ``width`` bytes wide, with optional ``meta`` shape."""
    check_width(width)
    fields = {"data": 8 * width, "keep": width, "last": 1}
    if meta is not None:
        fields["meta"] = meta
    return data.StructLayout(fields)


def PacketSignature(width, meta=None):
    """A :class:`amaranth.lib.stream.Signature` carrying :func:`packet_layout` payloads."""
    return stream.Signature(packet_layout(width, meta))


def keep_count(keep, width):
    """Hardware: number of enabled lanes of a contiguous ``keep`` (0..width)."""
    return sum((keep[i] for i in range(width)), Const(0, range(width + 1)))
