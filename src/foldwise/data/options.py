"""`input/<comp>/foldwise.yaml`: what a user tells foldwise about a competition that its files do not say, shared by
every stage (the readers, folds and reports). Unknown keys and values are errors.

    cifar_labels: coarse      # CIFAR-100: the 20 superclasses instead of the 100 fine labels
    id_column: image_name     # train.csv: which column holds the image ids ...
    label_column: diagnosis   # ... and which the labels, when their names do not say so
    group_column: patient_id  # train.csv: images of one group stay in one fold (StratifiedGroupKFold)
    metric: roc_auc           # the leaderboard's metric (foldwise.metrics); --metric overrides it
"""

from __future__ import annotations

from pathlib import Path

import yaml

from foldwise.errors import FoldwiseError
from foldwise.metrics import metric

OPTIONS_FILE = "foldwise.yaml"  # optional, in the competition directory
CHOICES = {"cifar_labels": ("fine", "coarse")}  # key -> allowed values
NAMES = ("id_column", "label_column", "group_column", "metric")  # keys whose value is a name


def competition_options(root: Path) -> dict[str, str]:
    """Options from `<root>/foldwise.yaml` (empty when absent); unknown keys or values are errors."""
    path = Path(root) / OPTIONS_FILE
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise FoldwiseError(f"{path}: not readable YAML ({e}); fix or remove it.") from e
    known = [*CHOICES, *NAMES]
    if not isinstance(data, dict):
        raise FoldwiseError(f"{path}: expected `key: value` lines (known keys: {', '.join(known)}).")
    for key, value in data.items():
        if key not in known:
            raise FoldwiseError(f"{path}: unknown key {key!r}; known keys: {', '.join(known)}.")
        if key in CHOICES and value not in CHOICES[key]:
            raise FoldwiseError(f"{path}: {key}: {value!r} is not one of {', '.join(CHOICES[key])}.")
        if key in NAMES and (not isinstance(value, str) or not value.strip()):
            raise FoldwiseError(f"{path}: {key}: give a name, got {value!r}.")
        if key == "metric":
            try:
                metric(value)
            except FoldwiseError as e:
                raise FoldwiseError(f"{path}: {e}") from e
    return {str(k): str(v) for k, v in data.items()}
