"""Unit tests for foldwise.blending.submit: submission validation, scoring, and make_submission from fake artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from foldwise.blending.ensemble import FittedBlend
from foldwise.blending.formats import validate_submission
from foldwise.blending.submit import make_submission, score_submission
from foldwise.data.formats import load_competition
from foldwise.errors import FoldwiseError
from foldwise.workspace import Workspace

CLASSES = ["cat", "dog"]


@pytest.fixture
def sample() -> pd.DataFrame:
    """A three-row sample submission."""
    return pd.DataFrame({"id": ["a", "b", "c"], "label": ["cat", "cat", "cat"]})


def frame(ids, labels=None, **extra) -> pd.DataFrame:
    return pd.DataFrame({"id": ids, "label": labels or ["dog"] * len(ids), **extra})


def test_validate_submission_accepts_correct_frame(sample):
    """A frame with the sample's columns, ids, order and known labels passes."""
    validate_submission(frame(["a", "b", "c"], ["dog", "cat", "dog"]), sample, CLASSES)


def test_validate_submission_compares_ids_as_text():
    """Integer ids in the frame match the sample's text ids (ids compared as strings)."""
    sample = pd.DataFrame({"id": ["1", "2"], "label": ["cat", "cat"]})
    validate_submission(pd.DataFrame({"id": [1, 2], "label": ["dog", "cat"]}), sample, CLASSES)


def test_validate_submission_missing_id(sample):
    """A missing id is reported by name."""
    with pytest.raises(FoldwiseError, match=r"1 id\(s\) missing \(e\.g\. \['c'\]\), 0 unexpected"):
        validate_submission(frame(["a", "b"]), sample, CLASSES, where="sub.csv")


def test_validate_submission_extra_id(sample):
    """An id the sample does not list is reported as unexpected."""
    with pytest.raises(FoldwiseError, match=r"0 id\(s\) missing .*1 unexpected \(e\.g\. \['zz'\]\)"):
        validate_submission(frame(["a", "b", "c", "zz"]), sample, CLASSES)


def test_validate_submission_wrong_order(sample):
    """Right ids in another order are rejected, naming the first differing row."""
    with pytest.raises(FoldwiseError, match=r"not in the sample's order \(row 1: 'c', expected 'b'\)"):
        validate_submission(frame(["a", "c", "b"]), sample, CLASSES)


def test_validate_submission_duplicated_id(sample):
    """A duplicated id (same id set, more rows) is rejected by the row count."""
    with pytest.raises(FoldwiseError, match="4 rows but the sample has 3"):
        validate_submission(frame(["a", "b", "c", "a"]), sample, CLASSES)


def test_validate_submission_extra_column(sample):
    """An extra column (e.g. a confidence) is rejected, listing both column sets."""
    with pytest.raises(FoldwiseError, match=r"columns \['id', 'label', 'score'\] differ from the sample's"):
        validate_submission(frame(["a", "b", "c"], score=[0.1, 0.2, 0.3]), sample, CLASSES)


def test_validate_submission_renamed_column(sample):
    """A renamed column (case counts) is rejected."""
    df = frame(["a", "b", "c"]).rename(columns={"label": "Label"})
    with pytest.raises(FoldwiseError, match=r"columns \['id', 'Label'\] differ from the sample's \['id', 'label'\]"):
        validate_submission(df, sample, CLASSES)


def test_validate_submission_unknown_label(sample):
    """A label that is not a class of the competition is rejected, naming it."""
    with pytest.raises(FoldwiseError, match=r"labels \['cow'\] are not classes"):
        validate_submission(frame(["a", "b", "c"], ["cat", "cow", "dog"]), sample, CLASSES)


def write_csv(path: Path, rows: list[tuple[str, str]], header=("id", "label")) -> Path:
    path.write_text("\n".join([",".join(header), *(f"{i},{lab}" for i, lab in rows)]) + "\n")
    return path


