"""``tunnelnic synth BLOCK``: resources and fmax of one block on an ECP5 (the performance
instrument).

BLOCK is a name from :data:`BLOCKS` or ``package.module:Class``. The class is constructed with
``width=W`` when its constructor takes ``width``, plus every ``--param k=v`` (values are Python
literals when they parse as one, strings otherwise). Exit status: 0 when every clock meets its
target (or the flow stopped before timing, ``--stop synth|pack``), 1 when one does not,
2 for a usage error (unknown block, bad parameter).
"""

import ast
import importlib
import inspect
import json
import sys

__all__ = ["BLOCKS", "ROUTERS", "resolve_block", "make_block", "register"]

#: Short names of the project's blocks. A block that has not landed yet gives a clear error.
BLOCKS = {
    "parser": "hw.parser:HeaderParser",
    "classifier": "hw.classifier:Classifier",
    "tso": "hw.tso:TsoEngine",
    "rsc": "hw.rsc:RscEngine",
    "cam": "hw.cam:TagCam",
    "mac": "hw.mac:EthMac",
    "csr": "hw.csr:CsrBlock",
    "core": "hw.core:NicCore",
    "fifo": "hw.buffer:StreamFifo",
    "skid": "hw.buffer:SkidBuffer",
    "checksum": "hw.checksum:ChecksumAccumulator",
}


#: nextpnr router per block where the blocks' default (router2) is not the right one. The TSO
#: engine: router2 does not converge within its iteration limit, router1 routes it (docs/tso.md).
#: An explicit ``--nextpnr-arg=--router`` wins.
ROUTERS = {"tso": "router1"}

#: Blocks routed with nextpnr's timing-driven rip-up (``--tmg-ripup``). The parser: at the same
#: placement it routed 10 to 15 MHz faster with it (112.96 -> 123.32 MHz on 63560dd, 111.51 ->
#: 126.33 MHz on 6ef01cd, seed 1; docs/build.md). ``--no-tmg-ripup`` turns it off.
TMG_RIPUP = {"parser"}


def block_nextpnr_args(block, extra=(), tmg_ripup=True):
    """nextpnr arguments for ``block``: ``extra``, then its :data:`ROUTERS` entry (unless
    ``extra`` picks a router) and ``--tmg-ripup`` for :data:`TMG_RIPUP` blocks."""
    args = list(extra)
    if block in ROUTERS and "--router" not in args:
        args += ["--router", ROUTERS[block]]
    if block in TMG_RIPUP and tmg_ripup and "--tmg-ripup" not in args:
        args += ["--tmg-ripup"]
    return args


class BlockError(ValueError):
    """The block name or its parameters do not resolve to a component."""


def resolve_block(name):
    """The class named by ``name`` (a :data:`BLOCKS` key or ``module:Class``)."""
    spec = BLOCKS.get(name, name)
    if ":" not in spec:
        raise BlockError(f"unknown block {name!r}: use one of {', '.join(sorted(BLOCKS))} "
                         "or module:Class (e.g. hw.buffer:StreamFifo)")
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise BlockError(f"block {name!r}: module {module_name} does not exist (yet); "
                             "has its branch been merged into main?") from None
        raise
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise BlockError(f"block {name!r}: {module_name} has no {class_name}") from None


def _literal(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_params(pairs):
    params = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise BlockError(f"--param wants key=value, not {pair!r}")
        params[key] = _literal(value)
    return params


def make_block(name, width=8, params=None):
    """Construct the block ``name`` at ``width`` bytes per beat with extra keyword ``params``."""
    cls = resolve_block(name)
    kwargs = dict(params or {})
    try:
        accepted = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        accepted = {}
    if "width" in accepted and "width" not in kwargs:
        kwargs["width"] = width
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise BlockError(f"cannot construct {cls.__qualname__}({kwargs}): {exc}") from None


def _clocks(args):
    clocks = {"sync": args.freq}
    for pair in args.clock or ():
        domain, sep, mhz = pair.partition("=")
        try:
            clocks[domain] = float(mhz)
        except ValueError:
            raise BlockError(f"--clock wants domain=MHz, not {pair!r}") from None
    return clocks


def run(args):
    from ..synth import FlowError, format_report, synthesize
    try:
        block = make_block(args.block, args.width, parse_params(args.param))
        clocks = _clocks(args)
    except (BlockError, ValueError) as exc:
        print(f"tunnelnic synth: {exc}", file=sys.stderr)
        return 2
    log = None if args.json else (lambda msg: print(msg, file=sys.stderr))
    nextpnr_args = block_nextpnr_args(args.block, args.nextpnr_arg or (), args.tmg_ripup)
    try:
        result = synthesize(block, device=args.device, package=args.package, speed=args.speed,
                            clocks=clocks, workdir=args.workdir, seed=args.seed,
                            nextpnr_args=nextpnr_args, log=log, stop=args.stop)
    except FlowError as exc:
        print(f"tunnelnic synth: {exc}", file=sys.stderr)
        return 1
    result["block"] = args.block
    result["width"] = args.width
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(format_report(result, title=f"{args.block} (W={args.width})"))
    return 0 if result["met"] is not False else 1


def register(subparsers):
    from ..synth import STOPS
    p = subparsers.add_parser(
        "synth", help="synthesize one block (yosys + nextpnr-ecp5) and report LUT4/FF/EBR/DSP/fmax",
        description=__doc__.split("\n\n")[0] + " Blocks: " + ", ".join(
            f"{k} ({v})" for k, v in BLOCKS.items()) + ".")
    p.add_argument("block", help="block name or module:Class")
    p.add_argument("--width", type=int, default=8, help="datapath bytes per beat (default 8)")
    p.add_argument("--param", action="append", metavar="K=V", help="extra constructor argument")
    p.add_argument("--freq", type=float, default=125.0, help="target MHz of 'sync' (default 125)")
    p.add_argument("--clock", action="append", metavar="DOMAIN=MHZ",
                   help="target of another clock domain the block uses")
    p.add_argument("--device", default="LFE5UM-45F")
    p.add_argument("--package", default="CABGA381")
    p.add_argument("--speed", type=int, default=8)
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")
    p.add_argument("--nextpnr-arg", action="append", metavar="ARG",
                   help="extra nextpnr-ecp5 argument, repeatable (e.g. --nextpnr-arg=--router "
                        "--nextpnr-arg=router2)")
    p.add_argument("--no-tmg-ripup", dest="tmg_ripup", action="store_false",
                   help="route without nextpnr's timing-driven rip-up, which the parser uses "
                        "by default")
    p.add_argument("--workdir", help="keep inputs, logs and reports here (default: a temp dir)")
    p.add_argument("--stop", choices=STOPS, default=None,
                   help="stop early: after yosys (cell counts only, fastest), after nextpnr's "
                        "packing (device utilization), or after placement (an fmax estimate)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(func=run)
