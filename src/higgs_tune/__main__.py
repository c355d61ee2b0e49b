"""`python -m higgs_tune` runs the `higgs-tune` command (useful under torchrun / accelerate launch)."""

from higgs_tune.cli import main

main()