SOLUTION = [("007", "cat"), ("008", "dog"), ("009", "dog"), ("010", "cat")]


def test_score_submission_perfect(tmp_path):
    """A submission equal to the key (in any row order, with other column names) scores accuracy 1.0."""
    sol = write_csv(tmp_path / "solution.csv", SOLUTION)
    sub = write_csv(tmp_path / "sub.csv", SOLUTION[::-1], header=("image_id", "class"))
    expected = {"metric": "accuracy", "score": 1.0, "accuracy": 1.0, "rows": 4, "correct": 4}
    assert score_submission(sub, sol) == expected


def test_score_submission_partly_wrong(tmp_path):
    """One wrong label out of four scores 0.75 (matched by id, not by row position)."""
    sol = write_csv(tmp_path / "solution.csv", SOLUTION)
    rows = [("010", "cat"), ("007", "dog"), ("008", "dog"), ("009", "dog")]
    result = score_submission(write_csv(tmp_path / "sub.csv", rows), sol)
    assert result == {"metric": "accuracy", "score": 0.75, "accuracy": 0.75, "rows": 4, "correct": 3}


def test_score_submission_missing_ids_raise(tmp_path):
    """A submission lacking ids of the key raises, naming a missing id (ids compared as text: 7 is not 007)."""
    sol = write_csv(tmp_path / "solution.csv", SOLUTION)
    sub = write_csv(tmp_path / "sub.csv", [("7", "cat"), ("008", "dog"), ("009", "dog"), ("010", "cat")])
    with pytest.raises(FoldwiseError, match=r"1 ids of .* are missing \(e\.g\. \['007'\]\)"):
        score_submission(sub, sol)
    short = write_csv(tmp_path / "short.csv", SOLUTION[:2])
    with pytest.raises(FoldwiseError, match="2 ids of"):
        score_submission(short, sol)


def test_score_submission_one_column_submission_raises(tmp_path):
    """A submission without a label column gives a FoldwiseError, not a pandas error."""
    sol = write_csv(tmp_path / "solution.csv", SOLUTION)
    sub = tmp_path / "sub.csv"
    sub.write_text("id\n007\n008\n009\n010\n")
    with pytest.raises(FoldwiseError, match="needs an id and a label column"):
        score_submission(sub, sol)


def test_score_submission_one_column_solution_raises_foldwise_error(tmp_path):
    """A solution key without a label column gives a FoldwiseError naming it, not an IndexError."""
    sol = tmp_path / "solution.csv"
    sol.write_text("id\n007\n008\n")
    sub = write_csv(tmp_path / "sub.csv", SOLUTION[:2])
    with pytest.raises(FoldwiseError, match="needs an id and a label column"):
        score_submission(sub, sol)


# ---- make_submission from hand-written artifacts (no training) ----


@pytest.fixture
def setup(tiny_comp, tmp_path):
    """Workspace at tmp_path and the tiny competition with its sample submission in reversed (non-sorted) order."""
    sample = tiny_comp / "sample_submission.csv"
    df = pd.read_csv(sample, dtype=str)
    df.iloc[::-1].to_csv(sample, index=False)
    return Workspace(tmp_path), load_competition(tiny_comp)


def one_hot_logits(classes: np.ndarray, scale: float = 10.0, n_classes: int = 10) -> np.ndarray:
    logits = np.zeros((len(classes), n_classes), dtype=np.float32)
    logits[np.arange(len(classes)), classes] = scale
    return logits


def write_npz(path: Path, ids, logits: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, ids=np.array(ids), logits=logits.astype(np.float32))


def write_blend(ws: Workspace, comp, models: list[str], method: str = "mean_probability") -> None:
    out = ws.blend_dir(comp.name)
    out.mkdir(parents=True, exist_ok=True)
    fitted = FittedBlend(method=method, models=tuple(models), temperatures=(1.0,) * len(models))
    choice = {"blend": fitted.to_dict(), "classes": list(comp.classes), "candidates": [], "inputs": {}}
    (out / "blend.json").write_text(json.dumps(choice))


