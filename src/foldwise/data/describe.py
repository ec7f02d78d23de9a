"""What foldwise sees in a competition directory: `foldwise describe input/<comp> [--layout NAME]`."""

from __future__ import annotations

import numpy as np

from foldwise.data.competition import Competition
from foldwise.data.datasummary import image_stats

SHOW_CLASSES = 10  # class names listed; the rest are counted


def class_list(comp: Competition) -> str:
    """Up to SHOW_CLASSES class names, with their descriptions when the layout has them (Tiny ImageNet)."""
    shown = [
        f"{name} ({comp.class_descriptions[i]})" if comp.class_descriptions and comp.class_descriptions[i] else name
        for i, name in enumerate(comp.classes[:SHOW_CLASSES])
    ]
    more = len(comp.classes) - len(shown)
    return ", ".join(shown) + (f", ... (+{more} more)" if more else "")


def submission_text(comp: Competition) -> str:
    """The submission's columns and where they come from."""
    fmt = comp.submission
    source = f"from {fmt.sample_path.name}" if fmt.sample_path else "default, no sample_submission.csv"
    if fmt.wants_probabilities:
        cols = f"{fmt.id_column},{fmt.probability_columns[0]},...,{fmt.probability_columns[-1]}"
        return f"{cols} (one probability column per class; {source})"
    what = {
        "positive_probability": f"the probability of {comp.classes[-1]!r} per test image",
        "top_k": f"the {fmt.k} most probable labels per test image, space-separated",
    }.get(fmt.kind, "one label per test image")
    return f"{fmt.id_column},{fmt.label_column} ({what}; {source})"


def solution_text(comp: Competition) -> str:
    """Where the test labels (the scoring key) are, if anywhere."""
    if comp.solution_labels:
        return (
            f"{len(comp.solution_labels)} test labels from the data, kept aside (never trained on); "
            "write_solution() writes them as an id,label csv for `foldwise score`"
        )
    if comp.solution_path:
        return f"{comp.solution_path} (kept aside for `foldwise score`)"
    return "none (the test images are unlabeled)"


def sizes_text(source) -> str:
    """Image sizes and modes of a seeded sample of a split."""
    stats = image_stats(source)
    return f"{stats['sizes']}; modes {stats['modes']} (sample of {stats['sampled']})"


def describe(comp: Competition) -> str:
    """Plain-text summary: layout, classes, train counts per class, the test set, image sizes, submission format."""
    counts = np.bincount(np.asarray(comp.train_labels), minlength=len(comp.classes))
    low, high = int(counts.argmin()), int(counts.argmax())
    lines = [
        f"competition: {comp.name} ({comp.root})",
        f"layout: {comp.layout}" + (f" - {comp.layout_detail}" if comp.layout_detail else ""),
        f"classes: {len(comp.classes)}: {class_list(comp)}",
        f"train: {len(comp.train_ids)} labeled images; per class min {counts[low]} ({comp.classes[low]}), "
        f"max {counts[high]} ({comp.classes[high]})",
        f"test: {len(comp.test_ids)} images - {comp.test_description or 'unlabeled'}",
        f"solution key: {solution_text(comp)}",
        f"train images: {sizes_text(comp.train_images)}",
        f"test images: {sizes_text(comp.test_images)}",
        f"submission: {submission_text(comp)}",
        f"metric: {comp.metric} (foldwise.yaml `metric:` or --metric)",
    ]
    if comp.train_groups:
        sizes = np.unique(np.asarray(comp.train_groups), return_counts=True)[1]
        lines.append(
            f"groups: {len(sizes)} (median {np.median(sizes):g} images, largest {sizes.max()}); each stays in one fold"
        )
    lines += [f"note: {note}" for note in comp.notes]
    return "\n".join(lines)
