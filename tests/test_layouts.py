"""Input layouts beyond csv/folder: CIFAR pickles, Tiny ImageNet (official and Kaggle), Intel folders, MNIST IDX.

Every fixture rebuilds the real on-disk structure (names, nesting, file formats, annotation files) with a few
tiny images, so detection, ids, labels, the held-out split's solution key and the decoded pixels are checked
against what the real downloads hold.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from foldwise.blending.submit import score_submission
from foldwise.cli import main
from foldwise.data.cache import cached_images, resize_pil
from foldwise.data.competition import ArrayImages, write_solution
from foldwise.data.folds import make_folds
from foldwise.data.formats import LAYOUTS, detect_layout, load_competition
from foldwise.errors import FoldwiseError

RNG = np.random.default_rng(0)

# ---- fixtures: the real structures, tiny ----


def write_pickle(path: Path, obj: dict) -> None:
    """Pickle as the official Python 2 files do: protocol 2, numpy arrays under numpy.core's module name."""
    data = pickle.dumps(obj, protocol=2).replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    path.write_bytes(data)


def cifar_rows(n: int) -> np.ndarray:
    """n random 32x32 RGB images as CIFAR rows: 1024 red, 1024 green, 1024 blue values each (uint8 (n, 3072))."""
    return RNG.integers(0, 256, (n, 3072), dtype=np.uint8)


