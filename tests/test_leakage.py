"""Duplicate detection: exact and near-duplicates within train and across train/test, found without all-pairs."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import digit_arrays
from foldwise.cli import main
from foldwise.data import leakage, phash
from foldwise.data.competition import ArrayImages, Competition, SubmissionFormat
from foldwise.data.formats import load_competition
from foldwise.data.leakage import find_duplicates, group_ids, link_duplicates
from foldwise.data.phash import bands, hamming_pairs, perceptual_hashes, popcount64
from foldwise.errors import FoldwiseError
from foldwise.workspace import Workspace


def digit_pictures(per_class: int, offset: int = 0) -> tuple[list[np.ndarray], list[int]]:
    """Real handwritten digits upscaled to 32x32 grayscale (uint8), `per_class` of each class."""
    images, labels = digit_arrays(per_class, offset)
    return [np.asarray(Image.fromarray(im).resize((32, 32), Image.Resampling.BICUBIC)) for im in images], list(labels)


def file_comp(tmp_path: Path, train: list[Path], labels: list[int], test: list[Path]) -> Competition:
    """A Competition over image files already written (class c is named str(c))."""
    return Competition(
        name="dups", root=tmp_path, layout="csv", classes=tuple(str(c) for c in range(10)),
        train_ids=tuple(p.stem for p in train), train_labels=tuple(labels), train_images=tuple(train),
        test_ids=tuple(p.stem for p in test), test_images=tuple(test), submission=SubmissionFormat(),
    )  # fmt: skip


def save(array: np.ndarray, path: Path, **kwargs) -> Path:
    Image.fromarray(array).save(path, **kwargs)
    return path


@pytest.fixture
def digits_on_disk(tmp_path):
    """40 distinct real digits as PNG files (4 per class), plus 10 more for the test split."""
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    images, labels = digit_pictures(4)
    train = [save(im, tmp_path / "train" / f"d{i:02d}.png") for i, im in enumerate(images)]
    test_images, _ = digit_pictures(1, offset=4)
    test = [save(im, tmp_path / "test" / f"t{i:02d}.png") for i, im in enumerate(test_images)]
    return tmp_path, images, train, labels, test


def test_distinct_real_digits_are_not_grouped(digits_on_disk):
    """50 different handwritten digits: no group, no train/test pair (the detector does not flag lookalikes)."""
    root, _, train, labels, test = digits_on_disk
    report = find_duplicates(file_comp(root, train, labels, test), root / "cache")
    assert report.train_groups == [] and report.train_test_pairs == []
    assert report.exact_train_images == 0
    assert report.n_train == 40 and report.n_test == 10


def test_exact_copy_under_another_name_is_a_byte_identical_group(digits_on_disk):
    """A file copied under another name is found as an exact duplicate of the original."""
    root, _, train, labels, test = digits_on_disk
    copy = shutil.copy(train[3], root / "train" / "zz-copy.png")
    report = find_duplicates(file_comp(root, [*train, Path(copy)], [*labels, labels[3]], test), root / "cache")
    assert report.train_groups == [[3, 40]]
    assert report.group_exact == [True]
    assert report.exact_train_images == 2
    assert group_ids(report, 41)[40] == group_ids(report, 41)[3]


def test_near_duplicates_jpeg_resave_and_brightness_change_are_grouped(digits_on_disk):
    """Re-saved as JPEG at another quality, or brightened, or one pixel changed: same group; not byte-identical."""
    root, images, train, labels, test = digits_on_disk
    jpeg = save(images[5], root / "train" / "q95.jpg", quality=95)
    worse = save(images[5], root / "train" / "q60.jpg", quality=60)
    brighter = save(np.clip(images[12].astype(int) + 6, 0, 255).astype(np.uint8), root / "train" / "bright.png")
    pixel = images[20].copy()
    pixel[16, 16] ^= 0x80
    one_pixel = save(pixel, root / "train" / "pixel.png")
    files = [*train, jpeg, worse, brighter, one_pixel]
    report = find_duplicates(file_comp(root, files, [*labels, 1, 1, 3, 5], test), root / "cache")
    assert report.train_groups == [[5, 40, 41], [12, 42], [20, 43]]
    assert report.group_exact == [False, False, False]
    assert report.exact_train_images == 0


def test_train_test_pairs_exact_and_near(digits_on_disk):
    """A test image copied from train and one re-saved from train are both paired with that training image."""
    root, images, train, labels, test = digits_on_disk
    exact = Path(shutil.copy(train[7], root / "test" / "t-copy.png"))
    near = save(images[30], root / "test" / "t-near.jpg", quality=70)
    report = find_duplicates(file_comp(root, train, labels, [*test, exact, near]), root / "cache")
    assert report.train_test_pairs == [(7, 10), (30, 11)]
    assert report.pair_exact == [True, False]
    assert report.pair_distance[0] == 0 and report.pair_distance[1] <= report.threshold
    assert report.train_groups == []  # test images never form training groups
    comp = file_comp(root, train, labels, [*test, exact, near])
    lines = report.examples(comp, 3)
    assert any("test t-copy looks like train d07" in line and "byte-identical" in line for line in lines)
    assert any("test t-near looks like train d30" in line and "pHash distance" in line for line in lines)


def test_blank_images_match_only_by_bytes(tmp_path):
    """Blank images of different greys are not near-duplicates (their pHash is noise); identical blanks are."""
    files = [save(np.full((32, 32), v, dtype=np.uint8), tmp_path / f"b{v}.png") for v in (0, 90, 200)]
    files.append(Path(shutil.copy(files[1], tmp_path / "b90-copy.png")))
    test = [save(np.full((32, 32), 91, dtype=np.uint8), tmp_path / "t.png")]
    report = find_duplicates(file_comp(tmp_path, files, [0, 1, 2, 1], test), tmp_path / "cache")
    assert report.train_groups == [[1, 3]] and report.group_exact == [True]
    assert report.train_test_pairs == []
    assert report.flat_images == 5


def test_union_of_links_merges_chains():
    """a~b and b~c with a and c too far apart: one group {a, b, c}; d stays alone; e~f by bytes is another group."""
    a = np.uint64(0x0F0F_0F0F_0F0F_0F0F)
    b = a ^ np.uint64(0b1111)  # 4 bits from a
    c = b ^ np.uint64(0b1111 << 20)  # 4 bits from b, 8 from a
    d = ~a
    e = np.uint64(0x1234_5678_9ABC_DEF0)
    hashes = np.array([a, d, c, e, b, e ^ np.uint64(0xFF00FF00)], dtype=np.uint64)
    content = ["a", "d", "c", "e", "b", "e"]  # rows 3 and 5: same bytes although their hashes differ
    report = link_duplicates(hashes, np.full(6, 50.0), content, n_train=6, threshold=4)
    assert report.train_groups == [[0, 2, 4], [3, 5]]
    assert report.group_exact == [False, True]
    np.testing.assert_array_equal(group_ids(report, 6), [0, 1, 0, 2, 0, 2])


def test_nearest_training_image_is_paired_and_threshold_is_respected():
    """A test hash gets its nearest training hash; beyond the threshold there is no pair."""
    base = np.uint64(0xAAAA_5555_AAAA_5555)
    train = [base ^ np.uint64(0b11), base ^ np.uint64(0b1111_0000_0000), base ^ np.uint64(0xFFFF_0000_0000)]
    test = [base, base ^ np.uint64(0xFFFF_0000_0000 | 0b111111)]
    hashes = np.array([*train, *test], dtype=np.uint64)
    report = link_duplicates(hashes, np.full(5, 50.0), list("abcde"), n_train=3, threshold=4)
    assert report.train_test_pairs == [(0, 0)]
    assert report.pair_distance == [2]


@pytest.mark.parametrize("threshold", [0, 1, 2, 4, 6, 8])
def test_hamming_pairs_equals_brute_force(threshold):
    """Multi-index hashing finds exactly the pairs a full comparison finds, for every supported threshold."""
    rng = np.random.default_rng(threshold)
    base = rng.integers(0, 2**63, 150, dtype=np.int64).astype(np.uint64)
    flips = rng.integers(0, 64, (300, 5)).astype(np.uint64)
    near = base[rng.integers(0, 150, 300)]
    for k in range(rng.integers(0, 6)):
        near ^= np.uint64(1) << flips[:, k]
    hashes = np.unique(np.concatenate([base, near]))
    i, j, d = hamming_pairs(hashes, threshold)
    dist = popcount64(hashes[:, None] ^ hashes[None, :])
    bi, bj = np.nonzero(np.triu(dist <= threshold, 1))
    assert sorted(zip(i.tolist(), j.tolist())) == sorted(zip(bi.tolist(), bj.tolist()))
    np.testing.assert_array_equal(d, dist[i, j])


def test_bands_tile_all_64_bits():
    """threshold+1 bands, contiguous, covering bits 0..63 (the pigeonhole argument needs all of them)."""
    for threshold in range(9):
        parts = bands(threshold)
        assert len(parts) == threshold + 1
        assert parts[0][0] == 0 and sum(w for _, w in parts) == 64
        assert all(s + w == parts[k + 1][0] for k, (s, w) in enumerate(parts[:-1]))


def test_popcount_fallback_matches():
    """The lookup-table popcount (numpy < 2) agrees with numpy's."""
    x = np.random.default_rng(0).integers(0, 2**63, 1000, dtype=np.int64).astype(np.uint64)
    table = phash._POPCOUNT8[x.view(np.uint8).reshape(-1, 8)].sum(axis=1)
    np.testing.assert_array_equal(table, popcount64(x))


