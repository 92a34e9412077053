"""``python -m polyllm``."""

from polyllm.cli import main

main()
