"""`python -m bench.cpu_profile OUT -m MODULE [ARGS...]`: run MODULE as `python -m MODULE ARGS` does, under
cProfile timed by the main thread's CPU time (time.thread_time) instead of the wall clock. Waiting
(for Okta, for the database, or for a CPU another process holds) then costs nothing, so the profile
shows where this thread's CPU goes. The profile is written to OUT when the module returns (daphne
does on SIGINT)."""

from __future__ import annotations

import cProfile
import runpy
import sys
import time


def main() -> None:
    if len(sys.argv) < 4 or sys.argv[2] != "-m":
        sys.exit("usage: python -m bench.cpu_profile OUT -m MODULE [ARGS...]")
    out, _, module, *args = sys.argv[1:]
    sys.argv = [module, *args]
    profiler = cProfile.Profile(time.thread_time)
    try:
        profiler.runcall(runpy.run_module, module, run_name="__main__", alter_sys=True)
    finally:
        profiler.dump_stats(out)


if __name__ == "__main__":
    main()
