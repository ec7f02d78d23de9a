"""Layouts and columns that c96b2e5 misread without a word: each is now read correctly, and every guess is said.

(Kaggle's nested folders, an empty sub-folder beside the test images, one-hot labels, a guessed label column,
decomposed Unicode file names, ids written as paths, a huge scan.)
"""

from __future__ import annotations

import logging
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import CLASSES, digit_arrays, make_tiny_competition
from foldwise.cli import main
from foldwise.data.cache import decode_image
from foldwise.data.describe import describe
from foldwise.data.formats import load_competition


def folder_comp(root: Path, per_class: int = 6, test: int = 8) -> Path:
    """train/<class>/*.png for 3 digit classes and `test` flat test images."""
    images, labels = digit_arrays(per_class)
    for image, label in zip(images, labels):
        if label < 3:
            folder = root / "train" / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{label}_{len(list(folder.iterdir()))}.png")
    (root / "test").mkdir(parents=True)
    for i, image in enumerate(digit_arrays(1, offset=30)[0][:test]):
        Image.fromarray(image).save(root / "test" / f"t{i}.png")
    return root


def nest(directory: Path) -> None:
    """Move a folder's content into a same-named folder inside it, as many Kaggle zips unpack."""
    inner = directory.parent / f".{directory.name}.tmp"
    directory.rename(inner)
    directory.mkdir()
    inner.rename(directory / directory.name)


def test_test_images_nested_in_test_test_are_the_unlabeled_test_set(tmp_path):
    """test/test/*.png is an unlabeled test folder, not a labeled split whose one class is "test" (c96b2e5 wrote a
    solution.csv of "test" labels and scored 0.0 with exit 0)."""
    comp = folder_comp(tmp_path / "c")
    nest(comp / "test")
    loaded = load_competition(comp)
    assert loaded.test_ids == tuple(f"t{i}" for i in range(8))
    assert loaded.solution_labels == () and "unlabeled" in loaded.test_description


def test_train_images_nested_in_train_train(tmp_path):
    """train/train/<class>/ is read as train/<class>/, and describe says where the images came from."""
    comp = folder_comp(tmp_path / "c")
    nest(comp / "train")
    loaded = load_competition(comp)
    assert loaded.classes == ("0", "1", "2") and loaded.train_ids[0] == "0/0_0"
    assert "training images from train/train/<class>/" in describe(loaded)


def test_empty_subfolder_beside_flat_test_images(tmp_path, caplog):
    """An empty test/notes/ beside the test images is ignored with a warning (c96b2e5: "test: missing")."""
    comp = folder_comp(tmp_path / "c")
    (comp / "test" / "notes").mkdir()
    assert len(load_competition(comp).test_ids) == 8
    assert "sub-folder(s) ['notes'] ignored" in caplog.text


def test_test_subfolders_that_are_no_classes_are_unlabeled(tmp_path):
    """test/batch_a/, test/batch_b/: their images are unlabeled test images, and describe says so."""
    comp = folder_comp(tmp_path / "c")
    for i, path in enumerate(sorted((comp / "test").glob("*.png"))):
        (comp / "test" / f"batch_{'ab'[i % 2]}").mkdir(exist_ok=True)
        path.rename(comp / "test" / f"batch_{'ab'[i % 2]}" / path.name)
    loaded = load_competition(comp)
    assert sorted(loaded.test_ids) == [f"t{i}" for i in range(8)] and loaded.solution_labels == ()
    assert "are no training classes, so their images are taken as unlabeled test images" in describe(loaded)


def test_one_hot_train_csv(tmp_path):
    """`id,c0,...,c9` with one 1 per row: ten classes named by the columns, every label right (c96b2e5 trained a
    two-class model on c0 and submitted all "0")."""
    comp = make_tiny_competition(tmp_path / "c")
    df = pd.read_csv(comp / "train.csv", dtype=str)
    one_hot = pd.get_dummies(df["label"]).astype(int).add_prefix("c")
    pd.concat([df[["id"]], one_hot], axis=1).to_csv(comp / "train.csv", index=False)
    (comp / "sample_submission.csv").unlink()
    loaded = load_competition(comp)
    assert loaded.classes == tuple(f"c{c}" for c in CLASSES)
    assert [loaded.classes[i] for i in loaded.train_labels] == ["c" + label for label in df["label"]]
    assert "labels one-hot over 10 columns" in describe(loaded)


