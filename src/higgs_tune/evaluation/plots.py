"""`wer.png` and `similarity.png`: the evaluation report's per-sample figures as histograms."""

from __future__ import annotations

from pathlib import Path

from higgs_tune.evaluation.report import Report


def write_plots(report: Report, out: Path) -> None:
    """Histograms of per-sample WER and speaker similarity, one colour per system, into `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = report.titles
    for key, title in (("wer", "WER per sample"), ("similarity", "Speaker similarity per sample")):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        plotted = False
        for name, rows in report.samples.items():
            values = [r[key] for r in rows if r[key] is not None]
            if values:
                ax.hist(values, bins=20, alpha=0.6, label=titles[name])
                plotted = True
        ax.set_title(title)
        ax.set_xlabel(key)
        ax.set_ylabel("samples")
        if plotted:
            ax.legend()
        else:  # e.g. no clip long enough to embed: say so rather than leave an empty frame
            ax.text(0.5, 0.5, "no sample has a value", ha="center", va="center", transform=ax.transAxes)
        fig.tight_layout()
        fig.savefig(out / f"{key}.png", dpi=100)
        plt.close(fig)
