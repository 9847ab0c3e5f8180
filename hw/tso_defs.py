"""Definitions shared by the TSO engine and its reference model: refusal reasons, statistics.

Kept apart from the engine so the host-side model (:mod:`tunnelnic.model.tso`) and the register
map can import them without elaborating any gateware.
"""

from amaranth.lib import data, enum

__all__ = ["TsoReason", "tso_stats_layout", "DEFAULT_MAX_FRAME", "DEFAULT_MSS", "GRE_PROTO",
           "GRE_C"]

#: Largest frame (bytes, without FCS) a segment may have: jumbo 9000-byte MTU with room for
#: Ethernet, VLAN tags and any tunnel header the header window allows.
DEFAULT_MAX_FRAME = 9216
#: Reset value of the default-MSS register (plain TCP over a 1500-byte MTU with timestamps).
DEFAULT_MSS = 1448
#: Outer IPv4 protocol of GRE (RFC 2784), and the C (checksum present) bit of its first byte:
#: such a GRE checksum is recomputed per segment.
GRE_PROTO = 47
GRE_C = 0x80


class TsoReason(enum.Enum, shape=3):
    """What the TSO did with a packet (``SEGMENTED`` or why it passed it through unchanged)."""
    SEGMENTED = 0        #: cut into segments
    NO_REQUEST = 1       #: no TSO request in the descriptor, or the engine is disabled
    NOT_OFFLOADABLE = 2  #: the parse record says no (``cls.tso_ok == 0``: see ``cls.reason``)
    MSS_ZERO = 3         #: the effective MSS (request, else the default register) is 0
    MSS_TOO_LARGE = 4    #: header + MSS does not fit the maximum frame
    LENGTH = 5           #: tunnel: the inner datagram does not end where the outer one ends
    TRUNCATED = 6        #: (not a pass-through) the frame ended before its IP total length:
    #:                      the complete segments were sent, the partial one dropped


def tso_stats_layout(width):
    """Per-cycle statistic increments of the engine (the register map sums them).

    Every 1-bit field pulses once per event; ``bytes_out`` is the number of bytes leaving on
    ``o`` in this cycle (segments and pass-throughs).
    """
    return data.StructLayout({
        "superframes": 1,        # packets accepted for segmentation
        "segments": 1,           # segments sent
        "bytes_out": range(width + 1),
        "passed": 1,             # packets passed through (any reason)
        "pass_no_request": 1,
        "pass_not_offloadable": 1,
        "pass_mss_zero": 1,
        "pass_mss_too_large": 1,
        "pass_length": 1,
        "truncated": 1,          # superframes cut short (see TsoReason.TRUNCATED)
    })
