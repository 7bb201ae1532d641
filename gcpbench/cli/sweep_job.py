"""``python -m gcpbench.cli.sweep_job SWEEP_DIR RUN_NAME``: one job of the local sweep launcher.

The job trains the run and evaluates it (:func:`gcpbench.sweep.job.run_job`); its log shows the
library's lines as ``gcpbench`` does, an input error is one ``error:`` line with exit code 2, and
Ctrl-C / SIGTERM (the launcher stopping it) one ``interrupted`` / ``terminated`` line, exit 130 / 143.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from gcpbench.cli import exit_interrupted, install_logging, print_error, stop_signals
from gcpbench.errors import GcpbenchError
from gcpbench.sweep.job import run_job


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gcpbench.cli.sweep_job", description="Train and evaluate one run of a sweep.")
    parser.add_argument("sweep_dir", help="the sweep's folder (gcpbench sweep --out)")
    parser.add_argument("run_name", help="the run's name in the sweep's plan")
    args = parser.parse_args(argv)
    install_logging()
    with stop_signals():
        try:
            run_job(args.sweep_dir, args.run_name, job_id=f"local-{os.getpid()}")
        except GcpbenchError as exc:
            print_error(str(exc))
            return 2
        except KeyboardInterrupt as exc:  # the launcher stopped it (SIGTERM) or Ctrl-C: recorded, one line
            exit_interrupted(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
