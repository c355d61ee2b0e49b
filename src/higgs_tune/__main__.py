"""`python -m higgs_tune ...` is the `higgs-tune` command."""

from higgs_tune.cli import main

main()
