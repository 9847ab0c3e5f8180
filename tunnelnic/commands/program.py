"""``tunnelnic program``: load the built bitstream into the board with openFPGALoader.

Runs ``openFPGALoader <board's cable> [-f] OUT/<board>/top.bit`` when openFPGALoader is on PATH
(or named by ``$OPENFPGALOADER``); otherwise prints that exact command and exits 1. ``--flash``
writes the SPI flash (persistent) instead of SRAM. ``--dry-run`` only prints the command.
"""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["register", "loader_command"]


def loader_command(board, out="build", *, flash=False, tool="openFPGALoader"):
    """The openFPGALoader argv that loads ``out/<board>/top.bit``."""
    from boards import get_spec
    spec = get_spec(board)
    bit = Path(out) / spec.name / "top.bit"
    return [tool, *spec.loader_args, *(["-f"] if flash else []), str(bit)]


def run(args):
    try:
        tool = os.environ.get("OPENFPGALOADER", "openFPGALoader")
        argv = loader_command(args.board, args.out, flash=args.flash, tool=tool)
    except ValueError as exc:
        print(f"tunnelnic program: {exc}", file=sys.stderr)
        return 2
    command = shlex.join(argv)
    if not Path(argv[-1]).exists():
        print(f"tunnelnic program: {argv[-1]} does not exist; run `tunnelnic build --board "
              f"{args.board} --out {args.out}` first", file=sys.stderr)
        return 1
    if args.dry_run:
        print(command)
        return 0
    if shutil.which(tool) is None:
        print(f"tunnelnic program: {tool} not found; install openFPGALoader "
              "(e.g. `apt-get install openfpgaloader`) and run:", file=sys.stderr)
        print(command)
        return 1
    print(f"tunnelnic program: {command}", file=sys.stderr)
    return subprocess.run(argv).returncode


def register(subparsers):
    from boards import BOARDS, DEFAULT_BOARD
    p = subparsers.add_parser("program", help="load the bitstream with openFPGALoader",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--board", default=DEFAULT_BOARD, choices=sorted(BOARDS))
    p.add_argument("--out", default="build", help="where `tunnelnic build` wrote (default build/)")
    p.add_argument("--flash", action="store_true", help="write the SPI flash instead of SRAM")
    p.add_argument("--dry-run", action="store_true", help="print the command only")
    p.set_defaults(func=run)
