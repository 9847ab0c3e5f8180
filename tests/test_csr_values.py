"""hw.csr.struct_value: whole-vector values of nested struct ports (the NIC core assigns the CSR
block's ``sts`` and ``events`` with it)."""

from amaranth import C, Const
from amaranth.lib import data

from hw.csr import struct_value


def test_narrow_leaves_are_zero_extended_in_place():
    # A 1-bit value in a 32-bit leaf must not shift the leaves after it (it did: the flow-table
    # view read its words one bit off).
    layout = data.StructLayout({"a": 32, "b": 32, "c": data.ArrayLayout(8, 2), "d": 5})
    v = struct_value(layout, {("a",): C(1, 1), ("b",): C(0xDEADBEEF, 32),
                              ("c", 1): C(3, 2), ("d",): C(0x7F, 7)})
    got = Const.cast(v).value
    assert len(v) == layout.size
    assert got == 1 | 0xDEADBEEF << 32 | 3 << 72 | 0x1F << 80


def test_missing_leaves_read_zero():
    layout = data.StructLayout({"x": 4, "y": data.StructLayout({"z": 12})})
    assert Const.cast(struct_value(layout, {("y", "z"): C(0xABC, 12)})).value == 0xABC << 4
