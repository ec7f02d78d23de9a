"""The report's sections on how the run was set up: the folds (groups, class balance per fold) and the time budget's
plan against what happened (plan.json, each run's re-planned epochs)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import yaml

from foldwise.data.competition import Competition
from foldwise.data.folds import read_folds
from foldwise.reporting.render import Section
from foldwise.workspace import Workspace


def folds_section(ws: Workspace, comp: Competition) -> Section:
    """Fold sizes, groups per fold, and how far each fold's class shares stray from the whole training set's."""
    path = ws.folds_csv(comp.name)
    if not path.exists():
        return Section("Folds", [f"No folds file at `{path}`."])
    df = read_folds(path)
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    overall = df["label"].value_counts(normalize=True)
    body = []
    for fold, part in df.groupby("fold"):
        share = part["label"].value_counts(normalize=True).reindex(overall.index, fill_value=0.0)
        worst = (share - overall).abs().idxmax()
        groups = part["group"].nunique() if "group" in df.columns else len(part)
        body.append(
            [int(fold), len(part), groups, f"{(share - overall).abs().max():.1%} ({worst})", f"{share.min():.1%}"]
        )
    text = [
        f"`{path}`: k={meta.get('k', df['fold'].nunique())}, seed {meta.get('seed', '?')}, "
        f"{meta.get('method', 'StratifiedKFold')}."
    ]
    if meta.get("repeats", 1) > 1:
        text.append(
            f"Repeated {meta['repeats']} times (seeds {meta.get('repeat_seeds')}): run fold r * k + f holds out repeat "
            "r's fold f; the table shows repeat 0."
        )
    if "group" in df.columns:
        sizes = df["group"].value_counts()
        source = "the group column joined with duplicate groups" if meta.get("named_groups") else "duplicate groups"
        text.append(
            f"Groups ({source}): {len(sizes)} groups, {int((sizes > 1).sum())} with more than one image (largest "
            f"{sizes.max()}, median {np.median(sizes):g}); each group lies in one fold, so a model is never scored on "
            "a copy of an image it trained on."
        )
    text.append("Class balance: the largest gap between a class's share in the fold and in all training images.")
    header = ["fold", "images", "groups", "largest class-share gap (class)", "smallest class share"]
    return Section("Folds", text, (header, body))


def budget_section(ws: Workspace, comp: Competition) -> Section | None:
    """The time budget's plan (plan.json), what the run took, and each run's epochs after re-planning; None when
    the pipeline was not run by `foldwise run` (stages run by hand)."""
    path = ws.comp_dir(comp.name) / "plan.json"
    if not path.exists():
        return None
    plan = json.loads(path.read_text())
    estimate = sum(plan["seconds"].values())
    budget = plan.get("budget")
    took = f", the run took {plan['elapsed'] / 60:.1f} min" if "elapsed" in plan else " (the run has not finished)"
    full = "then the full retrain" if plan["full"] else "no full retrain: the fold models' average predicts the test"
    if plan["full"] and plan.get("warm"):
        full += f", from fold {plan['folds'][0]}'s weights for {', '.join(plan['warm'])}"
    text = [
        (f"Budget {budget / 60:.1f} min" if budget else "No time budget")
        + f"; the plan estimated {estimate / 60:.1f} min{took}.",
        f"Plan: {', '.join(plan['recipes'])} on folds {','.join(map(str, plan['folds']))}; {full}. "
        f"Why: {'; '.join(plan['reasons'])}.",
        "Estimated minutes per stage: " + ", ".join(f"{k} {v / 60:.1f}" for k, v in plan["seconds"].items()) + ".",
    ]
    if plan.get("skipped"):
        text.append(f"Skipped when the budget ran short: {', '.join(plan['skipped'])}.")
    header = ["run", "planned epochs", "trained epochs", "re-planned", "minutes"]
    return Section("Time budget", text, (header, run_rows(ws, comp, plan)))


def run_rows(ws: Workspace, comp: Competition, plan: dict) -> list[list]:
    """Per run of the plan's recipes: planned and trained epochs, whether the deadline re-planned it, minutes."""
    rows = []
    for name in plan["recipes"]:
        for config in sorted((ws.comp_dir(comp.name) / name).glob("*/config.yaml")):
            meta = yaml.safe_load(config.read_text())
            history = config.parent / "history.csv"
            seconds = pd.read_csv(history)["seconds"] if history.exists() else pd.Series(dtype=float)
            replanned = meta.get("epochs_replanned")
            planned = plan["epochs"].get(name, meta["recipe"]["optim"]["epochs"])
            if meta.get("init_from"):  # a warm full retrain: its own, shorter schedule
                planned = meta["recipe"]["optim"]["epochs"]
            rows.append(
                [
                    f"{name}/{config.parent.name}",
                    planned,
                    len(seconds),
                    "" if replanned is None else f"to {replanned}",
                    f"{seconds.sum() / 60:.1f}",
                ]
            )
    return rows
