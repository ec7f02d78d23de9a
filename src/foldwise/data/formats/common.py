"""Pieces shared by the readers whose held-out split may ship labels (CIFAR, Tiny ImageNet, IDX, folder variants).

Policy: a labeled held-out split (CIFAR test, Intel seg_test, Tiny ImageNet val, valid/<class>, IDX t10k) is the
test set, and its labels become a solution key that training never reads, so a submission can be scored locally.
An unlabeled split shipped beside it (seg_pred, Tiny ImageNet test/images) is left out, with a note. A
sample_submission.csv overrides this: the test set is the split whose ids it lists, in its order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foldwise.data.competition import ArrayImages, ImageSource, SubmissionFormat
from foldwise.data.csvfiles import read_sample_submission
from foldwise.errors import FoldwiseError


@dataclass(frozen=True)
class TestSplit:
    """One candidate test set: where it comes from, its ids and images, and its labels when it ships them."""

    source: str  # where it comes from, e.g. "CIFAR-10 test_batch"
    ids: tuple[str, ...]
    images: ImageSource
    labels: tuple[str, ...] = ()  # class name per image when the split ships labels

    def description(self) -> str:
        """What `foldwise describe` says about this split as the test set."""
        if self.labels:
            return f"{self.source} (labeled: its labels are a solution key kept aside, never trained on)"
        return f"{self.source} (unlabeled)"


def numbered_ids(prefix: str, n: int) -> tuple[str, ...]:
    """`prefix_00000`, ... : ids for images that have no file name of their own (at least 5 digits)."""
    width = max(5, len(str(n - 1)))
    return tuple(f"{prefix}_{i:0{width}d}" for i in range(n))


def reordered(images: ImageSource, order: Sequence[int], extra_file: Path) -> ImageSource:
    """The images in `order`; array images also key their cache on `extra_file` (the file that set the order)."""
    if isinstance(images, ArrayImages):
        index = np.asarray(order, dtype=np.int64)
        return ArrayImages(images.files + (extra_file,), len(index), lambda: images.load()[index], images.image_shape)
    return tuple(images[i] for i in order)


def choose_test_split(
    root: Path, classes: tuple[str, ...], splits: list[TestSplit]
) -> tuple[SubmissionFormat, TestSplit, list[str]]:
    """The test split, its submission format and notes about the splits left out.

    Without sample_submission.csv: the first split (readers list labeled splits first), submission `id,label`.
    With one: the split whose ids the sample lists, reordered to the sample's order.
    """
    if not splits:
        raise FoldwiseError(f"{root}: no test images found; see README 'Input layouts' for where they go.")
    sample = root / "sample_submission.csv"
    if not sample.is_file():
        chosen, fmt = splits[0], SubmissionFormat()
    else:
        fmt, ids = read_sample_submission(sample, classes)
        ids = [str(i) for i in ids]
        match = next((s for s in splits if len(s.ids) == len(ids) and set(s.ids) == set(ids)), None)
        if match is None:
            tried = "; ".join(f"{s.source}: {len(s.ids)} ids, e.g. {list(s.ids[:3])}" for s in splits)
            raise FoldwiseError(
                f"{sample}: its {len(ids)} ids (e.g. {ids[:3]}) are not the ids of any test split ({tried}). "
                "Fix the sample's ids or remove it to use the default test split."
            )
        position = {id_: n for n, id_ in enumerate(match.ids)}
        order = [position[i] for i in ids]
        labels = tuple(match.labels[i] for i in order) if match.labels else ()
        chosen = TestSplit(match.source, tuple(ids), reordered(match.images, order, sample), labels)
    notes = [unused_note(s, chosen, sample.is_file()) for s in splits if s.source != chosen.source]
    return fmt, chosen, notes


def unused_note(unused: TestSplit, chosen: TestSplit, by_sample: bool) -> str:
    """Why a split is not the test set (a labeled one is never added to training either)."""
    kind = "labeled" if unused.labels else "unlabeled"
    if by_sample:
        listed = f"sample_submission.csv lists {chosen.source}"
        return f"{unused.source} ({len(unused.ids)} {kind} images) is not used: {listed}."
    return (
        f"{unused.source} ({len(unused.ids)} {kind} images) is not used: {chosen.source} is the test set"
        + (" so that a submission can be scored locally" if chosen.labels else "")
        + f". To predict {unused.source} instead, add a sample_submission.csv listing its ids."
    )
