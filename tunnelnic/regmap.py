"""The register map, compiled from ``regmap/tunnelnic.rdl`` (the one source of truth).

:func:`compile_map` elaborates the SystemRDL source with systemrdl-compiler for a set of
parameters (W, P, N, POOL, WINDOW, OPAQUE) and flattens it into a :class:`RegisterMap`: a list of
:class:`Register` (path, byte address, :class:`Field` list). Everything else is built from that:
the gateware CSR block (:mod:`hw.csr`), the host driver (:mod:`tunnelnic.driver`), and the layout
hash both sides compare. The profile registers are checked against :data:`hw.profile.FIELDS`
at every compile, so the RDL and the gateware's profile format cannot drift.
"""

import functools
import zlib
from dataclasses import dataclass, field as dc_field
from pathlib import Path

__all__ = ["RDL_PATH", "DEFAULTS", "Field", "Register", "RegisterMap", "compile_map",
           "compile_rdl", "RegmapError"]

RDL_PATH = Path(__file__).resolve().parents[1] / "regmap" / "tunnelnic.rdl"
#: Top-level parameters of the RDL and their defaults (the docs and C header use these).
DEFAULTS = {"W": 8, "P": 8, "N": 32, "POOL": 64, "WINDOW": 256, "OPAQUE": 64}


class RegmapError(Exception):
    """The register map source is inconsistent with the gateware (or cannot be compiled)."""


@dataclass(frozen=True)
class Field:
    name: str
    lsb: int
    width: int
    sw: str            #: "r", "w", "rw" (software access)
    hw: str            #: "r", "w", "na" (hardware access)
    reset: int | None  #: reset value (None: driven by hardware)
    counter: bool = False
    incrwidth: int = 1
    rclr: bool = False
    singlepulse: bool = False
    swacc: bool = False   #: hardware sees a pulse when software reads the register
    swmod: bool = False   #: hardware sees a pulse when software writes the register

    @property
    def mask(self):
        return ((1 << self.width) - 1) << self.lsb

    @property
    def sw_readable(self):
        return "r" in self.sw

    @property
    def sw_writable(self):
        return "w" in self.sw

    def extract(self, word):
        return (word >> self.lsb) & ((1 << self.width) - 1)


@dataclass(frozen=True)
class Register:
    path: tuple        #: e.g. ("profile", 3, "word0"): names, and indices of array elements
    address: int       #: byte address
    fields: tuple
    name: str = ""     #: human name from the RDL
    desc: str = ""

    @property
    def dotted(self):
        """``profile[3].word0`` style path."""
        out = ""
        for p in self.path:
            out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + p)
        return out

    @property
    def readable(self):
        return any(f.sw_readable for f in self.fields)

    @property
    def writable(self):
        return any(f.sw_writable for f in self.fields)

    def field(self, name):
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.dotted} has no field {name!r} "
                       f"(fields: {', '.join(f.name for f in self.fields)})")

    def decode(self, word):
        return {f.name: f.extract(word) for f in self.fields}

    def encode(self, values, base=0):
        """``base`` with the named fields replaced; unknown names and oversize values raise."""
        word = base
        for name, value in values.items():
            f = self.field(name)
            value = int(value)
            if not 0 <= value < (1 << f.width):
                raise ValueError(f"{self.dotted}.{name}={value} does not fit {f.width} bits")
            word = (word & ~f.mask) | (value << f.lsb)
        return word & 0xFFFF_FFFF

    def reset_value(self):
        return sum((f.reset or 0) << f.lsb for f in self.fields)


