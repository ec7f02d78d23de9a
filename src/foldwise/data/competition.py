"""Discover a competition under input/<comp>/ and describe it as one immutable Competition."""

from __future__ import annotations

import csv
import functools
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foldwise.errors import FoldwiseError
from foldwise.fileio import write_text_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubmissionFormat:
    """How submission.csv must look: the sample's columns and id order (or our default when none ships)."""

    id_column: str = "id"
    label_column: str = "label"  # single-label submissions
    sample_path: Path | None = None  # sample_submission.csv the output is validated against
    probability_columns: tuple[str, ...] = ()  # one column per class when the sample asks for probabilities
    probability_classes: tuple[int, ...] = ()  # class index written in each probability column
    kind: str = "label"  # label | probabilities | positive_probability (binary, e.g. AUC) | top_k (MAP@k)
    k: int = 0  # top_k: labels per row, space-separated

    @property
    def wants_probabilities(self) -> bool:
        """True when the submission holds one probability column per class instead of a label."""
        return bool(self.probability_columns)


@dataclass(frozen=True)
class ArrayImages:
    """Images stored inside container files (CIFAR pickles, IDX), not one file per image.

    `load` runs once: its array is kept for later calls (the cache, duplicate search and data summary all read it;
    containers are small enough, CIFAR-100's train pickle is 150 MB). `image_shape` is known without loading.
    """

    files: tuple[Path, ...]  # the containers: named in errors, and their sizes/mtimes key the cache
    count: int
    load: Callable[[], np.ndarray]  # -> uint8 (count, H, W, 3) or (count, H, W)
    image_shape: tuple[int, int]  # (H, W) of every image, from the container's header

    def __post_init__(self) -> None:
        object.__setattr__(self, "load", functools.cache(self.load))

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
    solution_labels: tuple[str, ...] = ()  # class name per test id when the test split ships labels (a key)
    class_descriptions: tuple[str, ...] = ()  # human-readable name per class (Tiny ImageNet words.txt), or none
    layout_detail: str = ""  # which variant of the layout was found, e.g. "CIFAR-100 pickles in cifar-100-python/"
    test_description: str = ""  # what the test set is, e.g. "CIFAR-10 test_batch (labeled: ...)"
    notes: tuple[str, ...] = ()  # what the reader chose or left out (an unused split, skipped annotation rows)
    metric: str = "accuracy"  # the competition's metric (foldwise.yaml `metric:`, or --metric)
    train_groups: tuple[str, ...] = ()  # group per training image (foldwise.yaml `group_column:`), or none

    def __post_init__(self):
        if not self.test_ids:
            raise FoldwiseError(f"{self.root}: the test set is empty; put the unlabeled images in its test folder.")
        if self.solution_labels and len(self.solution_labels) != len(self.test_ids):
            raise ValueError(f"{len(self.solution_labels)} solution labels for {len(self.test_ids)} test ids")
        if self.train_groups and len(self.train_groups) != len(self.train_ids):
            raise ValueError(f"{len(self.train_groups)} groups for {len(self.train_ids)} training images")
        if self.class_descriptions and len(self.class_descriptions) != len(self.classes):
            raise ValueError(f"{len(self.class_descriptions)} class descriptions for {len(self.classes)} classes")


def solution_csv_text(comp: Competition) -> str:
    """The `id,label` key of a test split that ships labels, rows in submission order (column names as submitted)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([comp.submission.id_column, comp.submission.label_column or "label"])
    writer.writerows(zip(comp.test_ids, comp.solution_labels))
    return buf.getvalue()


def shipped_solution(root: Path) -> Path | None:
    """A `solution.csv` key beside the competition's files (kept aside for `foldwise score`), if there is one."""
    path = Path(root) / "solution.csv"
    return path if path.is_file() else None


def write_solution(comp: Competition, path: str | Path) -> Path | None:
    """Write the labels of a labeled test split (CIFAR test, Intel seg_test, Tiny ImageNet val, IDX t10k) as a
    `foldwise score` key at `path`, atomically; returns None (writing nothing) when the test split has no labels.

    An unchanged key is not rewritten, so its modification time stays put across reruns.
    """
    if not comp.solution_labels:
        return None
    path, text = Path(path), solution_csv_text(comp)
    if path.is_file() and path.read_text() == text:
        return path
    return write_text_atomic(path, text)


def sort_class_names(names) -> tuple[str, ...]:
    """Numeric order when every class name is an integer ("2" before "10"), else alphabetical."""
    names = {str(n) for n in names}
    if all(n.lstrip("-").isdigit() for n in names):
        return tuple(sorted(names, key=int))
    return tuple(sorted(names))