def make_cifar10(root: Path, names=("airplane", "automobile", "bird")) -> dict:
    """cifar-10-batches-py/ with data_batch_1..5 (3 images each), test_batch (6), batches.meta."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    meta = {b"num_cases_per_batch": 3, b"label_names": [n.encode() for n in names], b"num_vis": 3072}
    write_pickle(d / "batches.meta", meta)
    rows, labels = [], []
    for b in range(1, 6):
        data, lab = cifar_rows(3), [(b + i) % 3 for i in range(3)]
        write_pickle(d / f"data_batch_{b}", {b"batch_label": f"training batch {b} of 5".encode(), b"labels": lab,
                                             b"data": data, b"filenames": [b"x_s_%06d.png" % (b * 10 + i) for i in
                                                                           range(3)]})  # fmt: skip
        rows.append(data)
        labels += lab
    test, test_labels = cifar_rows(6), [2, 0, 1, 1, 0, 2]
    write_pickle(d / "test_batch", {b"batch_label": b"testing batch 1 of 1", b"labels": test_labels, b"data": test,
                                    b"filenames": [b"t_s_%06d.png" % i for i in range(6)]})  # fmt: skip
    return {"train": np.concatenate(rows), "labels": labels, "test": test, "test_labels": test_labels}


def make_cifar100(root: Path) -> dict:
    """cifar-100-python/ with train (16 images), test (4), meta: 4 fine classes in 2 coarse superclasses."""
    d = root / "cifar-100-python"
    d.mkdir(parents=True)
    fine_names, coarse_names = ["apple", "bear", "orchid", "tulip"], ["flowers", "fruit_and_bear"]
    coarse_of = [1, 1, 0, 0]
    write_pickle(d / "meta", {b"fine_label_names": [n.encode() for n in fine_names],
                              b"coarse_label_names": [n.encode() for n in coarse_names]})  # fmt: skip
    out = {}
    for split, n in (("train", 16), ("test", 4)):
        fine = [i % 4 for i in range(n)]
        write_pickle(d / split, {b"filenames": [b"f_%03d.png" % i for i in range(n)], b"batch_label": split.encode(),
                                 b"fine_labels": fine, b"coarse_labels": [coarse_of[f] for f in fine],
                                 b"data": cifar_rows(n)})  # fmt: skip
        out[split] = fine
    return out


def save_jpeg(path: Path, size: int = 16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(RNG.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path, quality=90)


WNIDS = ("n02124075", "n01443537", "n04067472")  # Egyptian cat, goldfish, reel
WORDS = {"n01443537": "goldfish, Carassius auratus", "n02124075": "Egyptian cat", "n04067472": "reel",
         "n09999999": "not in this subset", "n00001740": "entity"}  # fmt: skip


def make_tiny_imagenet(root: Path, per_class: int = 4) -> Path:
    """tiny-imagenet-200/ as extracted: a 3-wnid subset (a 4th train folder and its val rows left in place)."""
    d = root / "tiny-imagenet-200"
    d.mkdir(parents=True)
    (d / "wnids.txt").write_text("".join(w + "\n" for w in WNIDS))
    (d / "words.txt").write_text("".join(f"{w}\t{n}\n" for w, n in WORDS.items()))
    for wnid in (*WNIDS, "n09999999"):
        boxes = []
        for i in range(per_class):
            save_jpeg(d / "train" / wnid / "images" / f"{wnid}_{i}.JPEG")
            boxes.append(f"{wnid}_{i}.JPEG\t0\t1\t14\t15\n")
        (d / "train" / wnid / f"{wnid}_boxes.txt").write_text("".join(boxes))
    rows = []
    for i, wnid in enumerate(["n04067472", "n01443537", "n09999999", "n02124075", "n01443537", "n04067472"]):
        save_jpeg(d / "val" / "images" / f"val_{i}.JPEG")
        rows.append(f"val_{i}.JPEG\t{wnid}\t0\t2\t13\t15\n")
    (d / "val" / "val_annotations.txt").write_text("".join(rows))
    for i in range(3):
        save_jpeg(d / "test" / "images" / f"test_{i}.JPEG")
    return d


INTEL = ("buildings", "forest", "glacier")


def make_intel(root: Path) -> None:
    """Intel Image Classification as on Kaggle: seg_train/seg_train/<class>/, seg_test/seg_test/<class>/, seg_pred."""
    n = 0
    for c in INTEL:
        for _ in range(4):
            save_jpeg(root / "seg_train" / "seg_train" / c / f"{n}.jpg")
            n += 1
    for c, stem in zip(INTEL * 2, (20056, 20057, 20060, 20061, 20064, 20065)):
        save_jpeg(root / "seg_test" / "seg_test" / c / f"{stem}.jpg")
    for stem in (5, 10, 1003):
        save_jpeg(root / "seg_pred" / "seg_pred" / f"{stem}.jpg")


def make_tin_kaggle(root: Path) -> None:
    """The Kaggle Tiny ImageNet variant: train/<class>/, valid/<class>/, test/images/."""
    for wnid in WNIDS:
        for i in range(4):
            save_jpeg(root / "train" / wnid / f"{wnid}_{i}.JPEG")
        save_jpeg(root / "valid" / wnid / f"val_{wnid[-2:]}.JPEG")
    for i in range(2):
        save_jpeg(root / "test" / "images" / f"test_{i}.JPEG")


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.tobytes()


def make_idx(root: Path, gz: bool = True, n_train: int = 12, n_test: int = 5) -> dict:
    """The four MNIST IDX files (28x28 uint8 images, uint8 labels) directly in root."""
    root.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": (RNG.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), 0x08),
        "train-labels-idx1-ubyte": (np.arange(n_train, dtype=np.uint8) % 3, 0x08),
        "t10k-images-idx3-ubyte": (RNG.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), 0x08),
        "t10k-labels-idx1-ubyte": (np.array([2, 1, 0, 2, 1][:n_test], dtype=np.uint8), 0x08),
    }
    for name, (array, code) in arrays.items():
        data = idx_bytes(array, code)
        (root / (name + ".gz" if gz else name)).write_bytes(gzip.compress(data) if gz else data)
    return {name.split("-idx")[0]: array for name, (array, _) in arrays.items()}


# ---- CIFAR ----


def test_cifar10_read_from_tarball_folder(tmp_path):
    """CIFAR-10 pickles in cifar-10-batches-py/: classes from batches.meta, numbered ids, test_batch labels kept."""
    root = tmp_path / "cifar10"
    data = make_cifar10(root)
    assert detect_layout(root) == "cifar"
    comp = load_competition(root)
    assert comp.layout == "cifar" and comp.classes == ("airplane", "automobile", "bird")
    assert comp.train_ids[:2] == ("train_00000", "train_00001") and len(comp.train_ids) == 15
    assert list(comp.train_labels) == data["labels"]
    assert comp.test_ids == tuple(f"test_{i:05d}" for i in range(6))
    assert comp.solution_labels == tuple(comp.classes[i] for i in data["test_labels"])
    assert isinstance(comp.train_images, ArrayImages) and len(comp.train_images) == 15
    assert [p.name for p in comp.train_images.files] == [f"data_batch_{b}" for b in range(1, 6)]
    assert "test_batch" in comp.test_description and "solution key" in comp.test_description
    assert comp.submission.sample_path is None and comp.submission.label_column == "label"
    assert not list(root.rglob("*.png"))  # images stay inside the pickles


def test_cifar_pixels_are_hwc_in_the_cache(tmp_path):
    """CIFAR rows are channel-planar (1024 R, 1024 G, 1024 B): the cache holds them as HWC, exactly."""
    root = tmp_path / "cifar10"
    data = make_cifar10(root)
    comp = load_competition(root)
    expected = data["train"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    full = cached_images(comp.train_images, 32, tmp_path / "cache", "train", workers=1)
    np.testing.assert_array_equal(full, expected)
    assert full[4, 0, 1, 2] == data["train"][4, 2 * 1024 + 1]  # blue plane, row 0, column 1
    small = cached_images(comp.train_images, 8, tmp_path / "cache", "train", workers=1)
    np.testing.assert_array_equal(small[7], resize_pil(Image.fromarray(expected[7]), 8))
    test = cached_images(comp.test_images, 32, tmp_path / "cache", "test", workers=1)
    np.testing.assert_array_equal(test, data["test"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def test_cifar100_fine_by_default_coarse_via_foldwise_yaml(tmp_path):
    """CIFAR-100 uses fine labels; `cifar_labels: coarse` in <comp>/foldwise.yaml switches to the superclasses."""
    root = tmp_path / "c100"
    labels = make_cifar100(root)
    assert detect_layout(root) == "cifar"
    fine = load_competition(root)
    assert fine.classes == ("apple", "bear", "orchid", "tulip")
    assert list(fine.train_labels) == labels["train"]
    assert fine.solution_labels == ("apple", "bear", "orchid", "tulip")
    assert "fine labels" in fine.layout_detail
    (root / "foldwise.yaml").write_text("cifar_labels: coarse\n")
    coarse = load_competition(root)
    assert coarse.classes == ("flowers", "fruit_and_bear")
    assert [coarse.classes[i] for i in coarse.train_labels[:4]] == ["fruit_and_bear", "fruit_and_bear", "flowers",
                                                                     "flowers"]  # fmt: skip
    assert coarse.solution_labels == ("fruit_and_bear", "fruit_and_bear", "flowers", "flowers")
    (root / "foldwise.yaml").write_text("cifar_labels: medium\n")
    with pytest.raises(FoldwiseError, match=r"foldwise\.yaml: cifar_labels: 'medium' is not one of fine, coarse"):
        load_competition(root)


def test_cifar_pickles_directly_in_competition_dir(tmp_path):
    """The pickles may sit in the competition directory itself (no cifar-100-python/ folder)."""
    make_cifar100(tmp_path)
    root = tmp_path / "cifar-100-python"  # the extracted folder used as the competition directory
    comp = load_competition(root)
    assert comp.layout == "cifar" and len(comp.train_ids) == 16 and comp.name == "cifar-100-python"


def test_cifar_truncated_pickle_names_the_file(tmp_path):
    """A truncated CIFAR pickle raises FoldwiseError naming it and saying to extract the tarball again."""
    root = tmp_path / "cifar10"
    make_cifar10(root)
    batch = root / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:500])
    with pytest.raises(FoldwiseError, match=r"data_batch_3: cannot read this CIFAR pickle, it is truncated.*again"):
        load_competition(root)


def test_cifar_pickle_with_foreign_code_is_refused(tmp_path):
    """A pickle that names anything but numpy array pieces is refused, never executed."""
    root = tmp_path / "cifar10"
    make_cifar10(root)
    marker = tmp_path / "pwned"
    evil = pickle.dumps({b"label_names": [b"a"], b"x": Evil(str(marker))}, protocol=2)
    (root / "cifar-10-batches-py" / "batches.meta").write_bytes(evil)
    with pytest.raises(FoldwiseError, match=r"batches\.meta: cannot read this CIFAR pickle.*(posix|os)\.system"):
        load_competition(root)
    assert not marker.exists()


class Evil:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.path}",)


# ---- Tiny ImageNet, official layout ----


def test_tiny_imagenet_official_subset(tmp_path):
    """wnids.txt defines the classes (sorted); val/ is the test set with its annotations as the solution key."""
    root = tmp_path / "tin"
    make_tiny_imagenet(root)
    assert detect_layout(root) == "tiny-imagenet"
    comp = load_competition(root)
    assert comp.layout == "tiny-imagenet"
    assert comp.classes == tuple(sorted(WNIDS))
    assert comp.class_descriptions == ("goldfish, Carassius auratus", "Egyptian cat", "reel")
    assert len(comp.train_ids) == 12 and comp.train_ids[0] == "n01443537/n01443537_0"
    for id_, label, path in zip(comp.train_ids, comp.train_labels, comp.train_images):
        assert id_.split("/")[0] == comp.classes[label] == path.parent.parent.name and path.suffix == ".JPEG"
    assert comp.test_ids == ("val_0", "val_1", "val_3", "val_4", "val_5")  # val_2 is of a wnid outside the subset
    assert comp.solution_labels == ("n04067472", "n01443537", "n02124075", "n01443537", "n04067472")
    assert all(p.parent.name == "images" and p.parent.parent.name == "val" for p in comp.test_images)
    notes = " ".join(comp.notes)
    assert "n09999999" in notes and "1 row(s) of wnids not in wnids.txt skipped" in notes
    assert "test/images (3 unlabeled images) is not used" in notes


def test_tiny_imagenet_sample_submission_selects_test_images(tmp_path):
    """A sample_submission.csv listing test/images ids makes that unlabeled split the test set, in its order."""
    root = tmp_path / "tin"
    make_tiny_imagenet(root)
    pd.DataFrame({"id": ["test_2", "test_0", "test_1"], "label": "x"}).to_csv(root / "sample_submission.csv",
                                                                              index=False)  # fmt: skip
    comp = load_competition(root)
    assert comp.test_ids == ("test_2", "test_0", "test_1")
    assert [p.stem for p in comp.test_images] == ["test_2", "test_0", "test_1"]
    assert comp.solution_labels == () and "val" in " ".join(comp.notes)


def test_tiny_imagenet_wnid_without_train_dir(tmp_path):
    """wnids.txt listing a wnid with no train folder raises FoldwiseError naming wnids.txt and the wnid."""
    root = tmp_path / "tin"
    d = make_tiny_imagenet(root)
    with open(d / "wnids.txt", "a") as f:
        f.write("n07749582\n")
    with pytest.raises(FoldwiseError, match=r"wnids\.txt: lists 1 wnid\(s\) without images.*n07749582.*Restore"):
        load_competition(root)


def test_tiny_imagenet_val_annotation_without_image(tmp_path):
    """A val_annotations.txt row whose image is missing raises FoldwiseError naming both."""
    root = tmp_path / "tin"
    d = make_tiny_imagenet(root)
    (d / "val" / "images" / "val_4.JPEG").unlink()
    with pytest.raises(FoldwiseError, match=r"val_annotations\.txt: 1 listed image\(s\) are missing .*val_4\.JPEG"):
        load_competition(root)


# ---- folder variants ----


def test_intel_seg_test_is_the_test_set(tmp_path):
    """Intel: seg_train/seg_train/<class> trains, labeled seg_test is the test set, seg_pred is left out with a note."""
    root = tmp_path / "intel"
    make_intel(root)
    assert detect_layout(root) == "folder"
    comp = load_competition(root)
    assert comp.classes == INTEL and len(comp.train_ids) == 12 and comp.train_ids[0] == "buildings/0"
    assert comp.test_ids == ("20056", "20057", "20060", "20061", "20064", "20065")
    assert comp.solution_labels == INTEL * 2
    assert [p.parent.name for p in comp.test_images] == list(INTEL * 2)
    assert "seg_test/seg_test" in comp.test_description and "Intel" in comp.layout_detail
    assert any("seg_pred/seg_pred/ (3 unlabeled images) is not used" in n for n in comp.notes)


def test_intel_sample_submission_predicts_seg_pred(tmp_path):
    """With a sample_submission.csv (of seg_pred ids) the unlabeled seg_pred folder is the test set."""
    root = tmp_path / "intel"
    make_intel(root)
    pd.DataFrame({"image_name": ["1003.jpg", "5.jpg", "10.jpg"], "label": "sea"}).to_csv(
        root / "sample_submission.csv", index=False
    )
    comp = load_competition(root)
    assert comp.test_ids == ("1003.jpg", "5.jpg", "10.jpg") and comp.solution_labels == ()
    assert [p.name for p in comp.test_images] == ["1003.jpg", "5.jpg", "10.jpg"]
    assert comp.submission.id_column == "image_name"
    assert any("seg_test" in n and "labeled" in n for n in comp.notes)


def test_intel_sample_submission_of_seg_test_ids_keeps_seg_test(tmp_path):
    """A sample listing the labeled seg_test ids chooses seg_test (in the sample's order, labels kept as the key),
    even though an unlabeled seg_pred folder is there too."""
    root = tmp_path / "intel"
    make_intel(root)
    ids = ["20065", "20056", "20057", "20060", "20061", "20064"]
    pd.DataFrame({"id": ids, "label": "forest"}).to_csv(root / "sample_submission.csv", index=False)
    comp = load_competition(root)
    assert comp.test_ids == tuple(ids) and comp.solution_labels == ("glacier",) + INTEL + ("buildings", "forest")
    assert any("seg_pred" in n and "not used" in n for n in comp.notes)


def test_file_layout_pixels_in_the_cache(tmp_path):
    """Intel JPEGs decode into the cache as PIL decodes them (no resize at their own size; resized at 8 px)."""
    root = tmp_path / "intel"
    make_intel(root)
    comp = load_competition(root)
    cache = cached_images(comp.train_images, 16, tmp_path / "cache", "train", workers=1)
    for i in (0, 5, 11):
        with Image.open(comp.train_images[i]) as im:
            np.testing.assert_array_equal(cache[i], np.asarray(im.convert("RGB")))
            np.testing.assert_array_equal(
                cached_images(comp.train_images, 8, tmp_path / "cache", "train", workers=1)[i], resize_pil(im, 8)
            )


def test_tiny_imagenet_kaggle_variant(tmp_path):
    """train/<wnid>/, valid/<wnid>/ (labeled: the test set) and test/images/ (unlabeled: noted) as a folder layout."""
    root = tmp_path / "tin-kaggle"
    make_tin_kaggle(root)
    assert detect_layout(root) == "folder"
    comp = load_competition(root)
    assert comp.classes == tuple(sorted(WNIDS)) and len(comp.train_ids) == 12
    assert comp.test_ids == ("val_37", "val_72", "val_75")
    assert comp.solution_labels == ("n01443537", "n04067472", "n02124075")
    assert "valid/<class>/" in comp.test_description
    assert any("test/images/ (2 unlabeled images) is not used" in n for n in comp.notes)


def test_tiny_imagenet_official_forced_as_folder(tmp_path):
    """--layout folder on the official tree reads train/<wnid>/images/ and the unlabeled test/images/."""
    root = tmp_path / "tin"
    d = make_tiny_imagenet(root)
    comp = load_competition(d, layout="folder")
    assert comp.layout == "folder" and len(comp.classes) == 4 and len(comp.train_ids) == 16
    assert comp.test_ids == ("test_0", "test_1", "test_2") and comp.solution_labels == ()


def test_plain_folder_with_labeled_test_folders(tmp_path):
    """train/<class>/ + test/<class>/: the labeled test folders are the test set; ids are stems, labels kept aside."""
    root = tmp_path / "plain"
    for split, n in (("train", 3), ("test", 1)):
        for c in ("cat", "dog"):
            for i in range(n):
                save_jpeg(root / split / c / f"{split}{c}{i}.jpg", 8)
    comp = load_competition(root)
    assert comp.test_ids == ("testcat0", "testdog0") and comp.solution_labels == ("cat", "dog")


# ---- IDX ----


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_idx_layout(tmp_path, gz):
    """MNIST IDX files: numbered ids, digit class names, t10k labels as the solution key, pixels as stored."""
    root = tmp_path / "mnist"
    data = make_idx(root, gz=gz)
    assert detect_layout(root) == "idx"
    comp = load_competition(root)
    assert comp.layout == "idx" and comp.classes == ("0", "1", "2")
    assert comp.train_ids[-1] == "train_00011" and list(comp.train_labels) == (np.arange(12) % 3).tolist()
    assert comp.test_ids == tuple(f"test_{i:05d}" for i in range(5))
    assert comp.solution_labels == ("2", "1", "0", "2", "1")
    cache = cached_images(comp.test_images, 28, tmp_path / "cache", "test", workers=1)
    np.testing.assert_array_equal(cache[3], np.repeat(data["t10k-images"][3][:, :, None], 3, axis=2))


def test_idx_fashion_names_from_directory_name(tmp_path):
    """A directory named like fashion-mnist gets Fashion-MNIST's class names."""
    make_idx(tmp_path / "fashion-mnist")
    comp = load_competition(tmp_path / "fashion-mnist")
    assert comp.classes == ("t-shirt", "trouser", "pullover")


def test_idx_count_mismatch(tmp_path):
    """train-images and train-labels of different lengths raise FoldwiseError naming both files."""
    root = tmp_path / "mnist"
    make_idx(root)
    labels = gzip.compress(idx_bytes(np.zeros(11, dtype=np.uint8), 0x08))
    (root / "train-labels-idx1-ubyte.gz").write_bytes(labels)
    with pytest.raises(FoldwiseError, match=r"train-images-idx3-ubyte\.gz: holds 12 images but .*train-labels-idx1-"
                                            r"ubyte\.gz holds 11 labels.*Download both again"):  # fmt: skip
        load_competition(root)


# ---- shared: folds, solution key, describe, --layout ----

BUILDERS = {
    "cifar10": make_cifar10,
    "cifar100": make_cifar100,
    "tiny-imagenet": make_tiny_imagenet,
    "intel": make_intel,
    "tin-kaggle": make_tin_kaggle,
    "idx": make_idx,
}


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_folds_and_solution_key_on_every_layout(tmp_path, kind):
    """`make_folds(k=2)` works on each layout, and write_solution's key scores a perfect submission at 1.0."""
    root = tmp_path / kind
    BUILDERS[kind](root)
    comp = load_competition(root)
    df = make_folds(comp, k=2, seed=0)
    assert sorted(df["id"]) == sorted(comp.train_ids) and set(df["fold"]) == {0, 1}
    path = write_solution(comp, tmp_path / "output" / kind / "solution.csv")
    key = pd.read_csv(path, dtype=str)
    assert list(key.columns) == ["id", "label"] and key["id"].tolist() == list(comp.test_ids)
    assert key["label"].tolist() == list(comp.solution_labels)
    key.to_csv(tmp_path / "sub.csv", index=False)
    assert score_submission(tmp_path / "sub.csv", path)["accuracy"] == 1.0
    mtime = path.stat().st_mtime_ns
    assert write_solution(comp, path) == path and path.stat().st_mtime_ns == mtime  # unchanged: not rewritten


def test_write_solution_without_labels_writes_nothing(tmp_path):
    """A competition whose test images are unlabeled has no key: write_solution returns None and writes nothing."""
    root = tmp_path / "tin"
    make_tin_kaggle(root)
    for folder in (root / "valid").iterdir():
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
    comp = load_competition(root)
    assert comp.solution_labels == () and comp.test_ids == ("test_0", "test_1")
    assert write_solution(comp, tmp_path / "solution.csv") is None and not (tmp_path / "solution.csv").exists()


def test_describe_cifar(tmp_path, capsys):
    """`foldwise describe` prints the layout, classes, counts, the test split and its key, sizes and format."""
    root = tmp_path / "cifar10"
    make_cifar10(root)
    assert main(["describe", str(root)]) == 0
    out = capsys.readouterr().out
    assert "layout: cifar - CIFAR-10 python pickles in cifar-10-batches-py/" in out
    assert "classes: 3: airplane, automobile, bird" in out
    assert "train: 15 labeled images; per class min 5" in out
    assert "test: 6 images - CIFAR-10 test_batch (labeled: its labels are a solution key kept aside" in out
    assert "32x32 (all)" in out and "submission: id,label" in out


def test_describe_tiny_imagenet_and_intel(tmp_path, capsys):
    """Tiny ImageNet lists wnids with their words.txt names; Intel notes the unused seg_pred folder."""
    make_tiny_imagenet(tmp_path / "tin")
    assert main(["describe", str(tmp_path / "tin")]) == 0
    out = capsys.readouterr().out
    assert "n01443537 (goldfish, Carassius auratus), n02124075 (Egyptian cat)" in out
    assert "16x16 (" in out and "modes RGB" in out
    make_intel(tmp_path / "intel")
    assert main(["describe", str(tmp_path / "intel"), "--layout", "folder"]) == 0
    out = capsys.readouterr().out
    assert "note: seg_pred/seg_pred/ (3 unlabeled images) is not used" in out


def test_forced_layout_and_cli_choices(tmp_path, capsys):
    """--layout accepts every reader's name; forcing the wrong one gives a FoldwiseError (exit 2), not a traceback."""
    root = tmp_path / "mnist"
    make_idx(root)
    assert main(["describe", str(root), "--layout", "idx"]) == 0
    assert "layout: idx" in capsys.readouterr().out
    assert main(["describe", str(root), "--layout", "cifar"]) == 2
    assert "no CIFAR pickles" in capsys.readouterr().err
    assert set(LAYOUTS) == {"csv", "folder", "cifar", "tiny-imagenet", "idx"}


def test_container_images_are_read_once_and_their_size_is_known_without_reading(tmp_path, monkeypatch):
    """CIFAR pickles: the size comes from reading the labels; the pixels are unpickled once however many stages
    (cache, duplicate search, data summary, image_size 0) ask for them."""
    from foldwise.data.formats import cifar
    from foldwise.data.images import native_image_size

    root = tmp_path / "cifar10"
    make_cifar10(root)
    comp = load_competition(root)
    calls = []
    real = cifar.load_pickle
    monkeypatch.setattr(cifar, "load_pickle", lambda p: calls.append(p) or real(p))
    assert native_image_size(comp.train_images) == 32 and not calls
    first = comp.train_images.load()
    assert comp.train_images.load() is first and len(calls) == len(comp.train_images.files)
