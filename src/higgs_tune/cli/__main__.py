"""`python -m higgs_tune.cli`, as `torchrun` and `accelerate launch -m` run it."""

from higgs_tune.cli import main

main()
