"""Repeated k-fold: one seeded split per repeat beside `fold`, runs numbered r * k + f, OOF logits averaged over the
repeats that cover every row, and the report's repeat-to-repeat spread."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from conftest import make_tiny_competition, tiny_recipe
from foldwise.blending.blend import load_oof
from foldwise.cli import main
from foldwise.data.folds import folds_csv_text, make_folds, read_folds, split_of, validate_folds
from foldwise.data.formats import load_competition
from foldwise.errors import FoldwiseError
from foldwise.fileio import save_npz
from foldwise.training.runs import fold_layout, fold_numbers, fold_rows, plan_run
from foldwise.workspace import Workspace


def test_each_repeat_is_its_own_stratified_split(tiny_comp):
    comp = load_competition(tiny_comp)
    df = make_folds(comp, k=5, seed=7, repeats=3)
    assert [c for c in df.columns if c.startswith("fold")] == ["fold", "fold_1", "fold_2"]
    for column in ("fold", "fold_1", "fold_2"):
        assert df[column].value_counts().tolist() == [20] * 5  # 10 per class: 2 of each class in every fold
        assert (df.groupby(column)["label"].nunique() == 10).all()
    assert not df["fold"].equals(df["fold_1"]) and not df["fold_1"].equals(df["fold_2"])
    np.testing.assert_array_equal(df["fold_1"], make_folds(comp, k=5, seed=8)["fold"])  # repeat r: seed + r
    single = make_folds(comp, k=5, seed=7)
    assert "fold_1" not in folds_csv_text(single)  # one repeat writes exactly the old id,label,fold file
    assert folds_csv_text(df).splitlines()[0] == "id,label,fold,fold_1,fold_2"


def test_broken_repeat_columns_are_refused(tiny_comp, tmp_path):
    comp = load_competition(tiny_comp)
    df = make_folds(comp, k=5, seed=7, repeats=3)
    with pytest.raises(FoldwiseError, match="fold_1, fold_2, ... without gaps"):
        validate_folds(df.drop(columns="fold_1"), comp, tmp_path / "f.csv")
    uneven = df.assign(fold_2=df["fold_2"].where(df["fold_2"] != 4, 0))
    with pytest.raises(FoldwiseError, match="every repeat needs the same k"):
        validate_folds(uneven, comp, tmp_path / "f.csv")
    # groups that repeat 0 keeps whole (its fold and label) but repeat 1 splits apart
    grouped = df.assign(group=df["fold"] * 100 + df["label"].astype("category").cat.codes)
    assert (grouped.groupby("group")["fold"].nunique() == 1).all()
    with pytest.raises(FoldwiseError, match=r"span several folds of fold_1\b"):
        validate_folds(grouped, comp, tmp_path / "f.csv")
    with pytest.raises(FoldwiseError, match="--repeats 20 with k=5"):
        make_folds(comp, k=5, repeats=20)


def test_global_fold_numbers_hold_out_the_repeats_rows(tiny_comp):
    root = tiny_comp.parents[1]
    assert main(["--root", str(root), "folds", str(tiny_comp), "--no-dedup", "--k", "5", "--repeats", "2"]) == 0
    comp, ws = load_competition(tiny_comp), Workspace(root)
    assert fold_layout(ws, comp) == (5, 2)
    assert fold_numbers(ws, comp, "all") == list(range(10))
    with pytest.raises(FoldwiseError, match="has no fold \\[10\\]"):
        fold_numbers(ws, comp, "10")
    df = read_folds(ws.folds_csv(comp.name), comp)
    assert split_of(df, 7) == ("fold_1", 2, 1)
    train, valid = fold_rows(plan_run(comp, tiny_recipe(), 7, ws))
    held = set(df["id"][df["fold_1"] == 2])
    assert {comp.train_ids[r] for r in valid} == held
    assert not held & {comp.train_ids[r] for r in train} and len(train) + len(valid) == 100


def write_oof(exp, fold: int, ids, logits, labels, repeat: int) -> None:
    extra = {"repeat": np.int64(repeat)} if repeat else {}
    save_npz(exp / f"fold{fold}" / "oof.npz", ids=np.array(ids), logits=logits, labels=labels, **extra)


def test_oof_is_the_mean_of_complete_repeats(tmp_path, caplog):
    rng = np.random.default_rng(0)
    ids, labels = np.array([f"i{n}" for n in range(6)]), np.arange(6) % 3
    first, second = rng.normal(size=(2, 6, 3)).astype(np.float32)
    exp = tmp_path / "exp"
    for fold, rows in enumerate([[0, 1, 2], [3, 4, 5]]):  # repeat 0: folds 0, 1
        write_oof(exp, fold, ids[rows], first[rows], labels[rows], 0)
    for fold, rows in zip((2, 3), [[0, 3, 5], [1, 2, 4]]):  # repeat 1: folds 2, 3 (another split)
        write_oof(exp, fold, ids[rows], second[rows], labels[rows], 1)
    oof = load_oof(exp)
    np.testing.assert_array_equal(oof.ids, ids)
    np.testing.assert_allclose(oof.logits, (first + second) / 2, rtol=1e-6)
    np.testing.assert_array_equal(oof.repeats[1], second)
    np.testing.assert_array_equal(oof.folds, [0, 0, 0, 1, 1, 1])  # repeat 0's folds
    write_oof(exp, 4, ids[[0, 1]], first[[0, 1]], labels[[0, 1]], 2)  # repeat 2 half trained: left out
    with caplog.at_level(logging.WARNING):
        partial = load_oof(exp)
    assert "repeat 2 covers 2 of 6 rows" in caplog.text
    np.testing.assert_array_equal(partial.logits, oof.logits)
    write_oof(exp, 5, ids[[0]], first[[0]], labels[[0]], 2)  # id i0 held out twice within repeat 2
    with pytest.raises(FoldwiseError, match=r"two folds' oof.npz \(repeat 2\)"):
        load_oof(exp)


def test_a_fold_left_from_other_folds_is_refused_not_averaged(tmp_path):
    """fold2 of an old REPEATS=2 split after the folds were rebuilt with one repeat: its repeat still covers every
    row, so averaging it in would go unnoticed; the folds' checksums tell, and both OOF and test loading refuse."""
    import yaml

    from foldwise.blending.submit import fold_average_logits

    ids, labels = np.array(["a", "b"]), np.array([0, 1])
    logits = np.zeros((2, 2), np.float32)
    exp = tmp_path / "exp"
    for fold, rows, repeat, sha in ((0, [0], 0, "new"), (1, [1], 0, "new"), (2, [0, 1], 1, "old")):
        write_oof(exp, fold, ids[rows], logits[rows], labels[rows], repeat)
        save_npz(exp / f"fold{fold}" / "test.npz", ids=np.array(["t"]), logits=np.zeros((1, 2), np.float32))
        (exp / f"fold{fold}" / "config.yaml").write_text(yaml.safe_dump({"folds_sha256": sha * 8}))
    with pytest.raises(FoldwiseError, match="fold2 on folds sha256 oldold"):
        load_oof(exp)
    with pytest.raises(FoldwiseError, match="different folds files"):
        fold_average_logits(exp, ("t",))
    (exp / "fold2" / "config.yaml").write_text(yaml.safe_dump({"folds_sha256": "new" * 8}))
    assert len(load_oof(exp).repeats) == 2


