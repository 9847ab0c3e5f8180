"""The high-level TunnelNIC driver: identity check, profiles, TSO/RSC settings, counters,
flow table. Runs unchanged over every transport (:mod:`.transport`)::

    nic = Nic(SerialTransport("/dev/ttyUSB1", 115200))
    await nic.connect()                      # refuses a bitstream of another map
    await nic.load_profile(0, "vxlan")       # a preset, validated against the device
    await nic.set_tso(enable=True, mss_default=1448)
    print(await nic.counters())              # every counter, one pass
    print(await nic.flow_table(active=True))  # open RSC contexts: flow key, next seq, count

All register knowledge comes from :func:`tunnelnic.regmap.compile_map` for the parameters the
device reports, so the driver and the bitstream must agree on the layout hash.
"""

from hw.profile import FIELDS, WORDS, pack_words, unpack_words

from ..regmap import compile_map

__all__ = ["Nic", "IdentityError", "MAGIC", "VERSION_MAJOR"]

MAGIC = 0x544E4943
VERSION_MAJOR = 1
# Identity registers sit at fixed addresses in every version of the map.
_MAGIC_ADDR, _VERSION_ADDR, _LAYOUT_ADDR, _CAPS0, _CAPS1, _CAPS2 = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14


class IdentityError(Exception):
    """The device is not a TunnelNIC, or its register map is not the one this driver knows."""


