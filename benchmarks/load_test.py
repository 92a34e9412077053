#!/usr/bin/env python3
"""Load test script: ``python benchmarks/load_test.py --help``.

The same command as ``polyllm bench load`` (``polyllm.bench.load_cli.load_command``), for those
who look for it here; it needs the ``polyllm`` package installed (``make install``).
"""

import typer

from polyllm.bench.load_cli import load_command

if __name__ == "__main__":
    typer.run(load_command)
