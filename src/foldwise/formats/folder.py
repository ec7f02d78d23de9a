"""Folder layout: train/<class>/<image>, test/<image> (+ optional sample_submission.csv, solution.csv)."""

from __future__ import annotations

from pathlib import Path

from foldwise.competition import Competition, SubmissionFormat, list_images, sort_class_names
from foldwise.errors import FoldwiseError
from foldwise.formats.csv_layout import read_sample_submission, test_paths_for_ids


def matches(root: Path) -> bool:
    """True when train/ holds class sub-directories."""
    train = root / "train"
    return train.is_dir() and any(p.is_dir() for p in train.iterdir())


def read(root: Path) -> Competition:
    """Read train/<class>/* and test/*; the test id is the file name without extension."""
    train_dir, test_dir = root / "train", root / "test"
    class_dirs = sorted(p for p in train_dir.iterdir() if p.is_dir())
    classes = sort_class_names(p.name for p in class_dirs)
    index = {c: i for i, c in enumerate(classes)}
    ids, labels, paths = [], [], []
    for class_dir in class_dirs:
        for path in list_images(class_dir):
            ids.append(f"{class_dir.name}/{path.stem}")
            labels.append(index[class_dir.name])
            paths.append(path)
    if not ids:
        raise FoldwiseError(f"{train_dir}: no images in the class folders.")
    if not test_dir.is_dir():
        raise FoldwiseError(f"{test_dir}: missing; put the unlabeled test images there.")
    sample = root / "sample_submission.csv"
    if sample.exists():
        fmt, test_ids = read_sample_submission(sample, classes)
        test_images = test_paths_for_ids(test_ids, test_dir, sample)
    else:
        files = list_images(test_dir)
        fmt, test_ids, test_images = SubmissionFormat(), [p.stem for p in files], files
    solution = root / "solution.csv"
    return Competition(
        name=root.name, root=root, layout="folder", classes=classes,
        train_ids=tuple(ids), train_labels=tuple(labels), train_images=tuple(paths),
        test_ids=tuple(test_ids), test_images=tuple(test_images), submission=fmt,
        solution_path=solution if solution.exists() else None,
    )  # fmt: skip