def test_make_submission_matches_sample_columns_ids_order(setup):
    """make_submission writes the sample's header, ids in the sample's order, and the fold-averaged argmax labels."""
    ws, comp = setup
    n = len(comp.test_ids)
    want = np.arange(n) % 10
    write_npz(ws.run_dir(comp.name, "cnn", 0) / "test.npz", comp.test_ids, one_hot_logits(want, 5.0))
    write_npz(ws.run_dir(comp.name, "cnn", 1) / "test.npz", comp.test_ids, one_hot_logits((want + 1) % 10, 3.0))
    write_blend(ws, comp, ["cnn"])
    path, info = make_submission(comp, ws)
    assert path == ws.submission_csv(comp.name)
    sub = pd.read_csv(path, dtype=str, keep_default_na=False)
    sample = pd.read_csv(comp.root / "sample_submission.csv", dtype=str)
    assert list(sub.columns) == list(sample.columns)
    assert sub["id"].tolist() == sample["id"].tolist()
    assert sub["id"].tolist() != sorted(sub["id"]), "fixture should make the sample order non-sorted"
    assert sub["label"].tolist() == [comp.classes[c] for c in want]
    assert info["sources"] == {"cnn": "mean logits of 2 fold models"}
    assert info["rows"] == n


def test_make_submission_blends_two_experiments(setup):
    """mean_probability over two experiments: the confident model wins where the two disagree."""
    ws, comp = setup
    n = len(comp.test_ids)
    a, b = np.arange(n) % 10, (np.arange(n) + 5) % 10
    confident_a = np.arange(n) % 2 == 0
    write_npz(ws.run_dir(comp.name, "a", 0) / "test.npz", comp.test_ids,
              one_hot_logits(a, 1.0) + one_hot_logits(a, 8.0) * confident_a[:, None])  # fmt: skip
    write_npz(ws.run_dir(comp.name, "b", 0) / "test.npz", comp.test_ids,
              one_hot_logits(b, 1.0) + one_hot_logits(b, 8.0) * ~confident_a[:, None])  # fmt: skip
    write_blend(ws, comp, ["a", "b"])
    path, _ = make_submission(comp, ws)
    sub = pd.read_csv(path, dtype=str)
    assert sub["label"].tolist() == [comp.classes[x] for x in np.where(confident_a, a, b)]


def test_make_submission_prefers_full_retrain(setup):
    """When full/test.npz exists it is used instead of the fold average (the two give different labels)."""
    ws, comp = setup
    n = len(comp.test_ids)
    fold_pred, full_pred = np.arange(n) % 10, (np.arange(n) + 3) % 10
    for fold in (0, 1):
        write_npz(ws.run_dir(comp.name, "cnn", fold) / "test.npz", comp.test_ids, one_hot_logits(fold_pred))
    write_npz(ws.run_dir(comp.name, "cnn", None) / "test.npz", comp.test_ids, one_hot_logits(full_pred, 2.0))
    write_blend(ws, comp, ["cnn"])
    path, info = make_submission(comp, ws)
    sub = pd.read_csv(path, dtype=str)
    assert sub["label"].tolist() == [comp.classes[c] for c in full_pred]
    assert info["sources"] == {"cnn": "full retrain"}


def test_make_submission_wrong_test_ids_keeps_old_submission(setup):
    """Test logits for other ids raise FoldwiseError and leave an existing submission.csv byte-unchanged."""
    ws, comp = setup
    n = len(comp.test_ids)
    write_npz(ws.run_dir(comp.name, "cnn", 0) / "test.npz", comp.test_ids, one_hot_logits(np.zeros(n, int)))
    write_npz(ws.run_dir(comp.name, "cnn", 1) / "test.npz", comp.test_ids[::-1], one_hot_logits(np.zeros(n, int)))
    write_blend(ws, comp, ["cnn"])
    old = ws.submission_csv(comp.name)
    old.write_bytes(b"id,label\nprevious,1\n")
    with pytest.raises(FoldwiseError, match="test ids differ") as info:
        make_submission(comp, ws)
    assert "fold1" in str(info.value)
    assert old.read_bytes() == b"id,label\nprevious,1\n"
    assert [p.name for p in old.parent.iterdir() if p.is_file()] == ["submission.csv"]


