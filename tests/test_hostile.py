"""Hostile input: each kind of bad data gets a message naming the file and what to do, exit 2, and no lost work.

Every case starts from a competition whose folds were already written; the bad input is introduced afterwards and
the command is run again through the CLI. The earlier folds file must be byte-identical afterwards.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import make_tiny_competition, tiny_recipe
from foldwise.cli import main


def first_train_image(comp: Path) -> Path:
    return comp / "train" / f"{pd.read_csv(comp / 'train.csv', dtype=str)['id'][0]}.png"


def corrupt_png(comp: Path) -> str:
    first_train_image(comp).write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    return r"cannot be decoded.*ttrain_00000\.png"


def truncated_jpeg(comp: Path) -> str:
    df = pd.read_csv(comp / "train.csv", dtype=str)
    path = comp / "train" / f"{df['id'][1]}.png"
    jpeg = path.with_suffix(".jpg")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(jpeg, quality=95)
    jpeg.write_bytes(jpeg.read_bytes()[:400])
    path.unlink()
    return r"cannot be decoded.*ttrain_00001\.jpg"


def zero_byte(comp: Path) -> str:
    first_train_image(comp).write_bytes(b"")
    return r"empty \(0 bytes\).*ttrain_00000\.png.*Download them again"


def tiny_class(comp: Path) -> str:
    df = pd.read_csv(comp / "train.csv", dtype=str)
    keep = df[(df["label"] != "3") | (df.index.isin(df.index[df["label"] == "3"][:2]))]
    for id_ in set(df["id"]) - set(keep["id"]):
        (comp / "train" / f"{id_}.png").unlink()
    keep.to_csv(comp / "train.csv", index=False)
    return r"fewer than k=5 images \('3' has 2\).*--k 2"


def row_without_image(comp: Path) -> str:
    first_train_image(comp).unlink()
    return r"train\.csv: 1 id\(s\) have no image.*ttrain_00000.*Add the images or remove those rows"


def image_without_row(comp: Path) -> str:
    shutil.copy(first_train_image(comp), comp / "train" / "stray.png")
    return r"1 image\(s\) have no row in train\.csv.*stray\.png"


def duplicate_id(comp: Path) -> str:
    df = pd.read_csv(comp / "train.csv", dtype=str)
    pd.concat([df, df.iloc[:1]]).to_csv(comp / "train.csv", index=False)
    return r"train\.csv: duplicate ids \['ttrain_00000'\]"


def sample_id_without_image(comp: Path) -> str:
    df = pd.read_csv(comp / "sample_submission.csv", dtype=str)
    df.loc[0, "id"] = "ghost"
    df.to_csv(comp / "sample_submission.csv", index=False)
    return r"sample_submission\.csv: 1 id\(s\) have no image.*ghost"


def image_not_in_sample(comp: Path) -> str:
    shutil.copy(next((comp / "test").glob("*.png")), comp / "test" / "extra.png")
    return r"1 image\(s\) have no row in sample_submission\.csv.*extra\.png"


def empty_test_set(comp: Path) -> str:
    shutil.rmtree(comp / "test")
    (comp / "test").mkdir()
    (comp / "sample_submission.csv").unlink()
    return r"the test set is empty"


def blank_label(comp: Path) -> str:
    df = pd.read_csv(comp / "train.csv", dtype=str)
    df.loc[4, "label"] = ""
    df.to_csv(comp / "train.csv", index=False)
    return r"train\.csv: 1 row\(s\) have no label.*ttrain_00004"


def unknown_label(comp: Path) -> str:
    sample = pd.read_csv(comp / "sample_submission.csv", dtype=str)
    pd.DataFrame({"id": sample["id"], **{str(c): "0.1" for c in range(10)}}).to_csv(
        comp / "sample_submission.csv", index=False
    )
    df = pd.read_csv(comp / "train.csv", dtype=str)
    df.loc[0, "label"] = "seven"
    df.to_csv(comp / "train.csv", index=False)
    return r"training labels \['seven'\] are not among them"


def unknown_layout(comp: Path) -> str:
    (comp / "train.csv").rename(comp / "labels.txt")
    return r"no supported layout found.*labels\.txt"


def unreadable_csv(comp: Path) -> str:
    (comp / "train.csv").write_bytes(b"\xff\xfe\x00garbage\x00\xff" * 20)
    return r"train\.csv: not UTF-8 text.*save it as UTF-8"


def empty_sample(comp: Path) -> str:
    (comp / "sample_submission.csv").write_text("")
    return r"sample_submission\.csv: empty; it needs a header row"


def one_hot_row_with_two_ones(comp: Path) -> str:
    df = pd.read_csv(comp / "train.csv", dtype=str)
    one_hot = pd.get_dummies(df["label"]).astype(int).astype(str)
    one_hot.iloc[3, 0] = "1" if one_hot.iloc[3, 0] == "0" else "0"
    pd.concat([df[["id"]], one_hot.add_prefix("c")], axis=1).to_csv(comp / "train.csv", index=False)
    (comp / "sample_submission.csv").unlink()
    return r"train\.csv: row 5 \(id 'ttrain_00003'\) has (2|0) ones among the one-hot columns"


def ambiguous_label_columns(comp: Path) -> str:
    df = pd.read_csv(comp / "train.csv", dtype=str).rename(columns={"label": "digit"})
    df.assign(writer="w" + df["id"].str[-2:]).to_csv(comp / "train.csv", index=False)
    return r"train\.csv: cannot tell which of the columns \['digit', 'writer'\] holds the labels.*label_column"


def options_name_a_missing_column(comp: Path) -> str:
    (comp / "foldwise.yaml").write_text("label_column: diagnosis\n")
    return r"train\.csv: has no column 'diagnosis' \(foldwise\.yaml label_column\)"


def options_unknown_key(comp: Path) -> str:
    (comp / "foldwise.yaml").write_text("label_colum: label\n")
    return r"foldwise\.yaml: unknown key 'label_colum'"


def image_past_the_pixel_cap(comp: Path) -> str:
    # A 20000 x 20000 PNG is 0.5 MB of zlib; PIL reads the size from the header, and foldwise stops there.
    Image.new("1", (20000, 20000)).save(first_train_image(comp))
    return r"ttrain_00000\.png: 20000 x 20000 = 400 megapixels, more than foldwise decodes \(268\)"


def two_ids_one_file(comp: Path) -> str:
    df = pd.read_csv(comp / "train.csv", dtype=str)
    (comp / "train" / f"{df['id'][1]}.png").unlink()
    df.loc[1, "id"] = df["id"][0] + ".png"  # `x` and `x.png`: the same file
    df.to_csv(comp / "train.csv", index=False)
    return r"train\.csv: ids naming the same image file"


def id_escaping_the_competition(comp: Path) -> str:
    df = pd.read_csv(comp / "train.csv", dtype=str)
    (comp / "train" / f"{df['id'][0]}.png").rename(comp.parent / "outside.png")
    df.loc[0, "id"] = "../../outside.png"
    df.to_csv(comp / "train.csv", index=False)
    return r"train\.csv: 1 id\(s\) have no image.*outside\.png"


CASES = {
    "corrupt png": (corrupt_png, "train"),
    "truncated jpeg": (truncated_jpeg, "train"),
    "zero-byte file": (zero_byte, "folds"),
    "class smaller than k": (tiny_class, "folds"),
    "csv row without image": (row_without_image, "folds"),
    "image without csv row": (image_without_row, "folds"),
    "duplicate id": (duplicate_id, "folds"),
    "sample id without test image": (sample_id_without_image, "folds"),
    "test image not in sample": (image_not_in_sample, "folds"),
    "empty test set": (empty_test_set, "folds"),
    "blank label": (blank_label, "folds"),
    "label not a known class": (unknown_label, "folds"),
    "unknown layout": (unknown_layout, "folds"),
    "unreadable csv": (unreadable_csv, "folds"),
    "empty sample_submission.csv": (empty_sample, "folds"),
    "one-hot row without exactly one 1": (one_hot_row_with_two_ones, "folds"),
    "label column cannot be told": (ambiguous_label_columns, "folds"),
    "foldwise.yaml names a missing column": (options_name_a_missing_column, "folds"),
    "foldwise.yaml unknown key": (options_unknown_key, "folds"),
    "image past the pixel cap": (image_past_the_pixel_cap, "train"),
    "two ids naming one file": (two_ids_one_file, "folds"),
    "id path escaping the competition": (id_escaping_the_competition, "folds"),
}


@pytest.fixture
def workspace(tmp_path):
    """A tiny competition with folds already written (the work that must not be lost) and a tiny recipe file."""
    comp = make_tiny_competition(tmp_path / "input" / "tiny")
    assert main(["--root", str(tmp_path), "folds", str(comp)]) == 0
    data = tiny_recipe().to_dict()
    data.pop("name")
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(data))
    return tmp_path, comp


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "folds").rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_is_named_and_nothing_is_lost(workspace, case, capsys):
    """The message names the file and the fix, the exit code is 2, and the folds written earlier are untouched."""
    root, comp = workspace
    before = snapshot(root)
    capsys.readouterr()
    damage, command = CASES[case]
    expected = damage(comp)
    args = ["--root", str(root), command, str(comp)] + (["-c", str(root / "r.yaml")] if command == "train" else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"foldwise {command}: error:" in err
    message = err[err.index(f"foldwise {command}: error:") :]
    assert re.search(expected, message, flags=re.S), message
    assert snapshot(root) == before
    assert not list((root / "output").rglob("*.npy")), "no half-written cache may be left behind"
    assert not list((root / "output").rglob("*.tmp*"))


def test_unreadable_directory(workspace, capsys, monkeypatch):
    """A directory the user cannot list (we run as root, so permissions are simulated) is named."""
    root, comp = workspace
    real_iterdir = Path.iterdir

    def iterdir(self):
        if self == comp / "train":
            raise PermissionError(13, "Permission denied")
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    assert main(["--root", str(root), "folds", str(comp)]) == 2
    assert "cannot read this directory (Permission denied); fix its permissions" in capsys.readouterr().err


def test_non_image_files_are_skipped_with_a_warning(workspace, caplog):
    """.DS_Store and notes among the images are skipped (documented policy), and the warning lists them."""
    root, comp = workspace
    (comp / "train" / ".DS_Store").write_bytes(b"\x00\x01")
    (comp / "train" / "notes.txt").write_text("hi")
    assert main(["--root", str(root), "folds", str(comp)]) == 0
    assert "skipping 2 non-image file(s): .DS_Store, notes.txt" in caplog.text


def test_non_image_files_in_class_folders_are_skipped_with_a_warning(tmp_path, caplog):
    """The folder layout (train/<class>/) gives the same warning, per folder; Tiny ImageNet's boxes file is not one."""
    comp = tmp_path / "input" / "shapes"
    for split, n in (("train", 6), ("test", 2)):
        for cls in ("a", "b"):
            folder = comp / split / cls / ("images" if cls == "b" and split == "train" else "")
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(np.full((8, 8, 3), i * 20, dtype=np.uint8)).save(folder / f"{cls}{i}.png")
    (comp / "train" / "a" / "Thumbs.db").write_bytes(b"\x00")
    (comp / "train" / "b" / "b_boxes.txt").write_text("b0.png 0 0 8 8\n")  # Tiny ImageNet nesting: not warned
    assert main(["--root", str(tmp_path), "describe", str(comp)]) == 0
    assert "skipping 1 non-image file(s): Thumbs.db" in caplog.text
    assert "b_boxes.txt" not in caplog.text
