"""`python -m hastack.cli`: the command line."""

from hastack.cli import main

main()
