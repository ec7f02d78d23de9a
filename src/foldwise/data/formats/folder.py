"""Folder layouts: one folder per class (+ optional sample_submission.csv, solution.csv).

- plain: train/<class>/<image>, test/<image>
- Intel Image Classification (Kaggle): seg_train/seg_train/<class>/, seg_test/seg_test/<class>/ (labeled),
  seg_pred/seg_pred/<image> (unlabeled); also without the doubled folder (seg_train/<class>/ ...)
- Tiny ImageNet Kaggle variant: train/<class>/ (images directly or in <class>/images/), valid/<class>/ (labeled),
  test/<image> or test/images/<image>

Train ids are `<class>/<stem>`. A labeled held-out split (test/<class>/, seg_test, valid, val, validation) is the
test set, its labels the solution key, and an unlabeled folder beside it is left out with a note; with a
sample_submission.csv the test set is the unlabeled folder (or the labeled split) whose ids the sample lists.
Test ids are file stems (`test_00000`... in file-name order when stems repeat across class folders).
"""

from __future__ import annotations

import logging
from pathlib import Path

from foldwise.data.competition import Competition, SubmissionFormat, shipped_solution, sort_class_names
from foldwise.data.csvfiles import read_sample_submission
from foldwise.data.formats.common import TestSplit, choose_test_split, numbered_ids, unused_note
from foldwise.data.ids import check_unique, nfc, resolve_ids
from foldwise.data.images import entries, hidden, holds_images, list_images, scan_images, unwrap, warn_skipped
from foldwise.errors import FoldwiseError

log = logging.getLogger(__name__)
# Each is unwrapped when an archive nested it in a same-named folder (seg_train/seg_train/, test/test/).
TRAIN_DIRS = ("train", "seg_train")
LABELED_TEST_DIRS = ("test", "seg_test", "valid", "val", "validation")  # with class folders
UNLABELED_TEST_DIRS = ("test/images", "test", "seg_pred")  # images directly inside


def images_of_class(folder: Path) -> list[Path]:
    """Images of one class folder: directly inside it, else in its images/ sub-folder (Tiny ImageNet nesting)."""
    files, others = scan_images(folder)
    if not files and (folder / "images").is_dir():
        return list_images(folder / "images")  # <wnid>_boxes.txt beside images/ is part of that layout
    warn_skipped(folder, others)
    return files


def class_folders(directory: Path) -> list[Path]:
    """Sub-folders of `directory` that hold images (hidden, __MACOSX and empty folders skipped), sorted."""
    if not directory.is_dir():
        return []
    folders = [p for p in entries(directory) if p.is_dir() and not hidden(p)]
    return [p for p in folders if holds_images(p) or holds_images(p / "images")]


def is_class_tree(directory: Path) -> bool:
    """True when `directory` holds class folders and no images of its own (a lone images/ folder is a flat test
    folder, not a class)."""
    folders = class_folders(directory)
    return bool(folders) and [p.name for p in folders] != ["images"] and not holds_images(directory)


def train_dir(root: Path) -> Path | None:
    """The first of train/ and seg_train/ (each unwrapped) that holds class folders."""
    return next((unwrap(root / d) for d in TRAIN_DIRS if is_class_tree(unwrap(root / d))), None)


def matches(root: Path) -> bool:
    """True when train/ (or Intel's seg_train/seg_train/) holds class sub-directories."""
    return train_dir(root) is not None


def labeled_split(directory: Path, root: Path) -> TestSplit:
    """A held-out split with class folders: ids are file stems (numbered when stems repeat), labels the folders."""
    pairs = sorted((nfc(p.name), nfc(f.name), p) for f in class_folders(directory) for p in images_of_class(f))
    stems = [Path(name).stem for name, _, _ in pairs]
    ids = tuple(stems) if len(set(stems)) == len(stems) else numbered_ids("test", len(pairs))
    source = f"{directory.relative_to(root).as_posix()}/<class>/"
    return TestSplit(source, ids, tuple(p for _, _, p in pairs), tuple(c for _, c, _ in pairs))


def read(root: Path, options: dict[str, str] | None = None) -> Competition:
    """Read the class folders for training and pick the test set (see the module docstring)."""
    train = train_dir(root)
    if train is None:
        raise FoldwiseError(f"{root / 'train'}: no class folders; put the labeled images in train/<class>/.")
    classes, ids, labels, paths = read_train(train)
    fmt, chosen, notes = choose_test(root, classes)
    if train.name != "train" or train.parent != root:
        notes.insert(0, f"training images from {train.relative_to(root).as_posix()}/<class>/")
    return Competition(
        name=root.name,
        root=root,
        layout="folder",
        classes=classes,
        train_ids=tuple(ids),
        train_labels=tuple(labels),
        train_images=tuple(paths),
        test_ids=chosen.ids,
        test_images=tuple(chosen.images),
        submission=fmt,
        solution_path=shipped_solution(root),
        solution_labels=chosen.labels,
        layout_detail=variant(train, root),
        test_description=chosen.description(),
        notes=tuple(notes),
    )


