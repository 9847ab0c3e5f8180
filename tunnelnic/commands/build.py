"""``tunnelnic build``: the board's bitstream, its resources and the fmax of every clock.

Runs yowasp yosys, nextpnr-ecp5 and ecppack (PyPI packages only) into ``OUT/<board>/``
(``top.bit``, ``top.svf``, logs, ``report.json``). Exits 1, loudly, if any clock misses its
constraint or a tool fails; 2 for an unknown board. ``--stop``/``--no-route`` end the flow
early for resource and placed-timing estimates.
"""

import json
import sys

__all__ = ["register"]


def run(args):
    from boards import get_spec
    from ..synth import FlowError, format_report
    from ..synth_board import build_board
    try:
        get_spec(args.board)
    except ValueError as exc:
        print(f"tunnelnic build: {exc}", file=sys.stderr)
        return 2
    log = lambda msg: print(f"tunnelnic build: {msg}", file=sys.stderr, flush=True)
    try:
        nic = {}
        for item in args.nic:
            key, sep, value = item.partition("=")
            if not sep:
                print(f"tunnelnic build: --nic wants KEY=VALUE, not {item!r}", file=sys.stderr)
                return 2
            import ast
            nic[key] = ast.literal_eval(value)
        result = build_board(args.board, args.out, seed=args.seed,
                             bitstream=not args.no_bitstream, datapath=args.datapath, log=log,
                             nic=nic, stop="place" if args.no_route else args.stop,
                             nextpnr_args=args.nextpnr_arg or ())
    except FlowError as exc:
        print(f"tunnelnic build: FAILED: {exc}", file=sys.stderr)
        return 1
    report_path = f"{result['workdir']}/report.json"
    with open(report_path, "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(format_report(result, title=f"{result['title']}: board {result['board']}, "
                                          f"datapath {result['datapath']}"))
        if result.get("bitstream"):
            print(f"  bitstream {result['bitstream']} (and {result['svf']})")
        secs = result["seconds"]
        print("  time " + ", ".join(f"{k} {v:.0f} s" for k, v in secs.items()))
        print(f"  report {report_path}")
    if result["met"] is None:
        print(f"tunnelnic build: stopped after {result['stage']}: no timing, nothing checked",
              file=sys.stderr)
        return 0
    if not result["met"]:
        failed = [f"{c} {result['fmax'].get(c, 0):.2f} < {t:.2f} MHz"
                  for c, t in result["target"].items() if result["fmax"].get(c, 0) < t]
        print("tunnelnic build: TIMING FAILED: " + "; ".join(failed), file=sys.stderr)
        if result.get("bitstream"):
            print("tunnelnic build: the bitstream was written but must not be trusted",
                  file=sys.stderr)
        return 1
    return 0


def register(subparsers):
    from boards import BOARDS, DEFAULT_BOARD
    from ..synth import STOPS
    p = subparsers.add_parser("build", help="build a board's bitstream and report resources/fmax",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--board", default=DEFAULT_BOARD, choices=sorted(BOARDS),
                   help=f"target board (default {DEFAULT_BOARD})")
    p.add_argument("--out", default="build", help="output directory (default build/)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")
    p.add_argument("--datapath", default="auto", choices=("auto", "nic", "mac", "standin"),
                   help="auto (default): nic on a board whose NIC routes timing-clean "
                        "(versa, ecpix5), else mac; nic: the NIC core between the MACs; mac: the "
                        "MACs cross-connected, no core; standin: a byte repeater "
                        "(docs/boards.md)")
    p.add_argument("--nic", action="append", default=[], metavar="KEY=VALUE",
                   help="override a board NIC parameter (boards/top.py NIC_PARAMS), e.g. "
                        "--nic core_div=15 --nic rsc=True; repeatable")
    p.add_argument("--no-bitstream", action="store_true", help="stop after place and route")
    p.add_argument("--stop", choices=STOPS, default=None,
                   help="stop earlier, with no bitstream: after yosys (cell counts), after "
                        "nextpnr's packing (device utilization: does it fit?) or after "
                        "placement (utilization and nextpnr's fmax estimate, checked against "
                        "the targets)")
    p.add_argument("--no-route", action="store_true", help="the same as --stop place")
    p.add_argument("--nextpnr-arg", action="append", metavar="ARG",
                   help="extra nextpnr-ecp5 argument, repeatable (e.g. --nextpnr-arg=--sdf "
                        "--nextpnr-arg=placed.sdf --nextpnr-arg=--write "
                        "--nextpnr-arg=placed.json for benchmarks/placed_paths.py)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)