class Nic:
    def __init__(self, transport):
        self.t = transport
        self.map = None
        self.identity = None
        self.totals = {}

    # ------------------------------------------------------------------ identity
    async def connect(self):
        """Read identity and capabilities; raise :class:`IdentityError` on any mismatch."""
        magic = await self.t.read(_MAGIC_ADDR)
        if magic != MAGIC:
            raise IdentityError(f"no TunnelNIC here: magic 0x{magic:08x}, expected 0x{MAGIC:08x}")
        version = await self.t.read(_VERSION_ADDR)
        major, minor = version >> 16, version & 0xFFFF
        if major != VERSION_MAJOR:
            raise IdentityError(f"register map version {major}.{minor} is not supported by this "
                                f"driver (major {VERSION_MAJOR}): update the driver or bitstream")
        caps0, caps1, caps2 = [await self.t.read(a) for a in (_CAPS0, _CAPS1, _CAPS2)]
        params = {"W": caps0 & 0xFF, "P": (caps0 >> 8) & 0xFF, "N": caps0 >> 16,
                  "POOL": caps1 & 0xFFFF, "WINDOW": (caps1 >> 16) & 0x3FF, "OPAQUE": caps2 & 0xFF}
        rm = compile_map(params)
        layout = await self.t.read(_LAYOUT_ADDR)
        if layout != rm.layout_hash:
            raise IdentityError(f"register layout hash 0x{layout:08x} differs from this driver's "
                                f"0x{rm.layout_hash:08x} for {params}: the bitstream was built "
                                f"from another regmap/tunnelnic.rdl")
        self.map = rm
        self.identity = {"version": f"{major}.{minor}", "layout": layout,
                         "has_tso": bool(caps2 >> 8 & 1), "has_rsc": bool(caps2 >> 9 & 1),
                         **params}
        return self.identity

    def _need(self):
        if self.map is None:
            raise RuntimeError("call connect() first")
        return self.map

    # ------------------------------------------------------------------ raw registers
    async def read_reg(self, path):
        reg = self._need()[path]
        return reg.decode(await self.t.read(reg.address))

    async def write_reg(self, path, **fields):
        """Write fields of one register; fields not named keep their value (read-modify-write
        unless every writable field is given)."""
        reg = self._need()[path]
        writable = {f.name for f in reg.fields if f.sw_writable}
        unknown = set(fields) - writable
        if unknown:
            raise ValueError(f"{path} has no writable field(s) {sorted(unknown)} "
                             f"(writable: {sorted(writable)})")
        base = 0
        if set(fields) != writable and reg.readable:
            base = await self.t.read(reg.address)
            for f in reg.fields:   # never write back a pulse
                if f.singlepulse:
                    base &= ~f.mask
        await self.t.write(reg.address, reg.encode(fields, base))

    # ------------------------------------------------------------------ profiles
    def _check_slot(self, slot):
        p = self._need().params["P"]
        if not isinstance(slot, int) or not 0 <= slot < p:
            raise ValueError(f"profile slot {slot!r} out of range: this device has {p} (0..{p - 1})")

    def profile_fields(self, preset=None, **fields):
        """The validated field dict for a preset (with overrides) or explicit fields."""
        from .. import presets
        opaque = self._need().params["OPAQUE"]
        if preset is not None:
            return presets.preset(preset, opaque_bytes=opaque, **fields)
        full = {name: 0 for name, *_ in FIELDS}
        unknown = set(fields) - set(full)
        if unknown:
            raise ValueError(f"unknown profile field(s) {sorted(unknown)}")
        full.update(fields)
        presets.validate(full, opaque_bytes=opaque)
        return full

    async def load_profile(self, slot, preset=None, **fields):
        """Load ``slot`` from a preset name (plus overrides) or explicit fields. The profile is
        disabled while its words change and enabled (if asked) by the last write."""
        self._check_slot(slot)
        profile = self.profile_fields(preset, **fields)
        words = pack_words(profile)
        base = self.map[f"profile[{slot}].word0"].address
        await self.t.write(base, words[0] & ~1)
        for i in range(1, WORDS):
            await self.t.write(base + 4 * i, words[i])
        await self.t.write(base, words[0])
        return profile

    async def read_profile(self, slot):
        self._check_slot(slot)
        base = self.map[f"profile[{slot}].word0"].address
        return unpack_words([await self.t.read(base + 4 * i) for i in range(WORDS)])

    async def enable_profile(self, slot, enable=True):
        self._check_slot(slot)
        await self.write_reg(f"profile[{slot}].word0", enable=int(enable))

    # ------------------------------------------------------------------ TSO / RSC
    async def set_tso(self, enable=None, mss_default=None):
        fields = {}
        if mss_default is not None:
            if not 1 <= mss_default < (1 << 14):
                raise ValueError(f"mss_default={mss_default} must be 1..16383")
            fields["mss_default"] = mss_default
        if enable is not None:
            fields["enable"] = int(enable)
        await self.write_reg("tso.ctrl", **fields)

    async def set_rsc(self, enable=None, timeout_us=None, size_cap=None, seg_cap=None):
        if timeout_us is not None:
            if not 0 <= timeout_us < (1 << 16):
                raise ValueError(f"timeout_us={timeout_us} must be 0..65535 (0: no timeout)")
            await self.write_reg("rsc.timeout", timeout_us=timeout_us)
        caps = {}
        if size_cap is not None:
            if not 1 <= size_cap <= 65535 - 40:
                raise ValueError(f"size_cap={size_cap} must be 1..65495 so no IP total length "
                                 f"exceeds 65535")
            caps["size_cap"] = size_cap
        if seg_cap is not None:
            if not 1 <= seg_cap < 128:
                raise ValueError(f"seg_cap={seg_cap} must be 1..127")
            caps["seg_cap"] = seg_cap
        if caps:
            await self.write_reg("rsc.caps", **caps)
        if enable is not None:
            await self.write_reg("rsc.ctrl", enable=int(enable))

    async def flush_all(self):
        await self.write_reg("rsc.ctrl", flush_all=1)

    # ------------------------------------------------------------------ counters, flow table
    async def counters(self, groups=None):
        """Every counter (or those of ``groups``), read once (reads clear them):
        ``{group: {name: events since the previous call}}``; running totals accumulate in
        :attr:`totals`."""
        snap = {}
        for reg in self._need():
            if not reg.fields[0].counter or (groups is not None and reg.path[0] not in groups):
                continue
            # "rsc_stats.merged" -> "merged"; "mac[1].rx_good" -> "[1].rx_good".
            group = reg.path[0]
            name = reg.dotted[len(group):].lstrip(".")
            value = await self.t.read(reg.address)
            snap.setdefault(group, {})[name] = value
            tot = self.totals.setdefault(group, {})
            tot[name] = tot.get(name, 0) + value
        return snap

    async def flow_table(self, contexts=None, active=False):
        """The RSC flow table, one dict per context (slot order; only open contexts with
        ``active``): ``slot``, ``valid``, ``tunnel``, ``profile``, ``count`` (segments merged),
        ``mss``, ``next_seq``, the flow key (``outer_src``, ``outer_dst``, ``inner_src``,
        ``inner_dst``: IPv4 addresses as integers; ``sport``, ``dport``, ``flow``: the
        profile's flow field) and ``tag``, the CAM tag of that key (computed here, as the
        engine does). A context without an open aggregate reads all 0 (and has no tag)."""
        from ..model.rsc import flow_tag
        rm = self._need()
        n = rm.params["N"] if contexts is None else contexts
        regs = [r for r in rm.group("flow") if r.path[1] != "select"]
        table = []
        for slot in range(n):
            await self.write_reg("flow.select", index=slot)
            raw = {r.path[1]: r.decode(await self.t.read(r.address)) for r in regs}
            st, ports = raw["state"], raw["ports"]
            ctx = {"slot": slot, "valid": bool(st["valid"]), "tunnel": st["tunnel"],
                   "profile": st["profile"], "count": st["count"], "mss": st["mss"],
                   "next_seq": raw["next_seq"]["seq"],
                   "outer_src": raw["outer_src"]["addr"], "outer_dst": raw["outer_dst"]["addr"],
                   "inner_src": raw["inner_src"]["addr"], "inner_dst": raw["inner_dst"]["addr"],
                   "sport": ports["sport"], "dport": ports["dport"],
                   "flow": raw["flow_field"]["value"]}
            ctx["tag"] = flow_tag(self.flow_key(ctx)) if ctx["valid"] else None
            if ctx["valid"] or not active:
                table.append(ctx)
        return table

    @staticmethod
    def flow_key(ctx):
        """The flow key of a :meth:`flow_table` entry, in the form of
        :func:`tunnelnic.model.rsc.flow_key`."""
        return (ctx["tunnel"], ctx["profile"], ctx["outer_src"], ctx["outer_dst"],
                ctx["inner_src"], ctx["inner_dst"], ctx["sport"], ctx["dport"], ctx["flow"])

    # ------------------------------------------------------------------ board and self-test
    async def board(self):
        """Board capabilities, link status and control: ``{"ports", "core_mhz", "host_max",
        "link0", "speed0", ..., "tso_request", "role", "host_max_frame"}`` (0s on a bare core)."""
        out = {}
        for path in ("board.caps", "board.status", "board.ctrl"):
            out.update(await self.read_reg(path))
        return out

    async def set_board(self, tso_request=None, role=None, host_max_frame=None):
        """Board control: every host-port frame a TSO request; one-port role (``"host"`` or
        ``"network"``); the longest frame sent to the host port (caps RSC aggregates)."""
        fields = {}
        if tso_request is not None:
            fields["tso_request"] = int(tso_request)
        if role is not None:
            if role not in ("host", "network", 0, 1):
                raise ValueError(f"role must be 'host' or 'network', not {role!r}")
            fields["role"] = int(role in ("network", 1))
        if host_max_frame is not None:
            if not 60 <= host_max_frame < (1 << 14):
                raise ValueError(f"host_max_frame={host_max_frame} must be 60..16383")
            fields["host_max_frame"] = host_max_frame
        if fields:
            await self.write_reg("board.ctrl", **fields)

    async def inject(self, frame, path="tx", tso=False):
        """Send ``frame`` (bytes without FCS) once from the self-test buffer into the TX path
        (``"tx"``: as if from the host port; ``tso``: as a TSO request) or the RX path
        (``"rx"``: as if from the network port). Raises ValueError if it does not fit."""
        if path not in ("tx", "rx"):
            raise ValueError(f"path must be 'tx' or 'rx', not {path!r}")
        frame = bytes(frame)
        st = await self.read_reg("selftest.inject_status")
        if not 1 <= len(frame) <= st["size"]:
            raise ValueError(f"a {len(frame)}-byte frame does not fit the {st['size']}-byte "
                             f"inject buffer")
        if st["busy"]:
            raise RuntimeError("the inject buffer is still sending the previous frame")
        rm = self._need()
        go = rm["selftest.inject"]
        await self.t.write(go.address, go.encode({"rewind": 1}))
        data = rm["selftest.inject_data"].address
        padded = frame + bytes(-len(frame) % 4)
        for k in range(0, len(padded), 4):
            await self.t.write(data, int.from_bytes(padded[k:k + 4], "little"))
        await self.t.write(go.address, go.encode({"go": 1, "path": int(path == "rx"),
                                                 "tso": int(tso), "length": len(frame)}))

    async def capture_arm(self, port):
        """Empty the capture buffer and capture the frames that then leave ``port`` (0: host
        port, 1: network port); they are still sent."""
        if port not in (0, 1):
            raise ValueError(f"port must be 0 or 1, not {port!r}")
        await self.write_reg("selftest.capture", arm=1, port=port)

    async def captured(self):
        """The frames captured since :meth:`capture_arm` (whole frames, in order), as bytes."""
        rm = self._need()
        w = rm.params["W"]
        count = (await self.read_reg("selftest.capture_status"))["frames"]
        lengths = [(await self.read_reg("selftest.capture_length"))["length"]
                   for _ in range(count)]
        data = rm["selftest.capture_data"].address
        frames = []
        for n in lengths:
            words = -(-n // w) * w // 4      # each frame starts on a fresh row of W bytes
            raw = bytearray()
            for _ in range(words):
                raw += (await self.t.read(data)).to_bytes(4, "little")
            frames.append(bytes(raw[:n]))
        return frames
