"""``tunnelnic regs``: register documentation and C header from regmap/tunnelnic.rdl (PeakRDL).

Writes, for the default parameters, ``docs/regs/tunnelnic.md`` (peakrdl-markdown),
``docs/regs/html/`` (peakrdl-html) and ``include/tunnelnic_regs.h`` (peakrdl-cheader).
``--check`` regenerates into a temporary directory and fails when the checked-in Markdown or
header differ (CI proves the outputs are in step with the source); the HTML is a browsable
by-product and not compared.
"""

import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from ..regmap import DEFAULTS, RDL_PATH

ROOT = RDL_PATH.parents[1]
CHECKED = ("docs/regs/tunnelnic.md", "include/tunnelnic_regs.h")


def generate(out_root, html=True):
    from peakrdl_cheader.exporter import CHeaderExporter
    from peakrdl_markdown import MarkdownExporter
    from ..regmap import compile_rdl
    root = compile_rdl(DEFAULTS)
    out_root = Path(out_root)
    (out_root / "docs/regs").mkdir(parents=True, exist_ok=True)
    (out_root / "include").mkdir(parents=True, exist_ok=True)
    MarkdownExporter().export(root, str(out_root / CHECKED[0]),
                              input_files=["regmap/tunnelnic.rdl"])
    CHeaderExporter().export(root, str(out_root / CHECKED[1]))
    if html:
        from peakrdl_html import HTMLExporter
        HTMLExporter().export(root, str(out_root / "docs/regs/html"))
    return [out_root / p for p in CHECKED]


def check(root=ROOT):
    """List of checked-in outputs that are missing or out of step with the RDL source."""
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, html=False)
        return [p for p in CHECKED
                if not (Path(root) / p).exists()
                or not filecmp.cmp(Path(tmp) / p, Path(root) / p, shallow=False)]


def _run(args):
    if args.check:
        stale = check()
        if stale:
            print("out of step with regmap/tunnelnic.rdl (run `tunnelnic regs`): "
                  + ", ".join(stale), file=sys.stderr)
            return 1
        print("register docs and header are in step with regmap/tunnelnic.rdl")
        return 0
    for p in generate(ROOT, html=not args.no_html):
        print(f"wrote {p.relative_to(ROOT)}")
    if not args.no_html:
        print("wrote docs/regs/html/")
    return 0


def register(subparsers):
    p = subparsers.add_parser("regs", help="generate register docs (Markdown, HTML) and C header",
                              description=__doc__.split("\n\n")[1])
    p.add_argument("--check", action="store_true",
                   help="fail if the checked-in docs/header differ from the RDL source")
    p.add_argument("--no-html", action="store_true", help="skip the HTML docs")
    p.set_defaults(func=_run)
