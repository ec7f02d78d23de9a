"""The blend's own sections: the decision, the candidate table and the method behind the numbers."""

from __future__ import annotations

from foldwise.blending.blend import SIGNIFICANCE
from foldwise.blending.ensemble import FittedBlend
from foldwise.reporting.render import Section


def candidate_table(rows: list[dict]) -> tuple[list[str], list[list]]:
    """Candidates with accuracy, its bootstrap 95% interval, top-5, log loss, ECE and McNemar p vs best single."""
    header = [
        "rank",
        "candidate",
        "method",
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
        if r["candidate"] == r["best_single"]:
            verdict = "best single model"
        elif r["significant"]:
            verdict = (
                "better (significant)" if r["accuracy"] > rows_acc(rows, r["best_single"]) else "worse (significant)"
            )
        else:
            verdict = "no significant difference"
        top5 = "" if r.get("top5") is None else f"{r['top5']:.4f}"
        body.append(
            [
                i,
                r["candidate"],
                r["method"],
                f"{r['accuracy']:.4f}",
                f"{r['ci_low']:.4f}-{r['ci_high']:.4f}",
                top5,
                f"{r['log_loss']:.4f}",
                f"{r['ece']:.4f}",
                f"{r['p_vs_best_single']:.3g}",
                verdict,
            ]
        )
    return header, body


def rows_acc(rows: list[dict], candidate: str) -> float:
    """Accuracy of a named candidate."""
    return next(r["accuracy"] for r in rows if r["candidate"] == candidate)


def decision_section(choice: dict, fitted: FittedBlend, blend_sha256: str) -> Section:
    """What was chosen, by which score, and whether it beats the best single model by more than chance."""
    rows = choice["candidates"]
    chosen, best_single = rows[0], rows[0]["best_single"]
    if chosen["candidate"] == best_single:
        verdict = "this is the best single model itself."
    elif chosen["significant"]:
        verdict = "significant."
    else:
        verdict = f"not significant (McNemar p = {chosen['p_vs_best_single']:.3g})."
    temperatures = ", ".join(f"{m} {t:.3f}" for m, t in zip(fitted.models, fitted.temperatures))
    weights = ", ".join(f"{m} {w:.3f}" for m, w in zip(fitted.models, fitted.weights or ()))
    return Section(
        "Decision",
        [
            f"Chosen: **{chosen['candidate']}** ({fitted.method} of {', '.join(fitted.models)}), by nested-CV OOF "
            f"{choice['metric']}: accuracy {chosen['accuracy']:.4f} "
            f"(95% CI {chosen['ci_low']:.4f}-{chosen['ci_high']:.4f}), log loss {chosen['log_loss']:.4f}.",
            f"Against the best single model ({best_single}): "
            f"{chosen['accuracy'] - rows_acc(rows, best_single):+.4f} accuracy, {verdict}",
            f"Temperatures: {temperatures}" + (f"; weights: {weights}" if fitted.weights else ""),
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
        "softmax). CI: bootstrap 95% interval of accuracy. p: exact McNemar test against the best single "
        f"model; below {SIGNIFICANCE} counts as real.",
    ]
    return Section(
        "Candidates", text, candidate_table(choice["candidates"]), ["candidates.png", "models_vs_accuracy.png"]
    )
