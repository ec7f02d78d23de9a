"""Where each stage's files live, relative to one root (the repo by default): folds/, output/<comp>/..."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    """Paths of every artifact; stages exchange nothing but these files."""

    root: Path = Path(".")

    def folds_csv(self, comp: str) -> Path:
        """folds/<comp>.csv: id,label,fold."""
        return self.root / "folds" / f"{comp}.csv"

    def comp_dir(self, comp: str) -> Path:
        """output/<comp>/."""
        return self.root / "output" / comp

    def cache_dir(self, comp: str) -> Path:
        """output/<comp>/cache/: decoded uint8 image arrays."""
        return self.comp_dir(comp) / "cache"

    def run_dir(self, comp: str, exp: str, fold: int | None) -> Path:
        """output/<comp>/<exp>/fold<k>/, or .../full/ for the full retrain (fold None)."""
        return self.comp_dir(comp) / exp / ("full" if fold is None else f"fold{fold}")

    def blend_dir(self, comp: str) -> Path:
        """output/<comp>/blend/: report.md, plots, blend.json."""
        return self.comp_dir(comp) / "blend"

    def submission_csv(self, comp: str) -> Path:
        """output/<comp>/submission.csv."""
        return self.comp_dir(comp) / "submission.csv"