def test_hash_ignores_brightness_and_recompression_but_not_content():
    """pHash: +10 brightness keeps the hash; another digit is far away."""
    images, _ = digit_pictures(1)
    rgb = np.stack([np.repeat(im[..., None], 3, axis=2) for im in images])
    hashes, detail = perceptual_hashes(rgb)
    brighter, _ = perceptual_hashes(np.clip(rgb.astype(int) + 10, 0, 255).astype(np.uint8))
    assert popcount64(hashes ^ brighter).max() <= 2
    dist = popcount64(hashes[:, None] ^ hashes[None, :])
    assert dist[np.triu_indices(10, 1)].min() > 4
    assert detail.min() > leakage.FLAT_DETAIL


def test_two_thousand_images_run_fast_without_all_pairs(tmp_path, monkeypatch):
    """2,000 array images with 30 planted duplicates: all found, and far fewer than N^2/2 hash comparisons."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (2000, 8, 8, 3), dtype=np.uint8)  # smooth random pictures, like photos
    images = np.stack([np.asarray(Image.fromarray(c).resize((32, 32), Image.Resampling.BICUBIC)) for c in coarse])
    images[1000:1015] = images[:15]  # exact copies
    images[1500:1515] = np.clip(images[100:115].astype(int) + 5, 0, 255)  # brighter copies
    container = tmp_path / "images.npy"
    np.save(container, images)
    source = ArrayImages((container,), 2000, lambda: np.load(container), (32, 32))
    brighter = lambda: np.clip(np.load(container)[200:205].astype(int) + 5, 0, 255).astype(np.uint8)  # noqa: E731
    test_source = ArrayImages((container,), 5, brighter, (32, 32))
    comp = Competition(
        name="big", root=tmp_path, layout="npz", classes=("a", "b"), train_ids=tuple(f"i{i}" for i in range(2000)),
        train_labels=tuple(i % 2 for i in range(2000)), train_images=source, test_ids=tuple("abcde"),
        test_images=test_source, submission=SubmissionFormat(),
    )  # fmt: skip
    compared = []
    real = phash.popcount64
    monkeypatch.setattr(phash, "popcount64", lambda x: compared.append(np.size(x)) or real(x))
    start = time.perf_counter()
    report = find_duplicates(comp, tmp_path / "cache")
    assert time.perf_counter() - start < 10
    expected = [[i, 1000 + i] for i in range(15)] + [[100 + i, 1500 + i] for i in range(15)]
    assert report.train_groups == expected
    assert report.exact_train_images == 30
    assert report.train_test_pairs == [(200 + i, i) for i in range(5)]
    assert sum(compared) < 2000 * 1999 / 2 / 50, f"{sum(compared)} comparisons: close to all pairs"


def test_fingerprints_are_cached_and_threshold_is_checked(digits_on_disk):
    """A second search reads the cached fingerprints (no decode); a threshold outside 0..8 is a user error."""
    root, _, train, labels, test = digits_on_disk
    comp = file_comp(root, train, labels, test)
    first = find_duplicates(comp, root / "cache")
    assert len(list((root / "cache").glob("phash-*.npz"))) == 2
    assert not list((root / "cache").glob("*.npy"))  # the hash cache is not a decode cache
    again = find_duplicates(comp, root / "cache", threshold=2)
    assert again.threshold == 2 and first.train_groups == again.train_groups
    with pytest.raises(FoldwiseError, match="0..8"):
        find_duplicates(comp, root / "cache", threshold=9)


def add_train_copy(comp_dir: Path, source_row: int, new_id: str) -> None:
    """Copy a training image of a csv-layout competition under a new id with the same label."""
    df = pd.read_csv(comp_dir / "train.csv", dtype=str)
    shutil.copy(comp_dir / "train" / f"{df['id'][source_row]}.png", comp_dir / "train" / f"{new_id}.png")
    row = df.iloc[[source_row]].assign(id=new_id)
    pd.concat([df, row]).to_csv(comp_dir / "train.csv", index=False)


def test_cli_folds_groups_duplicates_and_records_them(tiny_comp, capsys):
    """`foldwise folds` finds a copied image, keeps the pair in one fold, and writes group column + sidecar counts."""
    root = tiny_comp.parents[1]
    add_train_copy(tiny_comp, 0, "zcopy")
    assert main(["--root", str(root), "folds", str(tiny_comp)]) == 0
    out = capsys.readouterr().out
    assert "1 group(s) of training images" in out and "train group of 2 (byte-identical" in out
    folds = pd.read_csv(root / "folds" / "tiny.csv", dtype={"id": str})
    assert list(folds.columns) == ["id", "label", "fold", "group"]
    pair = folds[folds["id"].isin(["ttrain_00000", "zcopy"])]
    assert pair["fold"].nunique() == 1 and pair["group"].nunique() == 1
    meta = json.loads((root / "folds" / "tiny.json").read_text())
    assert meta["method"] == "StratifiedGroupKFold(shuffle=True)"
    assert meta["duplicates"]["near_duplicate_threshold"] == 4
    assert meta["duplicates"]["train_duplicate_groups"] == 1 and meta["duplicates"]["train_byte_identical_images"] == 2
    assert main(["--root", str(root), "folds", str(tiny_comp), "--no-dedup", "--force"]) == 0
    assert (root / "folds" / "tiny.csv").read_text().startswith("id,label,fold\n")
    assert json.loads((root / "folds" / "tiny.json").read_text())["duplicates"] == {"checked": False}


def test_cli_folds_warns_about_test_images_like_training_images(tiny_comp, capsys):
    """A test image that is a training image's copy is a warning; without train duplicates the csv has no group."""
    root = tiny_comp.parents[1]
    comp = load_competition(tiny_comp)
    shutil.copy(comp.train_images[4], comp.test_images[0])
    assert main(["--root", str(root), "folds", str(tiny_comp), "--dup-threshold", "2"]) == 0
    out = capsys.readouterr().out
    assert "warning: 1 test image(s) look like training images" in out
    assert f"looks like train {comp.train_ids[4]}" in out
    assert (root / "folds" / "tiny.csv").read_text().startswith("id,label,fold\n")


