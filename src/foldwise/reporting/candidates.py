"""The blend's own sections: the decision, the candidate table and the method behind the numbers."""

from __future__ import annotations

from foldwise.blending.blend import SIGNIFICANCE
from foldwise.blending.ensemble import FittedBlend
from foldwise.reporting.render import Section


def primary(row: dict) -> tuple[str, float]:
    """(metric name, score) a candidate row was ranked by (accuracy for rows written before metrics were named)."""
    name = row.get("metric", "accuracy")
    return name, row.get("score", row["accuracy"]) if name != "log_loss" else row["log_loss"]


def candidate_table(rows: list[dict]) -> tuple[list[str], list[list]]:
    """Candidates with the competition's metric and its bootstrap 95% interval, accuracy, top-5, log loss, ECE, and
    the p-value against the best single model (McNemar for accuracy, a paired bootstrap otherwise)."""
    name = primary(rows[0])[0]
    extra = [] if name in ("accuracy", "log_loss") else [name]
    header = [
        "rank",
        "candidate",
        "method",
        *extra,
        "accuracy",
        "95% CI",
        "top-5",
        "log loss",
        "ECE",
        "p vs best single",
        "verdict",
    ]
    body = []
    for i, r in enumerate(rows, 1):
        top5 = "" if r.get("top5") is None else f"{r['top5']:.4f}"
        score = [f"{r['score']:.4f}"] if extra else []
        body.append(
            [
                i,
                r["candidate"],
                r["method"],
                *score,
                f"{r['accuracy']:.4f}",
                f"{r['ci_low']:.4f}-{r['ci_high']:.4f}",
                top5,
                f"{r['log_loss']:.4f}",
                f"{r['ece']:.4f}",
                f"{r['p_vs_best_single']:.3g}",
                verdict(r, rows),
            ]
        )
    return header, body


def verdict(row: dict, rows: list[dict]) -> str:
    """How a candidate compares with the best single model, by the metric it was ranked by."""
    if row["candidate"] == row["best_single"]:
        return "best single model"
    if not row["significant"]:
        return "no significant difference"
    name, score = primary(row)
    reference = primary(next(r for r in rows if r["candidate"] == row["best_single"]))[1]
    better = score > reference if name != "log_loss" else score < reference
    return "better (significant)" if better else "worse (significant)"


def rows_acc(rows: list[dict], candidate: str) -> float:
    """Accuracy of a named candidate."""
    return next(r["accuracy"] for r in rows if r["candidate"] == candidate)


def decision_section(choice: dict, fitted: FittedBlend, blend_sha256: str) -> Section:
    """What was chosen, by which score, and whether it beats the best single model by more than chance."""
    rows = choice["candidates"]
    chosen, best_single = rows[0], rows[0]["best_single"]
    name, score = primary(chosen)
    reference = primary(next(r for r in rows if r["candidate"] == best_single))[1]
    test = "McNemar" if name == "accuracy" else "paired bootstrap"
    if chosen["candidate"] == best_single:
        judged = "this is the best single model itself."
    elif chosen["significant"]:
        judged = f"significant ({test} p = {chosen['p_vs_best_single']:.3g})."
    else:
        judged = f"not significant ({test} p = {chosen['p_vs_best_single']:.3g})."
    temperatures = ", ".join(f"{m} {t:.3f}" for m, t in zip(fitted.models, fitted.temperatures))
    weights = ", ".join(f"{m} {w:.3f}" for m, w in zip(fitted.models, fitted.weights or ()))
    return Section(
        "Decision",
        [
            f"Chosen: **{chosen['candidate']}** ({fitted.method} of {', '.join(fitted.models)}), by nested-CV OOF "
            f"{name}: {score:.4f} (95% CI {chosen['ci_low']:.4f}-{chosen['ci_high']:.4f}); accuracy "
            f"{chosen['accuracy']:.4f}, log loss {chosen['log_loss']:.4f}.",
            f"Against the best single model ({best_single}): {score - reference:+.4f} {name}, {judged}",
            f"Temperatures: {temperatures}" + (f"; weights: {weights}" if fitted.weights else ""),
            *postprocess_text(choice),
            f"This report describes `blend.json` sha256 `{blend_sha256[:16]}`, fitted on the OOF logits it records "
            "(`foldwise submit` refuses it once any of them changes).",
        ],
    )


def candidates_section(choice: dict) -> Section:
    """Every candidate on the same OOF rows, and how the numbers were made."""
    text = [
        f"{choice['oof_rows']} out-of-fold rows, identical for every candidate. Every number is nested "
        "cross-validation: each row is predicted by a blend whose temperatures, weights or stacker were fitted "
        "without it (5 folds over the OOF rows, seeded). `max_confidence_raw` is the seed projects' ensemble "
        "(per image, the model with the highest raw logit); `max_confidence` does the same on temperature-calibrated "
        "probabilities; `mean_logits` is also the geometric mean of the calibrated probabilities (identical after "
        f"softmax). Ranked by {primary(choice['candidates'][0])[0]}, the competition's metric. CI: bootstrap 95% "
        "interval of that metric. p: against the best single model, by an exact McNemar test for accuracy, else a "
        f"paired bootstrap of the metric's difference; below {SIGNIFICANCE} counts as real.",
    ]
    return Section(
        "Candidates", text, candidate_table(choice["candidates"]), ["candidates.png", "models_vs_accuracy.png"]
    )


POSTPROCESS_NAMES = {
    "threshold": "a decision threshold on the positive class",
    "qwk_cuts": "cut points on the expected grade (optimized rounding)",
    "prior": "a per-class prior correction",
}


def postprocess_text(choice: dict) -> list[str]:
    """The metric's post-processing: its gain on rows it was not fitted on, its significance, and whether it is used."""
    post = choice.get("postprocess") or {}
    if not post:
        return []
    name, test = choice["metric"], "McNemar" if choice["metric"] == "accuracy" else "paired bootstrap"
    how = POSTPROCESS_NAMES.get(post["kind"], post["kind"])
    line = (
        f"Post-processing: {how}, fitted by 5-fold CV over the OOF rows: {name} {post['before']:.4f} -> "
        f"{post['after']:.4f} ({post['gain']:+.4f} on rows it was not fitted on; {test} p = {post['p']:.3g}, "
        f"{'significant' if post['significant'] else 'not significant'}). "
    )
    if post["used"]:
        return [line + f"The submission uses it (refitted on all OOF rows: {post['decision']['params']})."]
    return [line + "It did not beat the plain probabilities, so the submission does not use it (argmax)."]
