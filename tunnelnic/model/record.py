"""The parse record as bits: model dicts <-> :func:`hw.layouts.ParseRecord` values.

A test puts ``encode_record(parse(frame, profiles))`` on a stream's ``tuser`` or compares a
DUT's ``tuser`` with it; :func:`decode_record` turns DUT bits back into the dict form so a
mismatch can be reported field by field (see :func:`diff_records`).
"""

import enum
from functools import lru_cache

from amaranth.lib import data

from hw.layouts import ParseRecord

__all__ = ["encode_record", "decode_record", "diff_records", "record_layout"]


@lru_cache(maxsize=None)
def record_layout(opaque_bytes=64):
    """The (cached) :func:`hw.layouts.ParseRecord` layout for ``opaque_bytes``."""
    return ParseRecord(opaque_bytes)


def encode_record(rec, opaque_bytes=64):
    """Model record (nested dict of ints) -> integer of the layout's bits."""
    layout = record_layout(opaque_bytes)
    return layout.const(rec).as_bits()


def _to_plain(view):
    """A ``data.Const`` view (or leaf) -> nested dict of ints."""
    if isinstance(view, data.Const):
        return {name: _to_plain(view[name]) for name, _ in view.shape()}
    if isinstance(view, enum.Enum):
        return view.value
    return int(view)


def decode_record(bits, opaque_bytes=64):
    """Integer of the layout's bits -> model record (nested dict of ints)."""
    layout = record_layout(opaque_bytes)
    return _to_plain(layout.from_bits(bits))


def diff_records(expected, actual, prefix=""):
    """List of ``"path: expected X, got Y"`` strings where two records differ."""
    out = []
    for key, value in expected.items():
        other = actual.get(key) if isinstance(actual, dict) else None
        if isinstance(value, dict):
            out += diff_records(value, other or {}, f"{prefix}{key}.")
        elif value != other:
            out.append(f"{prefix}{key}: expected {value:#x}, got "
                       f"{other:#x}" if isinstance(other, int) else
                       f"{prefix}{key}: expected {value!r}, got {other!r}")
    return out