def test_report_without_duplicate_search_reads_no_image(tiny_comp, monkeypatch):
    """With --no-dedup folds the report says duplicates were not checked, or counts exact copies from the cached
    fingerprints of an earlier search; it never re-reads the images for it."""
    from foldwise.cli import main
    from foldwise.data import content
    from foldwise.reporting.sections import duplicates_text

    root = tiny_comp.parents[1]
    ws, comp = Workspace(root), load_competition(tiny_comp)
    assert main(["--root", str(root), "folds", str(tiny_comp), "--no-dedup"]) == 0
    monkeypatch.setattr(content, "file_digest", lambda p: pytest.fail(f"read {p}"))
    assert "not checked" in duplicates_text(ws, comp)
    monkeypatch.undo()
    assert main(["--root", str(root), "folds", str(tiny_comp), "--force"]) == 0  # a search fills the cache
    assert main(["--root", str(root), "folds", str(tiny_comp), "--no-dedup", "--force"]) == 0
    monkeypatch.setattr(content, "file_digest", lambda p: pytest.fail(f"read {p}"))
    assert "exact content only, from cached content digests" in duplicates_text(ws, comp)


def test_a_chain_of_look_alikes_is_split_but_copies_stay_together():
    """120 hashes in a random walk of 2-bit steps link into one component at 4 bits: a chain (over 50 images), not a
    duplicate set. It is re-linked at lower thresholds; byte-identical rows inside it stay one group, and a small group
    of real near-duplicates elsewhere is kept at the requested threshold."""
    rng = np.random.default_rng(0)
    walk = [np.uint64(0x5A5A_5A5A_A5A5_A5A5)]
    for _ in range(119):
        i, j = rng.choice(64, size=2, replace=False)
        walk.append(walk[-1] ^ np.uint64((1 << int(i)) | (1 << int(j))))
    far = np.uint64(0x0123_4567_89AB_CDEF)
    small = [far, far ^ np.uint64(0b11), far ^ np.uint64(0b1111)]  # 2 and 4 bits apart: a real group of 3
    hashes = np.array(walk + small, dtype=np.uint64)
    content = [f"w{n}" for n in range(120)] + ["s0", "s1", "s2"]
    content[60] = content[10]  # rows 10 and 60: the same file under two names
    n = len(hashes)
    whole = link_duplicates(hashes, np.full(n, 50.0), content, n_train=n, threshold=0)
    assert whole.chains == ()  # at 0 bits there is nothing lower to try, and nothing chains here
    report = link_duplicates(hashes, np.full(n, 50.0), content, n_train=n, threshold=4)
    assert len(report.chains) == 1 and report.chains[0]["images"] == 120
    assert report.chains[0]["threshold"] < 4 and report.largest_group <= 50
    assert [10, 60] in report.train_groups  # copies are never split
    assert [120, 121, 122] in report.train_groups  # under the limit: untouched
    assert "a chain of 120 look-alikes" in report.summary()
    assert report.counts()["chains_split"] == list(report.chains)
    assert report.chains[0]["threshold"] in (0, 2)  # even steps: 3 bits would link what 2 does