def read_train(train: Path) -> tuple[tuple[str, ...], list[str], list[int], list[Path]]:
    """(classes, ids `<class>/<stem>`, label indices, files) of the class folders under `train` (names in NFC)."""
    folders = class_folders(train)
    classes = sort_class_names(nfc(p.name) for p in folders)
    index = {c: i for i, c in enumerate(classes)}
    ids, labels, paths = [], [], []
    for folder in folders:
        for path in images_of_class(folder):
            ids.append(nfc(f"{folder.name}/{path.stem}"))
            labels.append(index[nfc(folder.name)])
            paths.append(path)
    if not ids:
        raise FoldwiseError(f"{train}: no images in the class folders.")
    check_unique(ids, train, "images whose names differ only by extension:")
    return classes, ids, labels, paths


def candidate_splits(root: Path, classes: tuple[str, ...]) -> tuple[list[TestSplit], Path | None, list[str]]:
    """(held-out splits with class folders, the flat unlabeled folder or None, notes). A folder tree whose
    sub-folders are not training classes (test/batch_1/, ...) is an unlabeled split, not a labeled one."""
    splits, notes = [], []
    for name in LABELED_TEST_DIRS:
        directory = unwrap(root / name)
        if not is_class_tree(directory):
            continue
        split = labeled_split(directory, root)
        if split.ids and set(split.labels) & set(classes):
            splits.append(split)
        elif split.ids:  # e.g. test images spread over batch folders
            splits.append(TestSplit(split.source.replace("<class>", "*"), split.ids, split.images))
            folders = sorted(set(split.labels))
            notes.append(
                f"{split.source}: its sub-folders ({', '.join(folders[:5])}) are no training classes, so "
                "their images are taken as unlabeled test images"
            )
    flat = next((unwrap(root / d) for d in UNLABELED_TEST_DIRS if holds_images(unwrap(root / d))), None)
    if flat is not None:
        extra = [p.name for p in entries(flat) if p.is_dir() and not hidden(p)]
        if extra:
            log.warning("%s: sub-folder(s) %s ignored: the test images are the files directly in it", flat, extra[:5])
    return splits, flat, notes


def choose_test(root: Path, classes: tuple[str, ...]) -> tuple[SubmissionFormat, TestSplit, list[str]]:
    """The test split (a flat folder, or a labeled split whose labels become the key), its format and notes."""
    splits, flat, notes = candidate_splits(root, classes)
    labeled = [s for s in splits if s.labels]
    sample = root / "sample_submission.csv"
    # A sample listing a labeled split's ids chooses that split (choose_test_split below), not the flat folder.
    sample_ids = set(map(str, read_sample_submission(sample, classes)[1])) if sample.is_file() and splits else set()
    picks_split = any(set(s.ids) == sample_ids for s in splits)
    if flat is not None and not picks_split and (sample.is_file() or not labeled):  # plain Kaggle: test/<image>
        fmt, chosen = flat_split(root, flat, classes)
        return fmt, chosen, notes + [unused_note(s, chosen, sample.is_file()) for s in splits]
    if not splits:
        raise FoldwiseError(f"{root / 'test'}: missing, or holds no images; put the unlabeled test images there.")
    if flat is not None:  # an unlabeled folder beside a labeled split is left out, with a note saying so
        files = list_images(flat)
        splits.append(
            TestSplit(f"{flat.relative_to(root).as_posix()}/", tuple(nfc(p.stem) for p in files), tuple(files))
        )
    fmt, chosen, split_notes = choose_test_split(root, classes, splits)
    unknown = sorted(set(chosen.labels) - set(classes))
    if unknown:
        notes.append(f"{chosen.source}: class folder(s) {unknown[:5]} have no training images; never predicted.")
    return fmt, chosen, notes + split_notes


def flat_split(root: Path, flat: Path, classes: tuple[str, ...]) -> tuple[SubmissionFormat, TestSplit]:
    """An unlabeled folder of test images: the ids a sample_submission.csv lists, else every image's stem."""
    sample = root / "sample_submission.csv"
    if sample.is_file():
        fmt, test_ids = read_sample_submission(sample, classes)
        test_images = resolve_ids(test_ids, flat, sample, root)
    else:
        files = list_images(flat)
        fmt, test_ids, test_images = SubmissionFormat(), [nfc(p.stem) for p in files], files
    return fmt, TestSplit(f"{flat.relative_to(root).as_posix()}/", tuple(test_ids), tuple(test_images))


def variant(train: Path, root: Path) -> str:
    """Which folder layout this is, for `foldwise describe`."""
    if train.relative_to(root).parts[0] == "seg_train":
        return "Intel Image Classification folders (seg_train / seg_test / seg_pred)"
    if (root / "valid").is_dir() or any((f / "images").is_dir() for f in class_folders(train)[:1]):
        return "class folders, Tiny ImageNet Kaggle variant (train/<class>, valid/<class>, test)"
    return "class folders (train/<class>/, test/)"
