"""Discover a competition under input/<comp>/ and describe it as one immutable Competition."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foldwise.errors import FoldwiseError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class SubmissionFormat:
    """How submission.csv must look: the sample's columns and id order (or our default when none ships)."""

    id_column: str = "id"
    label_column: str = "label"  # single-label submissions
    sample_path: Path | None = None  # sample_submission.csv the output is validated against
    probability_columns: tuple[str, ...] = ()  # one column per class when the sample asks for probabilities
    probability_classes: tuple[int, ...] = ()  # class index written in each probability column

    @property
    def wants_probabilities(self) -> bool:
        """True when the submission holds one probability column per class instead of a label."""
        return bool(self.probability_columns)


@dataclass(frozen=True)
class ArrayImages:
    """Images stored inside container files (CIFAR pickles, IDX), not one file per image."""

    files: tuple[Path, ...]  # the containers: named in errors, and their sizes/mtimes key the cache
    count: int
    load: Callable[[], np.ndarray]  # -> uint8 (count, H, W, 3) or (count, H, W)

    def __len__(self) -> int:
        return self.count


ImageSource = tuple[Path, ...] | ArrayImages  # one file per image, or arrays inside container files


@dataclass(frozen=True)
class Competition:
    """Everything later stages need to know about the data; images are referenced by path, not loaded."""

    name: str
    root: Path
    layout: str
    classes: tuple[str, ...]  # index = label id used in logits
    train_ids: tuple[str, ...]
    train_labels: tuple[int, ...]  # indices into classes
    train_images: ImageSource
    test_ids: tuple[str, ...]  # in submission order
    test_images: ImageSource
    submission: SubmissionFormat
    solution_path: Path | None = None  # labels for the test images, kept aside for `foldwise score`

    def __post_init__(self):
        if not self.test_ids:
            raise FoldwiseError(f"{self.root}: the test set is empty; put the unlabeled images in its test folder.")


def sort_class_names(names) -> tuple[str, ...]:
    """Numeric order when every class name is an integer ("2" before "10"), else alphabetical."""
    names = {str(n) for n in names}
    if all(n.lstrip("-").isdigit() for n in names):
        return tuple(sorted(names, key=int))
    return tuple(sorted(names))


def list_images(directory: Path) -> list[Path]:
    """Image files directly inside `directory`, sorted by name."""
    try:
        return sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    except PermissionError as e:
        raise FoldwiseError(f"{directory}: cannot read this directory ({e.strerror}); fix its permissions.") from e


def load_competition(root: str | Path, layout: str | None = None) -> Competition:
    """Detect the layout under `root` (or use the named one) and read it."""
    from foldwise.formats import LAYOUTS, detect_layout

    root = Path(root)
    if not root.is_dir():
        raise FoldwiseError(f"{root}: no such competition directory. Put the competition's files in input/<name>/.")
    name = layout or detect_layout(root)
    if name not in LAYOUTS:
        raise FoldwiseError(f"unknown layout {name!r}; choose one of {', '.join(LAYOUTS)}.")
    return LAYOUTS[name](root)
