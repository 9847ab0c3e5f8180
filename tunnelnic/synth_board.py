"""Build a board's bitstream: Amaranth platform files -> yowasp yosys -> nextpnr-ecp5 -> ecppack.

Amaranth's platform prepares the RTLIL and the LPF (pin locations, IO attributes, clock
constraints); ``constraints/<board>.lpf`` is appended when it exists. The tools then run through
:func:`tunnelnic.synth.run_flow` (the same flow and report as ``tunnelnic synth``), so the build
needs nothing but the pinned PyPI packages.
"""

import re
import time
from pathlib import Path

from boards import get_spec
from boards.top import BoardTop

from .synth import run_flow

__all__ = ["build_board", "expected_clocks", "CONSTRAINTS_DIR"]

CONSTRAINTS_DIR = Path(__file__).resolve().parents[1] / "constraints"

_PACKAGES = {"BG256": "CABGA256", "MG285": "CSFBGA285", "BG381": "CABGA381",
             "BG554": "CABGA554", "BG756": "CABGA756"}


def _display_clock(net):
    """The domain name of a clock net as nextpnr reports it (``clk`` is the PLL's ``sync``)."""
    if net == "clk" or net.endswith(".sync_clk") or net.endswith("clk_op"):
        return "sync"
    if net.endswith("clk_os2") or net.endswith("core_clk"):
        return "core"
    m = re.search(r"(tx90|rx\d+|core)_clk$", net)
    if m:
        return m.group(1)
    return net


def expected_clocks(spec, core_div=None):
    """Every clock the board design must have and its target in MHz (``core`` with the NIC)."""
    clocks = {"sync": 125.0, "tx90": 125.0}
    clocks.update({f"rx{n}": 125.0 for n in range(len(spec.eth_ports))})
    if core_div is not None:
        from boards.clocking import core_mhz
        clocks["core"] = round(core_mhz(core_div), 3)
    return clocks


def _check_clocks(result, expected):
    """Rename nextpnr's clock nets to domains; apply the targets; every clock must be there."""
    fmax = {_display_clock(k): v for k, v in result["fmax"].items()}
    target = {c: expected.get(c, result["target"].get(k))
              for k, c in ((k, _display_clock(k)) for k in result["fmax"])}
    missing = sorted(set(expected) - set(fmax))
    for clock in missing:  # a clock with no timed path is a build defect, not a pass
        fmax[clock] = 0.0
        target[clock] = expected[clock]
    result["fmax"], result["target"], result["missing_clocks"] = fmax, target, missing
    result["critical"] = {_display_clock(k): v for k, v in result.get("critical", {}).items()}
    result["met"] = all(fmax.get(c, 0.0) >= t for c, t in target.items() if t is not None)


def build_board(board="versa", out="build", *, seed=1, bitstream=True, datapath="auto", log=None,
                nic=None, stop=None, nextpnr_args=()):
    """Build ``board`` into ``out/<board>/``; return the report dict of :func:`run_flow`.

    ``datapath`` is ``auto``, ``nic``, ``mac`` or ``standin`` (see :class:`boards.top.BoardTop`);
    ``nic`` overrides :data:`boards.top.NIC_PARAMS`. The dict also has ``board``, ``datapath``,
    ``nic`` (the parameters built), ``bitstream``/``svf`` paths and ``seconds`` (per tool, total).
    ``stop`` (:data:`tunnelnic.synth.STOPS`) ends the flow after yosys, packing or placement
    (no bitstream); clocks are checked only when there is timing (``place``: nextpnr's estimate
    of the placed design), otherwise ``met`` is None. ``nextpnr_args`` are appended to
    nextpnr's command line (e.g. ``["--sdf", "placed.sdf"]``, written into ``out/<board>/``).
    """
    spec = get_spec(board)
    say = log or (lambda msg: None)
    start = time.monotonic()
    workdir = Path(out) / spec.name
    workdir.mkdir(parents=True, exist_ok=True)
    platform = spec.platform(**spec.platform_kwargs)
    extra = CONSTRAINTS_DIR / f"{spec.name}.lpf"
    overrides = {}
    if extra.exists():
        overrides["add_preferences"] = extra.read_text()
    say(f"elaborating {spec.title} -> {workdir}/")
    top = BoardTop(spec, datapath=datapath, nic=nic)
    plan = platform.prepare(top, name="top", **overrides)
    say(f"datapath: {top.chosen_datapath}")
    plan.extract(str(workdir))
    result = run_flow(workdir, "top", device=platform.device,
                      package=_PACKAGES.get(platform.package, platform.package),
                      speed=int(platform.speed), seed=seed, clock_nets={},
                      bitstream=bitstream, log=say, stop=stop, nextpnr_args=nextpnr_args)
    core_div = top.nic["core_div"] if top.chosen_datapath == "nic" else None
    if stop not in ("synth", "pack"):
        _check_clocks(result, expected_clocks(spec, core_div))
    if top.chosen_datapath == "nic":
        result["nic"] = {k: list(v) if isinstance(v, tuple) else v for k, v in top.nic.items()}
    result["board"] = spec.name
    result["title"] = spec.title
    result["datapath"] = top.chosen_datapath
    result["seconds"]["total"] = round(time.monotonic() - start, 1)
    return result
