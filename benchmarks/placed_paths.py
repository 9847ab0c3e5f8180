"""Worst paths of a placed (unrouted) design, from nextpnr's own delay estimates.

    tunnelnic synth rsc --stop place --workdir build-x \\
        --nextpnr-arg=--sdf --nextpnr-arg=placed.sdf --nextpnr-arg=--write --nextpnr-arg=placed.json
    python -m benchmarks.placed_paths build-x [--period 8] [--paths 3] [--groups 20]

nextpnr 0.11 prints critical paths only after routing, and large designs may not route. Its
SDF, written after placement, holds every cell delay and, for each unrouted arc, the delay it
estimates from the placement (the estimate its placer optimizes and its "Max frequency"
line reports). This script runs a plain longest-path analysis over that SDF (one clock, no
clock skew, setup checks only) and names each step by its net in the written netlist.

It prints the number of endpoints slower than ``--period`` ns and the worst one (which
matches nextpnr's placed fmax), the worst ``--paths`` paths in full, then the failing
endpoints grouped by the net at the endpoint (a clock enable or write enable shared by many
flip-flops shows up as one large group) and by the net they start from.
"""

import argparse
import collections
import json
import re
import sys
from pathlib import Path


def _tokens(text):
    for m in re.finditer(r'\(|\)|"(?:[^"\\]|\\.)*"|(?:[^\s()"\\]|\\.)+', text):
        yield m.group(0)


def _parse(text):
    stack = [[]]
    for t in _tokens(text):
        if t == "(":
            stack.append([])
        elif t == ")":
            x = stack.pop()
            stack[-1].append(x)
        else:
            stack[-1].append(t)
    return stack[0][0]


def _delay(x):
    return max(float(v) for v in x[0].split(":") if v)


def _unesc(s):
    return s.replace("\\", "")


def load_sdf(path):
    """(edges, clock-to-out, setup): edges[node] = [(node, ns)], nodes are "cell/port"."""
    sdf = _parse(Path(path).read_text())
    scale = 1.0
    edges = collections.defaultdict(list)
    setup, clk_out = {}, {}
    for item in sdf[1:]:
        if not isinstance(item, list):
            continue
        if item[0] == "TIMESCALE":
            scale = {"1ps": 1e-3, "10ps": 1e-2, "100ps": 0.1, "1ns": 1.0}["".join(item[1:])]
        if item[0] != "CELL":
            continue
        inst = ""
        for f in item[1:]:
            if f[0] == "INSTANCE" and len(f) > 1:
                inst = _unesc(f[1])
        for f in item[1:]:
            if f[0] == "DELAY":
                for ab in f[1:]:
                    for d in ab[1:]:
                        vals = [v for v in d[3:] if isinstance(v, list) and v]
                        if not vals:
                            continue
                        ns = max(_delay(v) for v in vals) * scale
                        if d[0] == "IOPATH":
                            src, dst = d[1], d[2]
                            if isinstance(src, list) or src.startswith("CLK") or src == "WCK":
                                key = f"{inst}/{dst}"
                                clk_out[key] = max(clk_out.get(key, 0.0), ns)
                            else:
                                edges[f"{inst}/{src}"].append((f"{inst}/{dst}", ns))
                        elif d[0] == "INTERCONNECT":
                            edges[_unesc(d[1])].append((_unesc(d[2]), ns))
            elif f[0] == "TIMINGCHECK":
                for c in f[1:]:
                    if c[0] in ("SETUPHOLD", "SETUP"):
                        port = c[1][-1] if isinstance(c[1], list) else c[1]
                        key = f"{inst}/{port}"
                        setup[key] = max(setup.get(key, 0.0), _delay(c[3]) * scale)
    return edges, clk_out, setup


