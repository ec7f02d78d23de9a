"""Unit tests for foldwise.config: YAML recipes, strict keys, and section.key=value overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from foldwise.config import Recipe, apply_overrides, load_recipe, recipe_from_dict
from foldwise.errors import FoldwiseError

CONFIGS = sorted((Path(__file__).parents[1] / "src" / "foldwise" / "recipes").glob("*.yaml"))

RECIPE = """\
model:
  name: foldwise_cnn
  kwargs: {widths: [8, 16]}
data:
  image_size: 16
  hflip: false
optim:
  lr: 0.05
  epochs: 3
run:
  seed: 7
"""


@pytest.fixture
def recipe_path(tmp_path: Path) -> Path:
    path = tmp_path / "my-exp.yaml"
    path.write_text(RECIPE)
    return path


def test_load_recipe_reads_values_and_names_experiment_after_file(recipe_path):
    """load_recipe fills the dataclasses from YAML, keeps defaults for the rest, and names the experiment by stem."""
    r = load_recipe(recipe_path)
    assert isinstance(r, Recipe)
    assert r.name == "my-exp"
    assert r.model.name == "foldwise_cnn" and r.model.kwargs == {"widths": [8, 16]}
    assert r.data.image_size == 16 and r.data.hflip is False
    assert r.optim.lr == 0.05 and r.optim.epochs == 3
    assert r.run.seed == 7
    assert r.optim.name == "sgd" and r.data.batch_size == 256  # defaults
    assert r.to_dict()["optim"]["lr"] == 0.05


def test_name_key_overrides_file_stem(tmp_path):
    """An explicit `name:` in the YAML wins over the file stem."""
    path = tmp_path / "file.yaml"
    path.write_text("name: other\noptim:\n  lr: 0.1\n")
    assert load_recipe(path).name == "other"


def test_empty_recipe_file_gives_defaults(tmp_path):
    """An empty YAML file is a valid recipe made of defaults."""
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_recipe(path) == Recipe(name="empty")


def test_empty_section_gives_defaults(tmp_path):
    """A section written with no keys (`run:` -> None) means its defaults."""
    path = tmp_path / "e.yaml"
    path.write_text("run:\noptim:\n  lr: 0.2\n")
    r = load_recipe(path)
    assert r.run == Recipe(name="x").run and r.optim.lr == 0.2


def test_unknown_key_in_section_names_file_section_and_key(tmp_path):
    """A typo'd key inside a section raises FoldwiseError naming the file, the section and the key."""
    path = tmp_path / "typo.yaml"
    path.write_text("optim:\n  lr: 0.1\n  learning_rate: 0.2\n")
    with pytest.raises(FoldwiseError) as info:
        load_recipe(path)
    msg = str(info.value)
    assert str(path) in msg and "[optim]" in msg and "'learning_rate'" in msg
    assert "valid keys" in msg and "'lr'" in msg


def test_unknown_section_names_file_and_section(tmp_path):
    """An unknown top-level section raises FoldwiseError naming the file and the section."""
    path = tmp_path / "sec.yaml"
    path.write_text("trainer:\n  epochs: 3\n")
    with pytest.raises(FoldwiseError) as info:
        load_recipe(path)
    msg = str(info.value)
    assert str(path) in msg and "unknown section(s) ['trainer']" in msg


def test_non_mapping_section_raises(tmp_path):
    """A section that is not a mapping (e.g. `optim: 0.1`) raises FoldwiseError."""
    path = tmp_path / "bad.yaml"
    path.write_text("optim: 0.1\n")
    with pytest.raises(FoldwiseError, match="section 'optim' must be a mapping"):
        load_recipe(path)


