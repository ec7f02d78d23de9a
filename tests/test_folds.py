"""Unit tests for foldwise.data.folds: stratified assignment, the folds CSV contract, and its validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from foldwise.data.competition import Competition, SubmissionFormat
from foldwise.data.folds import folds_csv_text, make_folds, read_folds, validate_folds, write_folds
from foldwise.data.formats import load_competition
from foldwise.errors import FoldwiseError


def fake_comp(counts: dict[str, int], prefix: str = "img") -> Competition:
    """A Competition in memory (no image files): `counts[class]` training ids per class, in class order."""
    classes = tuple(counts)
    ids, labels = [], []
    for label, name in enumerate(classes):
        for _ in range(counts[name]):
            ids.append(f"{prefix}{len(ids):03d}")
            labels.append(label)
    return Competition(
        name="fake", root=Path("/nowhere/fake"), layout="csv", classes=classes,
        train_ids=tuple(ids), train_labels=tuple(labels), train_images=tuple(Path(f"{i}.png") for i in ids),
        test_ids=("t0",), test_images=(Path("t0.png"),), submission=SubmissionFormat(),
    )  # fmt: skip


@pytest.fixture
def comp(tiny_comp):
    """The tiny digits competition (100 train images, 10 per class)."""
    return load_competition(tiny_comp)


def test_make_folds_every_id_once_every_class_in_every_fold(comp):
    """make_folds: every training id exactly once, labels from the data, all classes in all k folds."""
    df = make_folds(comp, k=5, seed=0)
    assert list(df.columns) == ["id", "label", "fold"]
    assert len(df) == len(comp.train_ids) == 100
    assert not df["id"].duplicated().any()
    assert set(df["id"]) == set(comp.train_ids)
    expected = dict(zip(comp.train_ids, (comp.classes[i] for i in comp.train_labels)))
    assert (df["label"] == df["id"].map(expected)).all()
    assert sorted(df["fold"].unique()) == [0, 1, 2, 3, 4]
    for fold, group in df.groupby("fold"):
        assert set(group["label"]) == set(comp.classes), f"fold {fold} lacks a class"


def test_make_folds_k5_fold0_is_twenty_percent(comp):
    """With k=5 fold 0 is the 80/20 holdout: 20 of 100 images, 2 per class."""
    df = make_folds(comp, k=5, seed=0)
    holdout = df[df["fold"] == 0]
    assert len(holdout) == 20
    assert holdout["label"].value_counts().eq(2).all()


def test_same_seed_gives_byte_identical_folds_file(comp, tmp_path):
    """Determinism: the same seed written twice yields byte-identical folds files."""
    a, b = tmp_path / "a" / "tiny.csv", tmp_path / "b" / "tiny.csv"
    assert write_folds(make_folds(comp, k=5, seed=7), a, k=5, seed=7)
    assert write_folds(make_folds(comp, k=5, seed=7), b, k=5, seed=7)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes().startswith(b"id,label,fold\n")


def test_different_seed_gives_different_assignment(comp):
    """The seed actually reaches the splitter: another seed moves images between folds."""
    one = make_folds(comp, k=5, seed=1)["fold"].to_numpy()
    two = make_folds(comp, k=5, seed=2)["fold"].to_numpy()
    assert not np.array_equal(one, two)


def test_class_smaller_than_k_raises_naming_class_and_fewer_folds():
    """A class with fewer than k images fails up front, naming that class and suggesting fewer folds."""
    small = fake_comp({"cat": 2, "dog": 6, "eel": 7})
    with pytest.raises(FoldwiseError) as info:
        make_folds(small, k=5, seed=0)
    msg = str(info.value)
    assert "'cat' has 2" in msg
    assert "dog" not in msg and "eel" not in msg
    assert "fewer folds" in msg
    assert "--k 2" in msg


def test_class_sizes_equal_to_k_are_accepted():
    """Boundary: exactly k images per class is enough (each fold gets one)."""
    df = make_folds(fake_comp({"cat": 3, "dog": 3}), k=3, seed=0)
    assert df.groupby("fold")["label"].nunique().eq(2).all()


def test_single_image_class_does_not_suggest_k_that_still_fails():
    """A class with 1 image cannot be in every fold for any k >= 2, so the advice must not be `--k 2`."""
    with pytest.raises(FoldwiseError) as info:
        make_folds(fake_comp({"cat": 1, "dog": 6}), k=5, seed=0)
    assert "--k 2" not in str(info.value)


def test_write_folds_refuses_to_overwrite_different_folds(comp, tmp_path):
    """write_folds never silently replaces different folds: error, and the old csv and sidecar stay byte-identical."""
    path = tmp_path / "folds" / "tiny.csv"
    write_folds(make_folds(comp, k=5, seed=0), path, k=5, seed=0)
    before, sidecar_before = path.read_bytes(), path.with_suffix(".json").read_bytes()
    with pytest.raises(FoldwiseError, match="--force") as info:
        write_folds(make_folds(comp, k=5, seed=1), path, k=5, seed=1)
    assert str(path) in str(info.value)
    assert path.read_bytes() == before
    assert path.with_suffix(".json").read_bytes() == sidecar_before


def test_write_folds_force_replaces(comp, tmp_path):
    """With force=True different folds are written, and the sidecar records the new seed."""
    path = tmp_path / "tiny.csv"
    write_folds(make_folds(comp, k=5, seed=0), path, k=5, seed=0)
    new = make_folds(comp, k=4, seed=1)
    assert write_folds(new, path, k=4, seed=1, force=True) is True
    assert path.read_text() == folds_csv_text(new)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert (meta["k"], meta["seed"]) == (4, 1)


def test_write_folds_identical_returns_false_and_sidecar_has_k_seed(comp, tmp_path):
    """write_folds returns True on first write, False when identical folds exist; the .json sidecar has k and seed."""
    path = tmp_path / "tiny.csv"
    df = make_folds(comp, k=5, seed=3)
    assert write_folds(df, path, k=5, seed=3) is True
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["k"] == 5 and meta["seed"] == 3 and meta["rows"] == 100
    mtime = path.stat().st_mtime_ns
    assert write_folds(df, path, k=5, seed=3) is False
    assert path.stat().st_mtime_ns == mtime
    assert write_folds(df, path, k=5, seed=3, force=True) is False
    assert not list(tmp_path.glob(".*tmp*")), "atomic write left a temp file behind"


def test_read_folds_round_trip(comp, tmp_path):
    """read_folds returns exactly the table write_folds wrote, validated against the competition."""
    path = tmp_path / "tiny.csv"
    df = make_folds(comp, k=5, seed=0)
    write_folds(df, path, k=5, seed=0)
    back = read_folds(path, comp)
    pd.testing.assert_frame_equal(back.reset_index(drop=True), df.reset_index(drop=True), check_dtype=False)


def test_read_folds_keeps_leading_zero_ids(tmp_path):
    """Ids like 007 stay text through a write/read round trip (not parsed as the number 7)."""
    comp = fake_comp({"a": 3, "b": 3}, prefix="00")
    path = tmp_path / "z.csv"
    write_folds(make_folds(comp, k=3, seed=0), path, k=3, seed=0)
    back = read_folds(path, comp)
    assert set(back["id"]) == set(comp.train_ids)
    assert "00000" in set(back["id"])


def test_read_folds_missing_file(tmp_path):
    """A folds file that does not exist yet gives a FoldwiseError telling the user to run `foldwise folds`."""
    with pytest.raises(FoldwiseError, match="foldwise folds"):
        read_folds(tmp_path / "nope.csv")


def _write_and_read(df: pd.DataFrame, path: Path, comp: Competition) -> None:
    path.write_text(folds_csv_text(df))
    read_folds(path, comp)


def test_read_folds_rejects_missing_id(comp, tmp_path):
    """A folds csv lacking a training id is rejected, naming the missing id."""
    df = make_folds(comp, k=5, seed=0)
    gone = df["id"].iloc[5]
    with pytest.raises(FoldwiseError, match="1 training ids missing") as info:
        _write_and_read(df.drop(index=5), tmp_path / "f.csv", comp)
    assert gone in str(info.value)


def test_read_folds_rejects_extra_id(comp, tmp_path):
    """A folds csv with an id the data does not have is rejected, naming that id."""
    df = make_folds(comp, k=5, seed=0)
    extra = pd.DataFrame({"id": ["ghost"], "label": ["3"], "fold": [0]})
    with pytest.raises(FoldwiseError, match="1 unknown ids") as info:
        _write_and_read(pd.concat([df, extra], ignore_index=True), tmp_path / "f.csv", comp)
    assert "ghost" in str(info.value)


def test_read_folds_rejects_duplicated_id(comp, tmp_path):
    """A folds csv listing an id twice (even in a valid fold) is rejected."""
    df = make_folds(comp, k=5, seed=0)
    dup = df.iloc[[0]].assign(fold=(df["fold"].iloc[0] + 1) % 5)
    with pytest.raises(FoldwiseError, match="more than once") as info:
        _write_and_read(pd.concat([df, dup], ignore_index=True), tmp_path / "f.csv", comp)
    assert df["id"].iloc[0] in str(info.value)


def test_read_folds_rejects_wrong_label(comp, tmp_path):
    """A folds csv whose label for an id differs from the data is rejected, naming the id."""
    df = make_folds(comp, k=5, seed=0)
    row = 7
    df.loc[row, "label"] = "9" if df.loc[row, "label"] != "9" else "0"
    with pytest.raises(FoldwiseError, match="labels differ") as info:
        _write_and_read(df, tmp_path / "f.csv", comp)
    assert df.loc[row, "id"] in str(info.value)


def test_validate_folds_rejects_fold_missing_a_class(comp):
    """validate_folds rejects folds where some fold lacks a class (e.g. hand-edited or from another data set)."""
    df = make_folds(comp, k=5, seed=0)
    df.loc[(df["label"] == "4") & (df["fold"] == 2), "fold"] = 3
    with pytest.raises(FoldwiseError, match=r"fold\(s\) \[2\] lack some classes"):
        validate_folds(df, comp, source=Path("x.csv"))


def test_validate_folds_rejects_wrong_columns(comp):
    """validate_folds requires the id,label,fold column order."""
    df = make_folds(comp, k=5, seed=0)[["label", "id", "fold"]]
    with pytest.raises(FoldwiseError, match="id,label,fold"):
        validate_folds(df, comp, source=Path("x.csv"))


def paired_groups(n: int, pairs: list[tuple[int, int]]) -> np.ndarray:
    """A group label per row: each listed pair shares one, every other row is alone."""
    groups = np.arange(n)
    for a, b in pairs:
        groups[b] = groups[a]
    return groups


def test_groups_stay_inside_one_fold_and_csv_gets_group_column(comp, tmp_path):
    """With duplicate groups, every group lands in one fold; the csv is id,label,fold,group; classes stay balanced."""
    pairs = [(0, 1), (2, 3), (10, 11), (50, 51), (90, 99)]
    groups = paired_groups(100, pairs)
    groups[[20, 30, 40]] = groups[20]  # one group of three, across classes
    df = make_folds(comp, k=5, seed=0, groups=groups)
    assert list(df.columns) == ["id", "label", "fold", "group"]
    for a, b in [*pairs, (20, 30), (30, 40)]:
        assert df["fold"][a] == df["fold"][b] and df["group"][a] == df["group"][b]
    assert df["group"].nunique() == 100 - 5 - 2
    assert df["group"].iloc[0] == 0 and sorted(df["group"].unique()) == list(range(93))  # dense, first row first
    assert df["fold"].value_counts().between(18, 22).all()
    path = tmp_path / "g.csv"
    write_folds(df, path, k=5, seed=0)
    assert path.read_text().startswith("id,label,fold,group\n")
    back = read_folds(path, comp)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)


def test_group_folds_are_byte_identical_for_the_same_seed(comp, tmp_path):
    """Group-aware folds are reproducible: the same seed writes byte-identical files; another seed differs."""
    groups = paired_groups(100, [(0, 1), (5, 6), (70, 71)])
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    write_folds(make_folds(comp, k=5, seed=3, groups=groups), a, k=5, seed=3)
    write_folds(make_folds(comp, k=5, seed=3, groups=groups.copy()), b, k=5, seed=3)
    assert a.read_bytes() == b.read_bytes()
    other = make_folds(comp, k=5, seed=4, groups=groups)
    assert folds_csv_text(other) != a.read_text()


def test_all_singleton_groups_give_the_plain_stratified_folds(comp):
    """No duplicates: the same bytes as without groups (StratifiedKFold), and no group column."""
    plain = folds_csv_text(make_folds(comp, k=5, seed=7))
    assert folds_csv_text(make_folds(comp, k=5, seed=7, groups=np.arange(100))) == plain
    assert plain.startswith("id,label,fold\n")


def test_sidecar_records_method_and_duplicate_search(comp, tmp_path):
    """The JSON sidecar names the method and keeps the duplicate search's numbers; identical folds refresh it."""
    path = tmp_path / "f.csv"
    df = make_folds(comp, k=5, seed=0, groups=paired_groups(100, [(0, 1)]))
    write_folds(df, path, k=5, seed=0, extra={"duplicates": {"near_duplicate_threshold": 4}})
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["method"] == "StratifiedGroupKFold(shuffle=True)" and meta["duplicate_groups"] == 1
    assert meta["duplicates"]["near_duplicate_threshold"] == 4
    assert write_folds(df, path, k=5, seed=0, extra={"duplicates": {"near_duplicate_threshold": 2}}) is False
    assert json.loads(path.with_suffix(".json").read_text())["duplicates"]["near_duplicate_threshold"] == 2
    plain = tmp_path / "p.csv"
    write_folds(make_folds(comp, k=5, seed=0), plain, k=5, seed=0)
    assert json.loads(plain.with_suffix(".json").read_text())["method"] == "StratifiedKFold(shuffle=True)"


def test_validate_folds_rejects_group_split_across_folds(comp):
    """A hand-edited folds file that puts two members of one group in different folds is rejected."""
    df = make_folds(comp, k=5, seed=0, groups=paired_groups(100, [(0, 1)]))
    df.loc[1, "fold"] = (df.loc[0, "fold"] + 1) % 5
    with pytest.raises(FoldwiseError, match=r"duplicate group\(s\) \[0\] span several folds"):
        validate_folds(df, comp, source=Path("x.csv"))


def test_class_with_fewer_than_k_distinct_images_raises():
    """Duplicates count once: 5 images of 'cat' in 4 groups cannot fill 5 folds."""
    small = fake_comp({"cat": 5, "dog": 6})
    with pytest.raises(FoldwiseError, match=r"fewer than k=5 distinct images.*'cat' has 4"):
        make_folds(small, k=5, seed=0, groups=paired_groups(11, [(0, 1)]))
    with pytest.raises(FoldwiseError, match="11 training images"):
        make_folds(small, k=5, seed=0, groups=np.arange(10))
