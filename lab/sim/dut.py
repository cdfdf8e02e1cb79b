"""Entry point of one simulated device process: `python -m lab.sim.dut --bench-dir DIR --uart-fd N`.

The bench host starts this in a new session when power goes on and SIGKILLs the process group
when it goes off; for our own device the lab's pre-imported server (lab.sim.forkserver) forks the
process and calls `main` instead of a fresh interpreter running it, with the same session,
namespace, arguments and exit statuses. Exit status: 3 = reboot requested (the host restarts it while power stays on),
2 = bad dut.json. The device's own log goes to DIR/dut.log, never to the console.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lab.errors import CertlabError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.sim.dut", description="one simulated certlab DUT")
    parser.add_argument("--bench-dir", required=True, type=Path, help="bench runtime dir holding dut.json")
    parser.add_argument("--uart-fd", required=True, type=int, help="inherited fd of the console line")
    args = parser.parse_args(argv)
    logging.basicConfig(
        filename=str(args.bench_dir / "dut.log"),
        level=logging.INFO,
        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
        force=True,  # a forked child must not keep the fork server's handlers
    )
    logging.getLogger("paramiko").setLevel(logging.WARNING)
    from lab.sim.device import make_device  # after logging is set up

    try:
        return make_device(args.bench_dir, args.uart_fd).run()
    except CertlabError as exc:
        print(f"certlab-sim-dut: {exc}", file=sys.stderr)
        logging.getLogger("certlab.sim.device").error("%s", exc)
        return 2
    except Exception:
        logging.getLogger("certlab.sim.device").exception("device crashed")
        raise


if __name__ == "__main__":
    sys.exit(main())