def test_make_submission_rejects_blend_for_other_classes(setup):
    """A blend.json made for other classes is refused before anything is written."""
    ws, comp = setup
    write_npz(ws.run_dir(comp.name, "cnn", 0) / "test.npz", comp.test_ids, one_hot_logits(np.zeros(30, int)))
    write_blend(ws, comp, ["cnn"])
    blend = ws.blend_dir(comp.name) / "blend.json"
    choice = json.loads(blend.read_text())
    blend.write_text(json.dumps({**choice, "classes": choice["classes"][::-1]}))
    with pytest.raises(FoldwiseError, match="other data"):
        make_submission(comp, ws)
    assert not ws.submission_csv(comp.name).exists()


def test_probability_submission_writes_calibrated_rows_that_sum_to_one(tiny_comp, tmp_path):
    """A sample with one column per class (Tiny ImageNet style class_000...) gets softmax rows, columns by position."""
    sample = pd.read_csv(tiny_comp / "sample_submission.csv", dtype=str)
    columns = [f"class_{k:03d}" for k in range(10)]
    pd.DataFrame({"id": sample["id"], **{c: "0.1" for c in columns}}).to_csv(tiny_comp / "sample_submission.csv",
                                                                             index=False)  # fmt: skip
    ws, comp = Workspace(tmp_path), load_competition(tiny_comp)
    assert comp.submission.wants_probabilities and comp.submission.probability_columns == tuple(columns)
    n = len(comp.test_ids)
    want = np.arange(n) % 10
    write_npz(ws.run_dir(comp.name, "cnn", 0) / "test.npz", comp.test_ids, one_hot_logits(want, 4.0))
    write_blend(ws, comp, ["cnn"], method="single")
    path, _ = make_submission(comp, ws)
    sub = pd.read_csv(path)
    assert list(sub.columns) == ["id", *columns]
    probs = sub[columns].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    assert probs.argmax(1).tolist() == want.tolist()
    assert 0.5 < probs.max() < 1.0  # softmax of logit 4 vs 0: real probabilities, not one-hot or 2**logit


def test_probability_validation_rejects_rows_not_summing_to_one():
    """Probability submissions must be finite, within [0, 1] and sum to 1 per row."""
    sample = pd.DataFrame({"id": ["a", "b"], "p0": ["0.5", "0.5"], "p1": ["0.5", "0.5"]})
    good = pd.DataFrame({"id": ["a", "b"], "p0": [0.2, 0.9], "p1": [0.8, 0.1]})
    validate_submission(good, sample, ["0", "1"], kind="probabilities")
    with pytest.raises(FoldwiseError, match="sum to 1"):
        validate_submission(good.assign(p1=[0.8, 0.3]), sample, ["0", "1"], kind="probabilities")
    with pytest.raises(FoldwiseError, match="within"):
        validate_submission(good.assign(p0=[-0.2, 0.9], p1=[1.2, 0.1]), sample, ["0", "1"], kind="probabilities")


def test_make_submission_without_blend_or_logits(setup):
    """Missing blend.json, or a blended experiment with no test.npz, raise FoldwiseError naming what to run."""
    ws, comp = setup
    with pytest.raises(FoldwiseError, match="blend.json: missing"):
        make_submission(comp, ws)
    write_blend(ws, comp, ["ghost"])
    with pytest.raises(FoldwiseError, match="ghost: no full/test.npz"):
        make_submission(comp, ws)
