"""Wall time of `crm --help` (target: under 0.3 s on the 2-core machine).

Runs the installed console script several times and prints the best, median and worst run,
plus the heavy libraries the help path loaded (there should be none).

    python bench/cli_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    crm = shutil.which("crm")
    command = [crm, "--help"] if crm else [sys.executable, "-m", "crm.cli", "--help"]
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    bare_start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare = time.perf_counter() - bare_start
    probe = (
        "import sys\nfrom crm.cli import cli\ntry:\n    cli.main(['--help'], prog_name='crm')\n"
        "except SystemExit:\n    pass\n"
        "print(','.join(m for m in ('sqlalchemy','sklearn','pandas','matplotlib','scipy',"
        "'apscheduler','openpyxl','faker','marshmallow') if m in sys.modules) or 'none')"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout.splitlines()[-1]
    print(
        f"crm --help over {args.runs} runs: best {min(times):.3f} s, "
        f"median {statistics.median(times):.3f} s, worst {max(times):.3f} s (target < 0.3 s)"
    )
    print(f"bare python start-up: {bare:.3f} s; heavy modules loaded by --help: {loaded}")


if __name__ == "__main__":
    main()
