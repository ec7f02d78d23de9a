"""Train one fold (or the full retrain) and write its artifacts: history.csv, config.yaml, oof.npz, test.npz, model.pt.

foldwise train input/digits -c configs/cpu-cnn.yaml --fold all
foldwise train input/digits -c configs/cpu-cnn.yaml --full

Read top to bottom: `train_run` -> `execute` = `prepare` (rows, images, model, Trainer) -> `fit` (epochs and
checkpoints) -> `finish` (OOF and test logits, artifacts, model.pt).
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import yaml
from sklearn.model_selection import train_test_split

from foldwise.config import Recipe
from foldwise.data.cache import cached_images
from foldwise.data.competition import Competition
from foldwise.errors import FoldwiseError
from foldwise.fileio import save_npz, write_atomic, write_text_atomic
from foldwise.metrics import metric
from foldwise.training import checkpoint, features
from foldwise.training.augment import to_model_input
from foldwise.training.device import resolve_device, set_deterministic
from foldwise.training.distributed import init_distributed, local_device
from foldwise.training.engine import BN_RECALIBRATION_IMAGES, Trainer, TrainingSet
from foldwise.training.fit import Run, fit, score_logits, valid_labels
from foldwise.training.inputs import CachedFeatures, Inputs, ResidentImages, StreamedImages
from foldwise.training.lock import claim
from foldwise.training.models import create_model, normalization
from foldwise.training.predict import predict_again
from foldwise.training.probe import resolved
from foldwise.training.runs import INIT_FROM, TEST_PIXELS, RunPlan, fold_rows, full_epochs, plan_run, repeat_of
from foldwise.training.stream import choose_pipeline
from foldwise.training.weights import resolve_weights_file
from foldwise.workspace import Workspace

log = logging.getLogger(__name__)
WHITENING_IMAGES = 5000  # training-fold images that fit the speed net's whitening stem


def train_run(
    comp: Competition,
    recipe: Recipe,
    fold: int | None,
    ws: Workspace,
    force: bool = False,
    warm_from: int | None = None,
) -> Path:
    """Train one fold (fold=None: all labeled data, from fold `warm_from`'s weights when given) and write its
    artifacts; skip when finished, resume when killed."""
    plan = plan_run(comp, recipe, fold, ws, warm_from)
    with claim(plan):
        status = plan.status(force)
        if status != "done":
            carry_out(plan, status, force)
    return plan.run_dir


def carry_out(plan: RunPlan, status: str, force: bool = False, deadline: float | None = None) -> None:
    """Train the run ('train'; by `deadline`, a time.time(), when a budget sets one), or predict the changed test
    images with its model.pt ('predict')."""
    if status == "predict":
        predict_again(plan)
    else:
        execute(plan, force, deadline)


def execute(plan: RunPlan, force: bool = False, deadline: float | None = None) -> None:
    """Prepare, train and finish one run (resuming from last.pt unless `force`), by `deadline` when given."""
    if force:
        (plan.run_dir / checkpoint.CHECKPOINT).unlink(missing_ok=True)
    run = replace(prepare(plan), deadline=deadline)
    history, epoch_logits = fit(run)
    finish(run, history, epoch_logits)


def prepare(plan: RunPlan) -> Run:
    """Rows of the fold, decoded images, the seeded model and its inputs, and the Trainer. The recipe's 'auto'
    numeric format is resolved by measuring (probe.py) before anything is seeded."""
    meta, comp = plan.meta, plan.comp
    train_rows, valid_rows = fold_rows(plan)
    dist = init_distributed(resolve_device(plan.recipe.run.device))
    device = local_device(resolve_device(plan.recipe.run.device), dist)
    if plan.recipe.run.threads and device.type == "cpu":
        torch.set_num_threads(plan.recipe.run.threads)
    plan = replace(plan, recipe=resolved(plan.recipe, device, len(comp.classes)))  # identity (meta) keeps 'auto'
    recipe, bf16 = plan.recipe, plan.recipe.run.bf16
    size = recipe.data.image_size
    # One process decodes a missing cache; other ranks (or parallel folds) wait on its lock, then map the file.
    images = [
        cached_images(s, size, plan.cache_dir, n) for s, n in ((comp.train_images, "train"), (comp.test_images, "test"))
    ]
    set_deterministic(recipe.run.deterministic)
    generator = checkpoint.seed_everything(meta["seed"], dist.rank)
    model = create_model(recipe.model, len(comp.classes)).to(device)
    if recipe.run.channels_last:
        model = model.to(memory_format=torch.channels_last)
    mean, std = (torch.tensor(v, device=device).view(1, 3, 1, 1) for v in normalization(model))
    labels = np.asarray(comp.train_labels)
    init_rows = spread_sample(train_rows, labels, WHITENING_IMAGES, meta["seed"])
    init_data_dependent(model, images[0], init_rows, mean, std, recipe.run.channels_last)
    if plan.init_from is not None:  # a warm full retrain: the fold model's weights, then a short schedule
        model.load_state_dict(fold_weights(plan))
    trained, trainer_recipe, train, test = make_inputs(plan, model, images, (mean, std), bf16)
    meta["pipeline"] = "features" if trained is not model else choose_pipeline_of(train)
    epochs, meta["epochs_source"] = (recipe.optim.epochs, "recipe") if plan.fold is not None else full_epochs(plan)
    bn_rows = torch.tensor(spread_sample(train_rows, labels, BN_RECALIBRATION_IMAGES, meta["seed"]))
    data = TrainingSet(
        train, torch.from_numpy(labels).long(), torch.tensor(train_rows), len(comp.classes), bn_rows, meta["seed"]
    )
    trainer = Trainer(trained, trainer_recipe, data, epochs, bf16, dist)
    norm = (mean.flatten().tolist(), std.flatten().tolist())
    valid = torch.tensor(valid_rows, dtype=torch.long)
    return Run(plan, device, dist, generator, model, trainer, test, valid, epochs, norm)


def fold_weights(plan: RunPlan) -> dict:
    """The state dict a warm full retrain starts from: the fold's model.pt, read once and checked against the digest
    its config.yaml records, so a fold trained again after this run was planned is refused, not silently used."""
    data = plan.init_from.read_bytes()
    if hashlib.sha256(data).hexdigest() != plan.meta[INIT_FROM]["model_sha256"]:
        raise FoldwiseError(
            f"{plan.init_from} changed after {plan.name} was planned from it (was that fold trained again "
            "meanwhile?); run the command again once it has finished."
        )
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)["state_dict"]


def choose_pipeline_of(inputs: Inputs) -> str:
    """The pipeline name recorded in config.yaml for an image input."""
    return "stream" if isinstance(inputs, StreamedImages) else "tensor"


def spread_sample(rows: list[int], labels: np.ndarray, n: int, seed: int) -> list[int]:
    """Up to `n` of `rows`, drawn at random (seeded) with every class in its share: never the first n, which in a
    class-folder layout (ids sorted by class) are the first classes alone: the whitening stem fitted on airplanes only
    and BatchNorm statistics of airplanes and automobiles cost the speed recipe 5 points on CIFAR-10."""
    if len(rows) <= n:
        return sorted(rows)
    try:
        chosen = train_test_split(rows, train_size=n, stratify=labels[rows], random_state=seed)[0]
    except ValueError:  # a class with a single row cannot be stratified; a plain random draw then
        chosen = np.random.default_rng(seed).choice(rows, size=n, replace=False).tolist()
    return sorted(chosen)


def init_data_dependent(model, images: np.ndarray, rows: list[int], mean, std, channels_last: bool) -> None:
    """Models with a data-dependent init (the speed net's whitening stem) see these training-fold images."""
    init = getattr(model, "init_whitening", None)
    if init is None:
        return
    sample = torch.from_numpy(np.array(images[rows]))
    init(to_model_input(sample.to(mean.device), mean, std, channels_last))


def make_inputs(plan: RunPlan, model, images: list[np.ndarray], norm, bf16: bool):
    """(what trains, the recipe it trains with, training inputs, test inputs): the model on resident or streamed
    images, or only its classifier on cached backbone features."""
    recipe, (mean, std) = plan.recipe, norm
    device = mean.device
    if recipe.model.cache_features:  # the classifier alone trains, on backbone features computed once
        features.check_recipe(recipe)
        weights_file = weights_file_of(model, recipe)
        arrays = features.cached_features(model, *images, plan.cache_dir, recipe, weights_file, mean, std, device, bf16)
        train, test = (CachedFeatures(torch.from_numpy(a), device) for a in arrays)
        return model.get_classifier(), features.head_recipe(recipe), train, test
    channels_last, size = recipe.run.channels_last, recipe.data.image_size
    if choose_pipeline(recipe.data.pipeline, sum(len(a) for a in images), size, device) == "stream":
        train, test = (StreamedImages(a, mean, std, channels_last, recipe.data) for a in images)
    else:  # the memory-mapped cache wrapped as a tensor without a copy; moved to the GPU when there is one
        train = ResidentImages(torch.from_numpy(images[0]).to(device), mean, std, channels_last, recipe.data)
        test = ResidentImages(torch.from_numpy(images[1]).to(device), mean, std, channels_last)
    return model, recipe, train, test


def weights_file_of(model, recipe: Recipe) -> Path | None:
    """The file the pretrained weights came from (its bytes key the features cache), or None (a download)."""
    if recipe.model.pretrained_file:
        return resolve_weights_file(recipe.model.pretrained_file)[0]
    source = getattr(model, "weights_source", None)
    if source is not None and source.kind == "package":
        return resolve_weights_file(source.spec)[0]
    return source.file if source is not None else None


def finish(run: Run, history: list[dict], epoch_logits: np.ndarray | None) -> None:
    """OOF logits (with the recipe's TTA) and test logits from the final weights; rank 0 writes every artifact."""
    plan, trainer, meta = run.plan, run.trainer, run.plan.meta
    oof_logits = None
    if len(run.valid_rows):  # without TTA the last epoch's logits are the OOF logits (again after a late resume)
        oof_logits = epoch_logits
        if trainer.uses_tta or epoch_logits is None:
            oof_logits = trainer.predict(trainer.data.inputs, run.valid_rows, desc="valid")
        meta["oof_score"] = score_logits(oof_logits, valid_labels(run), metric(plan.comp.metric))  # with TTA
    test_logits = trainer.predict(run.test, desc="test")
    run.dist.barrier()
    if run.dist.is_main:  # rank 0 alone writes the artifacts
        meta.update(
            epochs=len(history),
            device=str(run.device),
            world_size=run.dist.world,
            bf16=trainer.bf16,
            channels_last=plan.recipe.run.channels_last,
        )
        meta.update(train_rows=len(trainer.data.rows), valid_rows=len(run.valid_rows), final=history[-1])
        meta.update(sampler=trainer.sampler)
        write_artifacts(run, oof_logits, test_logits)
        log.info("%s: wrote %s", plan.name, plan.run_dir)


def write_artifacts(run: Run, oof_logits: np.ndarray | None, test_logits: np.ndarray) -> None:
    """config.yaml, oof.npz, test.npz, then model.pt (the whole network with the final weights); drops last.pt."""
    plan, comp = run.plan, run.plan.comp
    write_text_atomic(plan.run_dir / "config.yaml", yaml.safe_dump(plan.meta, sort_keys=False))
    if oof_logits is not None:
        ids = np.array([comp.train_ids[i] for i in run.valid_rows.tolist()])
        labels = valid_labels(run)
        repeat = repeat_of(plan)  # repeated k-fold: which repeat's OOF rows these are (absent for repeat 0)
        extra = {"repeat": np.int64(repeat)} if repeat else {}
        save_npz(plan.run_dir / "oof.npz", ids=ids, logits=oof_logits, labels=labels, **extra)
    save_npz(plan.run_dir / "test.npz", ids=np.array(comp.test_ids), logits=test_logits)
    weights = run.trainer.final_model.state_dict()  # the EMA's when on
    if run.trainer.module is not run.model:  # only the classifier trained: it goes back into the whole model
        run.trainer.module.load_state_dict(weights)
        weights = run.model.state_dict()
    weights = checkpoint.on_cpu(weights)  # model.pt loads on a machine without a GPU (a Kaggle inference notebook)
    mean, std = run.normalization
    # The weights and what made them; the test images are not among that (config.yaml records their fingerprint).
    final = dict({k: v for k, v in plan.meta.items() if k != TEST_PIXELS}, state_dict=weights, mean=mean, std=std)
    write_atomic(plan.run_dir / "model.pt", lambda p: torch.save(final, p))
    (plan.run_dir / checkpoint.CHECKPOINT).unlink(missing_ok=True)  # model.pt holds the final weights