def test_missing_and_invalid_yaml_files(tmp_path):
    """A missing recipe file and invalid YAML both raise FoldwiseError naming the file."""
    with pytest.raises(FoldwiseError, match="no such recipe"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [unclosed\n")
    with pytest.raises(FoldwiseError, match=r"bad\.yaml: invalid YAML"):
        load_recipe(bad)


def test_overrides_change_values_with_yaml_typing(recipe_path):
    """--set overrides replace values, parsed as YAML (float, int, bool, string, list/dict)."""
    r = load_recipe(
        recipe_path,
        ["optim.lr=0.5", "optim.epochs=12", "data.hflip=true", "optim.name=adamw", "model.kwargs={widths: [4]}",
         "run.bf16=false", "optim.weight_decay=5.0e-4"],
    )  # fmt: skip
    assert r.optim.lr == 0.5 and isinstance(r.optim.lr, float)
    assert r.optim.epochs == 12 and isinstance(r.optim.epochs, int)
    assert r.data.hflip is True
    assert r.optim.name == "adamw"
    assert r.model.kwargs == {"widths": [4]}
    assert r.run.bf16 is False
    assert r.optim.weight_decay == pytest.approx(5e-4) and isinstance(r.optim.weight_decay, float)
    assert r.run.seed == 7 and r.data.image_size == 16  # untouched values stay


def test_overrides_later_wins_and_do_not_mutate_input():
    """apply_overrides works on a copy; the last override of a key wins; new sections are created."""
    data = {"optim": {"lr": 0.1}}
    out = apply_overrides(data, ["optim.lr=0.2", "optim.lr=0.3", "run.seed=5"], "x")
    assert out == {"optim": {"lr": 0.3}, "run": {"seed": 5}}
    assert data == {"optim": {"lr": 0.1}}


def test_override_value_with_equals_sign():
    """Only the first '=' separates key from value."""
    assert apply_overrides({}, ["model.name=a=b"], "x") == {"model": {"name": "a=b"}}


@pytest.mark.parametrize("bad", ["optim.lr", "lr=0.5", "optim.lr0.5", "=0.5"])
def test_malformed_override_raises(bad):
    """An override without section.key=value shape raises FoldwiseError showing the expected form."""
    with pytest.raises(FoldwiseError, match="section.key=value"):
        apply_overrides({}, [bad], "x")
    with pytest.raises(FoldwiseError):
        load_recipe("cpu-cnn", [bad])


def test_override_of_unknown_key_or_section_raises(recipe_path):
    """Overrides go through the same strict validation: unknown keys and sections are named."""
    with pytest.raises(FoldwiseError, match=r"\[optim\]: unknown key\(s\) \['lrr'\]"):
        load_recipe(recipe_path, ["optim.lrr=0.5"])
    with pytest.raises(FoldwiseError, match=r"unknown section\(s\) \['optimizer'\]"):
        load_recipe(recipe_path, ["optimizer.lr=0.5"])


def test_override_into_empty_yaml_section(tmp_path):
    """`--set run.seed=3` works when the recipe has an empty `run:` section (which loads fine without overrides)."""
    path = tmp_path / "e.yaml"
    path.write_text("run:\n")
    assert load_recipe(path, ["run.seed=3"]).run.seed == 3


def test_override_with_invalid_yaml_value_raises_foldwise_error():
    """A malformed override value (`optim.lr=[0.1`) raises FoldwiseError, not a raw yaml ParserError."""
    with pytest.raises(FoldwiseError):
        apply_overrides({}, ["optim.lr=[0.1"], "x")


def test_float_field_written_without_dot_is_numeric_or_rejected(tmp_path):
    """`lr: 1e-3` / `--set optim.lr=1e-3` yields the float 0.001 or a FoldwiseError, never a string lr."""
    path = tmp_path / "sci.yaml"
    path.write_text("optim:\n  lr: 1e-3\n")
    for overrides in ([], ["optim.lr=1e-3"]):
        try:
            r = load_recipe(path, overrides)
        except FoldwiseError:
            continue
        assert isinstance(r.optim.lr, float) and r.optim.lr == pytest.approx(1e-3)


def test_recipe_from_dict_defaults_and_name():
    """recipe_from_dict accepts None / missing sections and uses the given name."""
    assert recipe_from_dict(None, name="n") == Recipe(name="n")
    assert recipe_from_dict({"model": None}, name="n").model == Recipe(name="n").model


def test_recipes_directory_is_not_empty():
    """The packaged recipes/ folder has recipes to test (guards the glob below silently matching nothing)."""
    assert len(CONFIGS) >= 2


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_loads(path):
    """Every packaged recipes/*.yaml loads without unknown keys, named after its file."""
    r = load_recipe(path)
    assert r.name == path.stem
    assert r.optim.epochs > 0 and r.data.image_size >= 0  # 0 = the images' own size
