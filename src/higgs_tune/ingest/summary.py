"""The one summary an ingest run ends with: what was kept, what was rejected and why, per speaker."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field


@dataclass
class IngestSummary:
    """Counts over a finished corpus (`utterances.jsonl` and `rejected.jsonl` rows)."""

    kept: int = 0
    kept_seconds: float = 0.0
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)  # code -> clips
    reason_seconds: Counter = field(default_factory=Counter)  # code -> seconds
    speakers: dict[str, list[float]] = field(default_factory=lambda: defaultdict(lambda: [0, 0.0, 0]))

    @classmethod
    def of(cls, kept: list[dict], rejected: list[dict]) -> IngestSummary:
        summary = cls(kept=len(kept), rejected=len(rejected))
        for row in kept:
            summary.kept_seconds += row["duration"]
            line = summary.speakers[row["speaker"]]
            line[0] += 1
            line[1] += row["duration"]
        for row in rejected:
            summary.reasons[row["code"]] += 1
            summary.reason_seconds[row["code"]] += row["duration"]
            summary.speakers[row["speaker"]][2] += 1
        return summary

    @property
    def unpairable(self) -> list[str]:
        """Speakers left with fewer than two clips: they cannot make a cloning pair."""
        return sorted(name for name, (clips, _, _) in self.speakers.items() if clips < 2)

    def table(self, max_speakers: int = 30) -> str:
        lines = [
            f"kept {self.kept} clips ({self.kept_seconds / 3600:.3f} h), rejected {self.rejected}",
            "",
            f"{'reason':<22}{'clips':>8}{'hours':>10}",
        ]
        for code, count in self.reasons.most_common():
            lines.append(f"{code:<22}{count:>8}{self.reason_seconds[code] / 3600:>10.3f}")
        lines += ["", f"{'speaker':<30}{'kept':>8}{'hours':>10}{'rejected':>10}"]
        ranked = sorted(self.speakers.items(), key=lambda item: (-item[1][1], item[0]))
        for name, (clips, seconds, rejected) in ranked[:max_speakers]:
            lines.append(f"{name[:29]:<30}{clips:>8}{seconds / 3600:>10.3f}{rejected:>10}")
        if len(ranked) > max_speakers:
            lines.append(f"... and {len(ranked) - max_speakers} more speakers")
        if self.unpairable:
            names = ", ".join(self.unpairable[:20]) + (", ..." if len(self.unpairable) > 20 else "")
            lines += [
                "",
                f"{len(self.unpairable)} speakers with fewer than 2 clips (no pair possible): {names}",
            ]
        return "\n".join(lines)