def test_a_chain_splits_at_its_bridge_and_each_part_keeps_its_links():
    """Two tight clusters of 40 (2 bits from their centre) joined by one 4-bit bridge: 80 images over the limit of
    50 at 4 bits; at 2 bits the bridge breaks and each cluster stays one group, with its own near-duplicate links."""
    rng = np.random.default_rng(1)
    centres = [np.uint64(0x0F0F_0F0F_0F0F_0F0F), np.uint64(0x0F0F_0F0F_0F0F_0F0F) ^ np.uint64(0b1111 << 40)]
    hashes = []
    for centre in centres:
        hashes.append(centre)
        for _ in range(39):
            i, j = rng.choice(32, size=2, replace=False)  # bits 0-31: never the bridge's bits 40-43
            hashes.append(centre ^ np.uint64((1 << int(i)) | (1 << int(j))))
    hashes = np.array(hashes, dtype=np.uint64)
    n = len(hashes)
    report = link_duplicates(hashes, np.full(n, 50.0), [f"x{i}" for i in range(n)], n_train=n, threshold=4)
    assert report.train_groups == [list(range(40)), list(range(40, 80))]
    assert report.chains == ({"images": 80, "threshold": 2, "largest_part": 40},)


def test_a_chain_of_identical_hashes_is_not_called_split():
    """60 different files with one pHash: at 0 bits they still link, nothing splits, and no chain is reported."""
    hashes = np.full(60, np.uint64(0x3C3C_3C3C_C3C3_C3C3), dtype=np.uint64)
    report = link_duplicates(hashes, np.full(60, 50.0), [f"f{i}" for i in range(60)], n_train=60, threshold=4)
    assert report.train_groups == [list(range(60))] and report.chains == ()
