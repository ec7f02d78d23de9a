"""Predict a finished run's test images again from its model.pt: for when only the test images changed.

Nothing the model learned from changed (recipe, folds, training pixels), so retraining would reproduce the same
weights; predicting the new test images takes seconds. test.npz and config.yaml's test fingerprint are rewritten;
model.pt is left as it is.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import numpy as np
import torch
import yaml

from foldwise.data.cache import cached_images
from foldwise.fileio import save_npz, write_text_atomic
from foldwise.training import features
from foldwise.training.device import resolve_device
from foldwise.training.engine import predict_logits
from foldwise.training.inputs import CachedFeatures, Inputs, ResidentImages, StreamedImages
from foldwise.training.models import create_model
from foldwise.training.runs import TEST_PIXELS, RunPlan
from foldwise.training.stream import choose_pipeline

log = logging.getLogger(__name__)


def load_trained(plan: RunPlan, device: torch.device) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """(the network with model.pt's weights on `device`, mean, std its input was normalized with)."""
    state = torch.load(plan.run_dir / "model.pt", map_location="cpu", weights_only=False)
    model = create_model(plan.recipe.model, len(plan.comp.classes), load_weights=False)
    model.load_state_dict(state["state_dict"])
    model = model.to(device)
    if plan.recipe.run.channels_last:
        model = model.to(memory_format=torch.channels_last)
    mean, std = (torch.tensor(state[k], device=device).view(1, 3, 1, 1) for k in ("mean", "std"))
    return model.eval(), mean, std


def as_trained(plan: RunPlan) -> RunPlan:
    """The plan with the numeric format the run trained in (config.yaml records what 'auto' resolved to)."""
    meta = yaml.safe_load((plan.run_dir / "config.yaml").read_text())
    run = plan.recipe.run
    formats = {"bf16": bool(meta.get("bf16", False)), "channels_last": meta.get("channels_last", run.channels_last)}
    return replace(plan, recipe=replace(plan.recipe, run=replace(run, **formats)))


def test_logits(plan: RunPlan, device: torch.device) -> np.ndarray:
    """The recipe's test logits from model.pt: on the pixels with its TTA, or its classifier on fresh features."""
    plan = as_trained(plan)
    recipe, bf16 = plan.recipe, plan.recipe.run.bf16
    model, mean, std = load_trained(plan, device)
    images = cached_images(plan.comp.test_images, recipe.data.image_size, plan.cache_dir, "test")
    classes = len(plan.comp.classes)
    if recipe.model.cache_features:  # as trained: the classifier on TTA-averaged backbone features
        vectors = features.extract(model, images, mean, std, recipe, device, bf16, "features test")
        inputs = CachedFeatures(torch.from_numpy(vectors), device)
        head = features.head_recipe(recipe).data
        return predict_logits(model.get_classifier(), inputs, None, head, bf16, classes, desc="test")
    inputs: Inputs
    if choose_pipeline(recipe.data.pipeline, len(images), recipe.data.image_size, device) == "stream":
        inputs = StreamedImages(images, mean, std, recipe.run.channels_last, recipe.data)
    else:
        inputs = ResidentImages(torch.from_numpy(images).to(device), mean, std, recipe.run.channels_last)
    return predict_logits(model, inputs, None, recipe.data, bf16, classes, desc="test")


def predict_again(plan: RunPlan) -> None:
    """Rewrite test.npz from model.pt for the current test images, and record their fingerprint in config.yaml."""
    start = time.perf_counter()
    logits = test_logits(plan, resolve_device(plan.recipe.run.device))
    save_npz(plan.run_dir / "test.npz", ids=np.array(plan.comp.test_ids), logits=logits)
    meta = yaml.safe_load((plan.run_dir / "config.yaml").read_text())
    meta[TEST_PIXELS] = plan.meta[TEST_PIXELS]
    meta["test_predicted_again"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_text_atomic(plan.run_dir / "config.yaml", yaml.safe_dump(meta, sort_keys=False))
    log.info(
        "%s: predicted %d test images again with model.pt in %.1f s",
        plan.name,
        len(logits),
        time.perf_counter() - start,
    )
