"""Tiny ImageNet as distributed (`tiny-imagenet-200/`: the competition dir itself or a sub-directory of it).

wnids.txt (the classes, one wnid a line), words.txt (`wnid<TAB>names` for all of ImageNet),
train/<wnid>/images/*.JPEG (+ <wnid>_boxes.txt, unused), val/val_annotations.txt
(`file<TAB>wnid<TAB>x0<TAB>y0<TAB>x1<TAB>y1`) + val/images/*.JPEG, test/images/*.JPEG (unlabeled).
A subset keeps fewer wnids in wnids.txt: train folders and val rows of other wnids are left out.
Classes are the wnids, sorted; train ids `<wnid>/<stem>`; the labeled val split is the test set (ids = stems,
annotation order) and its labels the solution key; test/images is used only when val/ is absent or a
sample_submission.csv lists its ids.
"""

from __future__ import annotations

from pathlib import Path

from foldwise.data.competition import Competition, shipped_solution
from foldwise.data.formats.common import TestSplit, choose_test_split
from foldwise.data.ids import check_unique
from foldwise.data.images import check_not_empty_files, list_images
from foldwise.errors import FoldwiseError

SUBDIR = "tiny-imagenet-200"


def find_dir(root: Path) -> Path | None:
    """The directory holding wnids.txt: `root` or `root/tiny-imagenet-200`."""
    for d in (root, root / SUBDIR):
        if (d / "wnids.txt").is_file() and (d / "train").is_dir():
            return d
    return None


def matches(root: Path) -> bool:
    """True when wnids.txt and train/ are in `root` or in its tiny-imagenet-200/."""
    return find_dir(root) is not None


def read_lines(path: Path) -> list[str]:
    """Non-blank lines of a text file, stripped of trailing whitespace."""
    try:
        return [line.rstrip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise FoldwiseError(f"{path}: cannot read this text file ({e}); extract it again.") from e


def read_words(path: Path) -> dict[str, str]:
    """wnid -> human-readable names from words.txt (empty when the file is absent)."""
    if not path.is_file():
        return {}
    pairs = (line.split("\t", 1) for line in read_lines(path))
    return {p[0].strip(): p[1].strip() for p in pairs if len(p) == 2}


def train_images(data: Path, wnids: tuple[str, ...]) -> dict[str, list[Path]]:
    """Images of every listed wnid; a wnid without its train folder (or with an empty one) is an error."""
    found, missing = {}, []
    for wnid in wnids:
        folder = data / "train" / wnid / "images"
        found[wnid] = list_images(folder) if folder.is_dir() else []
        if not found[wnid]:
            missing.append(wnid)
    if missing:
        raise FoldwiseError(
            f"{data / 'wnids.txt'}: lists {len(missing)} wnid(s) without images in train/<wnid>/images/ "
            f"(e.g. {', '.join(missing[:5])}). Restore those train folders or remove the lines from wnids.txt."
        )
    return found


def val_split(data: Path, wnids: set[str]) -> tuple[TestSplit | None, list[str]]:
    """The labeled val split from val/val_annotations.txt (rows of wnids outside wnids.txt skipped), and notes."""
    annotations = data / "val" / "val_annotations.txt"
    if not annotations.is_file():
        return None, []
    images_dir = data / "val" / "images"
    ids, paths, labels, skipped = [], [], [], 0
    for n, line in enumerate(read_lines(annotations), start=1):
        fields = line.split("\t") if "\t" in line else line.split()
        if len(fields) < 2:
            raise FoldwiseError(f"{annotations}: line {n} ({line!r}) is not `file<TAB>wnid<TAB>box...`. Fix it.")
        if fields[1] not in wnids:
            skipped += 1
            continue
        ids.append(Path(fields[0]).stem)
        paths.append(images_dir / fields[0])
        labels.append(fields[1])
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FoldwiseError(
            f"{annotations}: {len(missing)} listed image(s) are missing from {images_dir}/ (e.g. {missing[:5]}). "
            "Restore them or remove their lines."
        )
    check_unique(ids, annotations, "images listed more than once:")
    notes = []
    if skipped:
        notes.append(f"{annotations.relative_to(data.parent)}: {skipped} row(s) of wnids not in wnids.txt skipped.")
    unlisted = len(list_images(images_dir)) - len(paths) - skipped if images_dir.is_dir() else 0
    if unlisted > 0:
        notes.append(f"{images_dir.relative_to(data.parent)}: {unlisted} image(s) without an annotation row ignored.")
    if not ids:
        return None, notes + [f"{annotations.relative_to(data.parent)}: no rows for the wnids of wnids.txt."]
    check_not_empty_files(paths)
    source = f"Tiny ImageNet {data.name}/val ({annotations.name})"
    return TestSplit(source, tuple(ids), tuple(paths), tuple(labels)), notes


def read(root: Path, options: dict[str, str] | None = None) -> Competition:
    """Read the official Tiny ImageNet layout (or a subset with fewer wnids)."""
    data = find_dir(root)
    if data is None:
        raise FoldwiseError(f"{root}: no wnids.txt + train/ here or in {SUBDIR}/.")
    wnids = tuple(sorted(set(read_lines(data / "wnids.txt"))))
    if not wnids:
        raise FoldwiseError(f"{data / 'wnids.txt'}: lists no wnids; it should hold one class id per line.")
    per_class = train_images(data, wnids)
    ids = [f"{w}/{p.stem}" for w in wnids for p in per_class[w]]
    labels = [i for i, w in enumerate(wnids) for _ in per_class[w]]
    paths = [p for w in wnids for p in per_class[w]]
    check_not_empty_files(paths)
    notes = []
    extra = sorted(p.name for p in (data / "train").iterdir() if p.is_dir() and p.name not in set(wnids))
    if extra:
        notes.append(f"train/: {len(extra)} folder(s) not listed in wnids.txt ignored (e.g. {', '.join(extra[:3])}).")
    val, val_notes = val_split(data, set(wnids))
    splits = [val] if val else []
    test_dir = data / "test" / "images"
    if test_dir.is_dir() and (test_files := list_images(test_dir)):
        splits.append(
            TestSplit(f"Tiny ImageNet {data.name}/test/images", tuple(p.stem for p in test_files), tuple(test_files))
        )
    fmt, test, split_notes = choose_test_split(root, wnids, splits)
    words = read_words(data / "words.txt")
    where = "" if data == root else f" in {data.name}/"
    return Competition(
        name=root.name,
        root=root,
        layout="tiny-imagenet",
        classes=wnids,
        train_ids=tuple(ids),
        train_labels=tuple(labels),
        train_images=tuple(paths),
        test_ids=test.ids,
        test_images=test.images,
        submission=fmt,
        solution_path=shipped_solution(root),
        solution_labels=test.labels,
        class_descriptions=tuple(words.get(w, "") for w in wnids) if words else (),
        layout_detail=f"Tiny ImageNet official layout{where} ({len(wnids)} wnids in wnids.txt)",
        test_description=test.description(),
        notes=tuple(notes + val_notes + split_notes),
    )
