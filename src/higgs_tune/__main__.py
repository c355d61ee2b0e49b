"""`python -m higgs_tune ...` is the `higgs-tune` command (useful under torchrun / accelerate launch).

The main guard matters: `prepare` starts decoding workers with the spawn method, which re-imports the
main module in each worker.
"""

from higgs_tune.cli import main

if __name__ == "__main__":
    main()