def test_repeated_run_end_to_end(tmp_path, capsys):
    """`foldwise run --k 2 --repeats 2`: four runs per recipe, a blend on the repeats' mean, the report's spread."""
    import yaml

    comp = make_tiny_competition(tmp_path / "input" / "tiny", per_class=6)
    for name in ("a", "b"):
        data = tiny_recipe(run={"seed": ord(name)}).to_dict()
        data.pop("name")
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(data))
    argv = ["--root", str(tmp_path), "run", str(comp), "--k", "2", "--repeats", "2", "--no-dedup"]
    assert main([*argv, "-c", str(tmp_path / "a.yaml"), "-c", str(tmp_path / "b.yaml")]) == 0
    out = tmp_path / "output" / "tiny"
    assert sorted(p.name for p in (out / "a").iterdir() if p.name.startswith("fold")) == [f"fold{i}" for i in range(4)]
    assert int(np.load(out / "a" / "fold3" / "oof.npz")["repeat"]) == 1
    assert "repeated 2 times (seeds 42..43): 4 runs per recipe" in capsys.readouterr().out
    report = (out / "blend" / "report.md").read_text()
    part = report[report.index("## Repeated k-fold") :].split("\n## ")[0]
    assert "| a |" in part and "| b |" in part and "repeat 1" in part
    submission = pd.read_csv(out / "submission.csv", dtype=str)
    assert len(submission) == 30
