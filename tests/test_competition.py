"""Unit tests for foldwise.data.competition and foldwise.data.formats: layout detection, csv/folder readers, IDX."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from foldwise.data.competition import sort_class_names
from foldwise.data.demo import write_competition
from foldwise.data.formats import detect_layout, load_competition
from foldwise.data.formats.idx import read_idx
from foldwise.errors import FoldwiseError

# ---- csv layout ----


def test_csv_layout_detected_and_consistent_with_train_csv(tiny_comp):
    """The csv layout is detected; train ids, labels and paths follow train.csv row by row."""
    assert detect_layout(tiny_comp) == "csv"
    comp = load_competition(tiny_comp)
    assert comp.layout == "csv" and comp.name == "tiny" and comp.root == tiny_comp
    assert comp.classes == tuple(str(c) for c in range(10))
    train = pd.read_csv(tiny_comp / "train.csv", dtype=str)
    assert list(comp.train_ids) == train["id"].tolist()
    assert [comp.classes[i] for i in comp.train_labels] == train["label"].tolist()
    assert len(comp.train_images) == len(train) == 100
    for id_, path in zip(comp.train_ids, comp.train_images):
        assert path == tiny_comp / "train" / f"{id_}.png" and path.is_file()
    assert comp.solution_path == tiny_comp / "solution.csv"
    assert comp.submission.id_column == "id" and comp.submission.label_column == "label"
    assert comp.submission.sample_path == tiny_comp / "sample_submission.csv"


def test_csv_test_ids_follow_sample_submission_order(tiny_comp):
    """Test ids (and their paths) come in sample_submission.csv's order, not the file system's."""
    sample = tiny_comp / "sample_submission.csv"
    df = pd.read_csv(sample, dtype=str)
    shuffled = df.sample(frac=1.0, random_state=0)
    assert shuffled["id"].tolist() != sorted(shuffled["id"])
    shuffled.to_csv(sample, index=False)
    comp = load_competition(tiny_comp)
    assert list(comp.test_ids) == shuffled["id"].tolist()
    assert [p.stem for p in comp.test_images] == shuffled["id"].tolist()
    assert all(p.parent == tiny_comp / "test" for p in comp.test_images)


def test_csv_classes_sorted_numerically_and_labels_follow(tmp_path):
    """Integer class names sort numerically ("2" before "10") and label indices point at the right names."""
    images = np.zeros((6, 4, 4), dtype=np.uint8)
    root = write_competition(tmp_path / "c", (images, [0, 1, 2, 0, 1, 2]), (images[:2], [0, 1]), ["10", "2", "1"], "x")
    comp = load_competition(root)
    assert comp.classes == ("1", "2", "10")
    names = pd.read_csv(root / "train.csv", dtype=str)["label"].tolist()
    assert names == ["10", "2", "1", "10", "2", "1"]
    assert [comp.classes[i] for i in comp.train_labels] == names


def test_csv_ids_with_extension_and_leading_zeros(tmp_path):
    """Ids may carry the file extension, and ids like 007 stay text."""
    root = tmp_path / "c"
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
    for name in ("007.png", "008.png", "010.png"):
        Image.new("L", (4, 4)).save(root / "train" / name)
    Image.new("L", (4, 4)).save(root / "test" / "001.png")
    (root / "train.csv").write_text("image_id,class\n007.png,a\n008,b\n010,a\n")
    comp = load_competition(root)
    assert comp.train_ids == ("007.png", "008", "010")
    assert [p.name for p in comp.train_images] == ["007.png", "008.png", "010.png"]
    assert comp.classes == ("a", "b")
    assert comp.test_ids == ("001",)  # no sample_submission: test/ stems
    assert comp.submission.sample_path is None and comp.solution_path is None


def test_csv_missing_image_names_train_csv(tiny_comp):
    """A train.csv row without its image raises FoldwiseError naming train.csv and the id."""
    with open(tiny_comp / "train.csv", "a") as f:
        f.write("ghost_id,3\n")
    with pytest.raises(FoldwiseError) as info:
        load_competition(tiny_comp)
    msg = str(info.value)
    assert str(tiny_comp / "train.csv") in msg and "ghost_id" in msg and "1 id(s) have no image" in msg


def test_csv_missing_test_image_names_sample_submission(tiny_comp):
    """A sample_submission id with no test image raises FoldwiseError naming sample_submission.csv."""
    (tiny_comp / "test" / "ttest_00004.png").unlink()
    with pytest.raises(FoldwiseError, match=r"sample_submission\.csv: 1 id\(s\) have no image .*ttest_00004"):
        load_competition(tiny_comp)


def test_csv_duplicate_train_id(tiny_comp):
    """A train.csv listing an id twice raises FoldwiseError naming the id."""
    train = pd.read_csv(tiny_comp / "train.csv", dtype=str)
    pd.concat([train, train.iloc[[3]]]).to_csv(tiny_comp / "train.csv", index=False)
    with pytest.raises(FoldwiseError, match=r"duplicate ids \['ttrain_00003'\]"):
        load_competition(tiny_comp)


# ---- folder layout ----


def make_folder_comp(root: Path, classes=("10", "2", "3"), per_class: int = 3, test=("b", "a", "c10")) -> Path:
    for c in classes:
        (root / "train" / c).mkdir(parents=True)
        for i in range(per_class):
            Image.new("L", (5, 5), color=i * 40).save(root / "train" / c / f"img{i}.png")
    (root / "train" / "3" / "notes.txt").write_text("not an image")
    (root / "test").mkdir()
    for stem in test:
        Image.new("RGB", (5, 5)).save(root / "test" / f"{stem}.png")
    return root


def test_folder_layout_detected_and_read(tmp_path):
    """train/<class>/*.png + test/*.png is the folder layout; test ids are file stems, train ids class/stem."""
    root = make_folder_comp(tmp_path / "flowers")
    assert detect_layout(root) == "folder"
    comp = load_competition(root)
    assert comp.layout == "folder" and comp.name == "flowers"
    assert comp.classes == ("2", "3", "10")
    assert comp.test_ids == ("a", "b", "c10")
    assert [p.name for p in comp.test_images] == ["a.png", "b.png", "c10.png"]
    assert len(comp.train_ids) == 9 and len(set(comp.train_ids)) == 9
    for id_, label, path in zip(comp.train_ids, comp.train_labels, comp.train_images):
        class_name, stem = id_.split("/")
        assert comp.classes[label] == class_name == path.parent.name
        assert path.stem == stem and path.is_file()
    assert comp.solution_path is None and comp.submission.sample_path is None


def test_folder_layout_named_explicitly(tmp_path):
    """layout='folder' reads the folder layout; an unknown layout name raises listing the known ones."""
    root = make_folder_comp(tmp_path / "f")
    assert load_competition(root, layout="folder").layout == "folder"
    with pytest.raises(FoldwiseError, match="unknown layout 'coco'; choose one of csv, folder"):
        load_competition(root, layout="coco")


def test_folder_layout_without_test_images(tmp_path):
    """A folder competition with an empty test/ raises FoldwiseError (empty test set)."""
    root = make_folder_comp(tmp_path / "f", test=())
    with pytest.raises(FoldwiseError, match="holds no images|test set is empty"):
        load_competition(root)


# ---- detection errors ----


def test_unknown_layout_lists_what_it_found(tmp_path):
    """A directory with no known layout raises FoldwiseError listing its contents."""
    root = tmp_path / "odd"
    (root / "images").mkdir(parents=True)
    (root / "labels.json").write_text("{}")
    with pytest.raises(FoldwiseError) as info:
        load_competition(root)
    msg = str(info.value)
    assert "no supported layout" in msg and "images/" in msg and "labels.json" in msg


def test_empty_directory_and_missing_directory(tmp_path):
    """An empty competition directory says it holds nothing; a missing one says so."""
    (tmp_path / "empty").mkdir()
    with pytest.raises(FoldwiseError, match=r"it holds: nothing"):
        load_competition(tmp_path / "empty")
    with pytest.raises(FoldwiseError, match="no such competition directory"):
        load_competition(tmp_path / "absent")


def test_train_dir_without_class_folders_is_not_folder_layout(tmp_path):
    """train/ with only loose images (no class folders, no train.csv) is not mistaken for the folder layout."""
    root = tmp_path / "loose"
    (root / "train").mkdir(parents=True)
    Image.new("L", (4, 4)).save(root / "train" / "x.png")
    with pytest.raises(FoldwiseError, match=r"no supported layout .*train/"):
        load_competition(root)


# ---- class name order ----


def test_sort_class_names_numeric_and_alphabetical():
    """Integer class names sort numerically ("2" before "10"); otherwise alphabetically; duplicates collapse."""
    assert sort_class_names(["10", "2", "1", "2"]) == ("1", "2", "10")
    assert sort_class_names([10, 2, -1]) == ("-1", "2", "10")
    assert sort_class_names(["b", "10", "a", "2"]) == ("10", "2", "a", "b")
    assert sort_class_names(["cat", "Dog", "ant"]) == ("Dog", "ant", "cat")


# ---- IDX files ----


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.tobytes()


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_read_idx_round_trip(tmp_path, gz):
    """read_idx returns the stored uint8 images and big-endian int32 labels, from plain and .gz files."""
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, -3, 70000], dtype=">i4")
    for name, array, code in (("images-idx3-ubyte", images, 0x08), ("labels-idx1-ubyte", labels, 0x0C)):
        path = tmp_path / (name + (".gz" if gz else ""))
        data = idx_bytes(array, code)
        path.write_bytes(gzip.compress(data) if gz else data)
        back = read_idx(path)
        assert back.shape == array.shape
        np.testing.assert_array_equal(back, array)
    assert read_idx(tmp_path / ("labels-idx1-ubyte" + (".gz" if gz else ""))).tolist() == [7, -3, 70000]


def test_read_idx_rejects_truncated(tmp_path):
    """A truncated IDX file (plain: missing bytes; gz: cut stream) raises FoldwiseError, never a short array."""
    data = idx_bytes(np.ones((2, 3, 3), dtype=np.uint8), 0x08)
    plain = tmp_path / "short-idx3-ubyte"
    plain.write_bytes(data[:-1])
    with pytest.raises(FoldwiseError, match=r"truncated IDX file \(17 of 18 bytes\)"):
        read_idx(plain)
    gz = tmp_path / "short-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(data)[:-10])
    with pytest.raises(FoldwiseError, match="short-idx3-ubyte.gz"):
        read_idx(gz)


def test_read_idx_rejects_bad_magic(tmp_path):
    """A file that is not IDX (wrong magic / unknown dtype code) raises FoldwiseError."""
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x05")
    with pytest.raises(FoldwiseError, match="bad magic"):
        read_idx(path)
    path.write_bytes(b"PK")
    with pytest.raises(FoldwiseError, match="bad magic"):
        read_idx(path)