@dataclass
class RegisterMap:
    params: dict
    registers: list
    by_path: dict = dc_field(default_factory=dict)
    by_address: dict = dc_field(default_factory=dict)

    def __post_init__(self):
        for r in self.registers:
            self.by_path[r.dotted] = r
            self.by_address[r.address] = r

    def __getitem__(self, dotted):
        try:
            return self.by_path[dotted]
        except KeyError:
            raise KeyError(f"no register {dotted!r} in the TunnelNIC map") from None

    def __iter__(self):
        return iter(self.registers)

    def group(self, prefix):
        """Registers whose path starts with ``prefix`` (a regfile name such as ``rsc_stats``)."""
        return [r for r in self.registers if r.path[0] == prefix]

    @property
    def size(self):
        return max(r.address for r in self.registers) + 4

    @property
    def layout_hash(self):
        """CRC-32 of paths, addresses and field geometry/access (not reset values, which carry
        the capabilities): what the driver and the bitstream must agree on."""
        text = ";".join(f"{r.dotted}@{r.address:x}:" + ",".join(
            f"{f.name}/{f.lsb}/{f.width}/{f.sw}/{f.hw}/{int(f.counter)}/{int(f.rclr)}"
            + ("/swacc" if f.swacc else "") + ("/swmod" if f.swmod else "")
            for f in r.fields) for r in self.registers)
        return zlib.crc32(text.encode())


def _norm_params(params):
    unknown = set(params or {}) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown register map parameters {sorted(unknown)}; "
                         f"known: {sorted(DEFAULTS)}")
    full = dict(DEFAULTS)
    full.update({k: int(v) for k, v in (params or {}).items()})
    return full


def compile_rdl(params=None):
    """The elaborated systemrdl-compiler root for ``params`` (for PeakRDL exporters)."""
    from systemrdl import RDLCompiler
    rdlc = RDLCompiler()
    rdlc.compile_file(str(RDL_PATH))
    return rdlc.elaborate(parameters=_norm_params(params))


def _access(a):
    return a.name.replace("1", "") if a is not None else "na"


@functools.lru_cache(maxsize=16)
def _compile(key):
    from systemrdl.node import RegNode, RootNode
    params = dict(key)
    root = compile_rdl(params)
    regs = []
    for node in root.top.descendants(unroll=True):
        if not isinstance(node, RegNode):
            continue
        path = []
        n = node
        while not isinstance(n.parent, RootNode):
            if n.is_array:
                path.append(n.current_idx[-1])
            path.append(n.inst_name)
            n = n.parent
        path.reverse()
        # Array element index follows its name: ("profile", 3, "word0").
        fields = tuple(Field(
            name=f.inst_name, lsb=f.lsb, width=f.width, sw=_access(f.get_property("sw")),
            hw=_access(f.get_property("hw")), reset=f.get_property("reset"),
            counter=bool(f.get_property("counter")),
            incrwidth=int(f.get_property("incrwidth") or 1),
            rclr=bool(f.get_property("rclr")), singlepulse=bool(f.get_property("singlepulse")),
            swacc=bool(f.get_property("swacc")), swmod=bool(f.get_property("swmod")))
            for f in node.fields())
        regs.append(Register(tuple(path), node.absolute_address, fields,
                             node.get_property("name") or "", node.get_property("desc") or ""))
    regs.sort(key=lambda r: r.address)
    rm = RegisterMap(params, regs)
    _check_profiles(rm)
    return rm


def _check_profiles(rm):
    from hw.profile import FIELDS, WORDS
    want = sorted(FIELDS, key=lambda f: (f[1], f[2]))
    for slot in range(rm.params["P"]):
        got = []
        for word in range(WORDS):
            reg = rm[f"profile[{slot}].word{word}"]
            if reg.address != rm[f"profile[{slot}].word0"].address + 4 * word:
                raise RegmapError(f"profile[{slot}].word{word} is not contiguous")
            got += [(f.name, word, f.lsb, f.width) for f in reg.fields]
        if sorted(got, key=lambda f: (f[1], f[2])) != want:
            raise RegmapError(
                f"profile registers of {RDL_PATH.name} differ from hw/profile.py FIELDS:\n"
                f"  RDL:    {sorted(set(got) - set(want))}\n"
                f"  FIELDS: {sorted(set(want) - set(got))}")


def compile_map(params=None):
    """The :class:`RegisterMap` for ``params`` (missing ones take :data:`DEFAULTS`); cached."""
    return _compile(tuple(sorted(_norm_params(params).items())))
