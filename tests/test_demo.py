"""Demo competitions from data that ships offline: digits (sklearn) and Fashion-MNIST (IDX files)."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from foldwise.data.demo import build_digits, build_fashion_mnist
from foldwise.data.formats import load_competition
from foldwise.errors import FoldwiseError


def test_digits_demo_is_a_kaggle_csv_competition(tmp_path):
    """1,797 real digits split 80/20 stratified; solution.csv labels the test ids; the loader reads it back."""
    out = build_digits(tmp_path / "digits")
    train = pd.read_csv(out / "train.csv", dtype=str)
    solution = pd.read_csv(out / "solution.csv", dtype=str)
    sample = pd.read_csv(out / "sample_submission.csv", dtype=str)
    assert len(train) + len(solution) == 1797
    assert abs(len(solution) / 1797 - 0.2) < 0.01
    assert sample["id"].tolist() == solution["id"].tolist()
    assert not set(train["id"]) & set(solution["id"])
    assert set(solution["label"]) == {str(d) for d in range(10)}
    assert len(list((out / "test").glob("*.png"))) == len(solution)
    comp = load_competition(out)
    assert comp.layout == "csv" and comp.classes == tuple(str(d) for d in range(10))
    assert len(comp.train_ids) == len(train) and comp.solution_path == out / "solution.csv"


def test_demo_never_overwrites_an_existing_directory(tmp_path):
    """An existing non-empty target is left alone with a clear error."""
    (tmp_path / "digits").mkdir()
    (tmp_path / "digits" / "mine.txt").write_text("keep me")
    with pytest.raises(FoldwiseError, match="not empty"):
        build_digits(tmp_path / "digits")
    assert (tmp_path / "digits" / "mine.txt").read_text() == "keep me"


def write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_from_idx_source(tmp_path):
    """IDX files (gzipped) become 60k-style train + official-test-style unlabeled set with class names."""
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    write_idx(src / "train-images-idx3-ubyte.gz", rng.integers(0, 255, (20, 28, 28)))
    write_idx(src / "train-labels-idx1-ubyte.gz", np.arange(20) % 10)
    write_idx(src / "t10k-images-idx3-ubyte.gz", rng.integers(0, 255, (10, 28, 28)))
    write_idx(src / "t10k-labels-idx1-ubyte.gz", np.arange(10))
    out = build_fashion_mnist(tmp_path / "fm", source=src)
    train = pd.read_csv(out / "train.csv", dtype=str)
    assert len(train) == 20 and train["label"].iloc[9] == "ankle-boot"
    assert pd.read_csv(out / "solution.csv", dtype=str)["label"].tolist()[:2] == ["t-shirt", "trouser"]
    comp = load_competition(out)
    assert len(comp.test_ids) == 10 and len(comp.classes) == 10


def test_fashion_mnist_missing_files_say_how_to_get_them(tmp_path):
    """Without the IDX files the error names the missing file, the Debian package and --source."""
    with pytest.raises(FoldwiseError, match="dataset-fashion-mnist.*--source"):
        build_fashion_mnist(tmp_path / "fm", source=tmp_path / "nowhere")
    assert not (tmp_path / "fm").exists()
