"""Property: any train.csv / sample_submission.csv variant gives the competition it means, or one exit-2 line naming
the file. Never a wrong reading, never a traceback.

Variants: encodings (UTF-8, UTF-8 with BOM, Latin-1, UTF-16), CRLF line ends, quoting every field, an extra
metadata column, a pandas index column, id and label column names (known, unknown, first or not), id forms
(stem, file name, path relative to the competition, zero-padded numbers), label types (integers, names, Unicode),
and a sample that asks for a label or for one probability column per class, or no sample at all.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from foldwise.data.formats import load_competition
from foldwise.errors import FoldwiseError

LABEL_SETS = {
    "ints": ["0", "1", "2", "10"],
    "names": ["cat", "dog", "eel", "fox"],
    "unicode": ["café", "naïve", "ß", "ø"],
}
ID_FORMS = {"stem": "{}", "file": "{}.png", "path": "train/{}.png", "dotted": "./train/{}.png"}

variants = st.fixed_dictionaries(
    {
        "labels": st.sampled_from(sorted(LABEL_SETS)),
        "classes": st.integers(2, 4),
        "per_class": st.integers(1, 3),
        "numeric_ids": st.booleans(),
        "id_form": st.sampled_from(sorted(ID_FORMS)),
        "id_column": st.sampled_from(["id", "image_id", "Filename", "file_ref"]),
        "label_column": st.sampled_from(["label", "target", "Class", "y"]),
        "extra": st.sampled_from([None, "first", "last"]),
        "index_column": st.booleans(),
        "encoding": st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]),
        "crlf": st.booleans(),
        "quote_all": st.booleans(),
        "sample": st.sampled_from([None, "label", "probabilities"]),
    }
)


def csv_bytes(header: list[str], rows: list[list[str]], v: dict) -> bytes:
    """The csv as the variant writes it (quoting, line ends, encoding; characters Latin-1 lacks make it fail)."""
    buffer = io.StringIO()
    writer = csv.writer(
        buffer,
        lineterminator="\r\n" if v["crlf"] else "\n",
        quoting=csv.QUOTE_ALL if v["quote_all"] else csv.QUOTE_MINIMAL,
    )
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode(v["encoding"], errors="replace")


def train_table(v: dict, ids: list[str], labels: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of train.csv for the variant."""
    header, rows = [v["id_column"], v["label_column"]], [[i, label] for i, label in zip(ids, labels)]
    if v["extra"]:
        position = 0 if v["extra"] == "first" else 2
        header.insert(position, "width")
        for row in rows:
            row.insert(position, "28")
    if v["index_column"]:
        header.insert(0, "")
        for n, row in enumerate(rows):
            row.insert(0, str(n))
    return header, rows


def write_competition(root: Path, v: dict) -> dict:
    """Images and csvs for the variant; returns what a correct reading must give."""
    names = LABEL_SETS[v["labels"]][: v["classes"]]
    labels = [name for name in names for _ in range(v["per_class"] + 1)]
    stems = [f"{k:03d}" if v["numeric_ids"] else f"img_{k}" for k in range(len(labels))]
    test_stems = [f"{k + 500:03d}" if v["numeric_ids"] else f"tst_{k}" for k in range(3)]
    for split, split_stems in (("train", stems), ("test", test_stems)):
        (root / split).mkdir(parents=True)
        for k, stem in enumerate(split_stems):
            Image.fromarray(np.full((4, 4), 40 * k % 256, dtype=np.uint8)).save(root / split / f"{stem}.png")
    ids = [ID_FORMS[v["id_form"]].format(s) for s in stems]
    (root / "train.csv").write_bytes(csv_bytes(*train_table(v, ids, labels), v))
    if v["sample"] == "label":
        (root / "sample_submission.csv").write_bytes(csv_bytes(["id", "label"], [[s, names[0]] for s in test_stems], v))
    elif v["sample"] == "probabilities":
        rows = [[s, *["0.5"] * len(names)] for s in test_stems]
        (root / "sample_submission.csv").write_bytes(csv_bytes(["id", *names], rows, v))
    return {"ids": ids, "files": [f"{s}.png" for s in stems], "labels": labels, "test_ids": test_stems}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(variants)
def test_csv_variant_is_read_right_or_refused_in_one_line(v):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "comp"
        expected = write_competition(root, v)
        try:
            comp = load_competition(root)
        except FoldwiseError as e:
            message = str(e)
            assert "\n" not in message, message
            assert any(name in message for name in ("train.csv", "sample_submission.csv", str(root))), message
            event("refused: " + re.sub(r"\S*/\S*", "<path>", message.split(": ", 1)[1])[:40])
            return
        event("read")
        assert list(comp.train_ids) == expected["ids"]
        assert [p.name for p in comp.train_images] == expected["files"]
        assert [comp.classes[i] for i in comp.train_labels] == expected["labels"]
        assert sorted(comp.test_ids) == sorted(expected["test_ids"])
        if v["sample"] == "probabilities":
            assert comp.submission.probability_columns == tuple(LABEL_SETS[v["labels"]][: v["classes"]])