def analyse(edges, clk_out, setup):
    """Longest arrival per node (from a clocked output) and the worst predecessor."""
    indeg = collections.Counter(v for vs in edges.values() for v, _ in vs)
    nodes = set(edges) | set(indeg) | set(clk_out)
    arr = {n: clk_out.get(n) for n in nodes}
    pred = {}
    queue = collections.deque(n for n in nodes if indeg[n] == 0)
    while queue:
        u = queue.popleft()
        for v, d in edges.get(u, ()):
            if arr[u] is not None and v not in clk_out and (arr[v] is None or arr[u] + d > arr[v]):
                arr[v], pred[v] = arr[u] + d, u
            indeg[v] -= 1
            if indeg[v] == 0:
                queue.append(v)
    ends = sorted(((arr[n] + s, n) for n, s in setup.items() if arr.get(n) is not None),
                  reverse=True)
    return arr, pred, ends


def netlist_names(path):
    """(cells, name of the net at (cell, port)) from nextpnr's written JSON netlist."""
    top = next(iter(json.loads(Path(path).read_text())["modules"].values()))
    bitname = {}
    for name, info in top["netnames"].items():
        for i, b in enumerate(info["bits"]):
            if isinstance(b, int):
                nm = name if len(info["bits"]) == 1 else f"{name}[{i}]"
                old = bitname.get(b)
                if old is None or (old.startswith("$"), len(old)) > (nm.startswith("$"), len(nm)):
                    bitname[b] = nm
    cells = top["cells"]

    def net(node):
        inst, _, port = node.rpartition("/")
        bits = cells.get(inst, {}).get("connections", {}).get(port)
        return bitname.get(bits[0], "?") if bits else "?"
    return cells, net


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workdir")
    ap.add_argument("--sdf", default="placed.sdf")
    ap.add_argument("--netlist", default="placed.json")
    ap.add_argument("--period", type=float, default=8.0, help="target period in ns (8 = 125 MHz)")
    ap.add_argument("--paths", type=int, default=3)
    ap.add_argument("--groups", type=int, default=20)
    args = ap.parse_args(argv)
    wd = Path(args.workdir)
    arr, pred, ends = analyse(*load_sdf(wd / args.sdf))
    cells, net = netlist_names(wd / args.netlist)
    fail = [e for e in ends if e[0] > args.period]
    print(f"{len(ends)} endpoints, {len(fail)} slower than {args.period} ns; "
          f"worst {ends[0][0]:.2f} ns ({1000 / ends[0][0]:.2f} MHz)")

    def path(n):
        out = [n]
        while n in pred:
            n = pred[n]
            out.append(n)
        return out[::-1]

    def where(node):
        c = cells.get(node.rpartition("/")[0], {})
        return c.get("type", "?"), c.get("attributes", {}).get("NEXTPNR_BEL", "?")

    for t, n in ends[:args.paths]:
        print(f"\n{t:.2f} ns to {n}")
        for q in path(n):
            if q.endswith(("/FCI", "/FCO")):
                continue   # inside a carry chain
            ty, bel = where(q)
            print(f"  {arr[q]:6.2f}  {ty:12s} {bel:20s} {q.rpartition('/')[2]:5s} {net(q)}")
    strip = lambda s: re.sub(r"\[\d+\]", "", s)
    by_end, by_start, worst = collections.Counter(), collections.Counter(), {}
    for t, n in fail:
        p = path(n)
        key = f"{strip(net(p[-1]))} -> {where(p[-1])[0]}.{p[-1].rpartition('/')[2]}"
        by_end[key] += 1
        worst.setdefault(key, t)
        by_start[strip(net(p[0]))] += 1
    print("\nfailing endpoints by the net they end on (count, worst ns):")
    for k, c in by_end.most_common(args.groups):
        print(f"  {c:6d} {worst[k]:6.2f}  {k}")
    print("\n... by the net they start from:")
    for k, c in by_start.most_common(args.groups):
        print(f"  {c:6d}  {k}")


if __name__ == "__main__":
    sys.exit(main())