def test_label_column_guess_is_said_and_can_be_named(tmp_path, caplog):
    """A label column found only because it is the one other column is said (describe and a warning); with several
    candidates foldwise.yaml names it."""
    comp = make_tiny_competition(tmp_path / "c")
    df = pd.read_csv(comp / "train.csv", dtype=str).rename(columns={"label": "digit"})
    df.to_csv(comp / "train.csv", index=False)
    with caplog.at_level(logging.WARNING):
        loaded = load_competition(comp)
    assert "label column 'digit' (guessed: the only other column)" in describe(loaded)
    assert "name them in foldwise.yaml" in caplog.text
    df.assign(writer="w").to_csv(comp / "train.csv", index=False)
    (comp / "foldwise.yaml").write_text("label_column: digit\n")
    loaded = load_competition(comp)
    assert "label column 'digit' (from foldwise.yaml); other columns ignored: writer" in describe(loaded)
    assert [loaded.classes[i] for i in loaded.train_labels] == df["digit"].tolist()


def test_decomposed_unicode_file_name_matches_composed_id(tmp_path):
    """A file named in NFD (as macOS writes café) matches the NFC id in train.csv (c96b2e5: "1 id(s) have no
    image ... ['café']")."""
    comp = make_tiny_competition(tmp_path / "c")
    df = pd.read_csv(comp / "train.csv", dtype=str)
    composed = unicodedata.normalize("NFC", "café")
    (comp / "train" / f"{df['id'][0]}.png").rename(comp / "train" / (unicodedata.normalize("NFD", composed) + ".png"))
    df.loc[0, "id"] = composed
    df.to_csv(comp / "train.csv", index=False)
    loaded = load_competition(comp)
    assert loaded.train_ids[0] == composed
    assert unicodedata.normalize("NFC", loaded.train_images[0].stem) == composed


@pytest.mark.parametrize("form", ["train/{}.png", "./train/{}.png", "{}.png", "{}"])
def test_ids_written_as_paths(tmp_path, form):
    """Kaggle csvs often list `train/x.png`: ids as paths relative to the competition resolve to the same files."""
    comp = make_tiny_competition(tmp_path / "c")
    df = pd.read_csv(comp / "train.csv", dtype=str)
    plain = load_competition(comp).train_images
    df["id"] = [form.format(i) for i in df["id"]]
    df.to_csv(comp / "train.csv", index=False)
    loaded = load_competition(comp)
    assert loaded.train_images == plain and loaded.train_ids == tuple(df["id"])


def test_byte_order_mark_and_crlf(tmp_path):
    """train.csv saved by Excel (UTF-8 BOM, CRLF line ends) reads like the plain one."""
    comp = make_tiny_competition(tmp_path / "c")
    plain = load_competition(comp)
    text = (comp / "train.csv").read_text()
    (comp / "train.csv").write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    loaded = load_competition(comp)
    assert (loaded.train_ids, loaded.train_labels) == (plain.train_ids, plain.train_labels)


def test_a_huge_scan_decodes_reduced(tmp_path):
    """A 15000 x 15000 PNG (a few hundred KB of zlib) decodes within the pixel cap, reduced while decoding, instead
    of PIL's DecompressionBombError traceback."""
    path = tmp_path / "scan.png"
    big = Image.new("L", (15000, 15000), 0)
    big.paste(255, (0, 0, 7500, 15000))  # left half white
    big.save(path)
    pixels = decode_image(path, 32)
    assert pixels.shape == (32, 32, 3)
    assert pixels[:, :14].min() > 200 and pixels[:, 18:].max() < 50


def test_describe_names_the_columns_it_took(tmp_path, capsys):
    """`foldwise describe` says which columns are the ids and the labels."""
    comp = make_tiny_competition(tmp_path / "c")
    assert main(["describe", str(comp)]) == 0
    assert "note: train.csv: id column 'id' (by name), label column 'label' (by name)" in capsys.readouterr().out


def test_non_image_like_test_folder_with_nested_images_dir_still_works(tmp_path):
    """The Tiny ImageNet Kaggle variant's test/images/ keeps working beside the new nesting rules."""
    comp = folder_comp(tmp_path / "c")
    (comp / "test" / "images").mkdir()
    for path in sorted((comp / "test").glob("*.png")):
        shutil.move(path, comp / "test" / "images" / path.name)
    assert len(load_competition(comp).test_ids) == 8
    assert np.all(np.array(load_competition(comp).train_labels) < 3)
