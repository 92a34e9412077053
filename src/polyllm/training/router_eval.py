"""``polyllm evaluate``: the learned router against every baseline on the test split.

Each policy is a list of picks (one model per test prompt); its quality is the mean score of the
picked answers and its latency their calibrated latency (:mod:`polyllm.training.cost`), both from
the collected data, so every policy is judged on the same answers. PGR (RouteLLM's "performance
gap recovered") places a quality between always-m1 (0) and always-m4 (1).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from polyllm.router.features import Featurizer
from polyllm.router.policy.base import Candidate
from polyllm.router.policy.heuristic import HeuristicPolicy
from polyllm.router.policy.learned import TrainedRouter
from polyllm.training.router_train import (
    Example,
    cascade,
    fit,
    mean_utility,
    split,
    utility,
)

REPORT = Path("docs/router-eval.md")
CURVE_PLOT = "router-eval-curve.png"
LAMBDAS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2)
KS = (1, 3, 5, 9, 15, 25)
RANDOM_REPEATS = 200
BOOTSTRAP = 2000


@dataclass
class Result:
    """How one policy does on the test prompts."""

    name: str
    picks: list[str]
    quality: float = 0.0
    mean_latency: float = 0.0
    p95_latency: float = 0.0
    shares: dict[str, float] = field(default_factory=dict)
    per_category: dict[str, float] = field(default_factory=dict)
    pgr: float = 0.0


def measure(name: str, picks: Sequence[str], test: Sequence[Example]) -> Result:
    """Quality, latency, shares and per-category quality of routing ``test`` to ``picks``."""
    scores = np.array([e.outcome.scores[m] for e, m in zip(test, picks, strict=True)])
    latency = np.array([e.outcome.latencies[m] for e, m in zip(test, picks, strict=True)])
    counts = Counter(picks)
    categories: dict[str, list[float]] = {}
    for e, s in zip(test, scores, strict=True):
        categories.setdefault(e.outcome.category, []).append(float(s))
    return Result(
        name,
        list(picks),
        quality=float(scores.mean()),
        mean_latency=float(latency.mean()),
        p95_latency=float(np.percentile(latency, 95)),
        shares={m: counts[m] / len(picks) for m in sorted(counts)},
        per_category={c: float(np.mean(v)) for c, v in sorted(categories.items())},
    )


def with_pgr(results: list[Result], weak: Result, strong: Result) -> list[Result]:
    """Set each result's PGR between ``weak`` and ``strong`` (0 when they tie)."""
    gap = strong.quality - weak.quality
    for r in results:
        r.pgr = (r.quality - weak.quality) / gap if gap else 0.0
    return results


def apgr(points: Sequence[tuple[float, float]]) -> float:
    """Area under PGR against the share of requests sent to the strong model, from (0, 0) to
    (1, 1) through ``points`` (share, PGR) in share order: 0.5 for random mixing."""
    curve = sorted([(0.0, 0.0), *points, (1.0, 1.0)])
    xs, ys = np.array([p[0] for p in curve]), np.array([p[1] for p in curve])
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2))


def knn_picks(
    train_vectors: NDArray[np.float64],
    train: Sequence[Example],
    vectors: NDArray[np.float64],
    k: int,
    lam: float,
    models: Sequence[str],
) -> list[str]:
    """For each row of ``vectors``, the model with the best mean utility over its ``k`` nearest
    training prompts (cosine similarity of embeddings; ties to the smaller model)."""
    table = np.array([[utility(e.outcome, m, lam) for m in models] for e in train])
    near = np.argsort(-(vectors @ train_vectors.T), axis=1, kind="stable")[:, :k]
    return [models[int(table[idx].mean(axis=0).argmax())] for idx in near]


def paired_interval(
    a: Sequence[str], b: Sequence[str], test: Sequence[Example], seed: int = 0
) -> tuple[float, float]:
    """95% bootstrap interval of quality(a) - quality(b) over the test prompts (paired:
    each resample takes the same prompts for both policies)."""
    diff = np.array(
        [e.outcome.scores[x] - e.outcome.scores[y] for e, x, y in zip(test, a, b, strict=True)]
    )
    rng = np.random.default_rng(seed)
    means = rng.choice(diff, size=(BOOTSTRAP, len(diff))).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def random_matched(shares: dict[str, float], test: Sequence[Example], seed: int) -> Result:
    """Random routing with the given model shares, averaged over many draws."""
    rng = np.random.default_rng(seed)
    models = list(shares)
    draws = [
        measure("random", list(rng.choice(models, size=len(test), p=list(shares.values()))), test)
        for _ in range(RANDOM_REPEATS)
    ]
    mean = measure("random (router's shares)", draws[0].picks, test)
    mean.quality = float(np.mean([d.quality for d in draws]))
    mean.mean_latency = float(np.mean([d.mean_latency for d in draws]))
    mean.p95_latency = float(np.mean([d.p95_latency for d in draws]))
    mean.shares = dict(shares)
    cats = mean.per_category
    mean.per_category = {c: float(np.mean([d.per_category[c] for d in draws])) for c in cats}
    return mean


@dataclass
class Evaluation:
    """Everything the report shows."""

    results: list[Result]
    curves: dict[str, list[tuple[float, float, float]]]
    """Policy family → (quality, mean latency, share to the strong model) per knob value."""
    apgr: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    """Policy → 95% interval of its quality minus always-m4's."""
    k: int
    threshold: float
    lam: float
    counts: dict[str, int]


def evaluate(
    examples: Sequence[Example], trained: TrainedRouter, embed: Callable[[str], NDArray[np.float32]]
) -> Evaluation:
    """Every policy on the test split, plus the λ and threshold curves."""
    models = list(trained.classes)
    lam, threshold = float(trained.meta["lambda"]), float(trained.meta["confidence_threshold"])
    train, val, test = (split(examples, s) for s in ("train", "validation", "test"))
    featurizer: Featurizer = trained.featurizer
    x = {name: featurizer.matrix([e.prompt for e in part]) for name, part in
         (("train", train), ("validation", val), ("test", test))}  # fmt: skip
    proba, _ = trained.predict(x["test"])
    lgbm = [models[int(i)] for i in proba.argmax(axis=1)]
    results = [measure(f"always-{m}", [m] * len(test), test) for m in models]
    heuristic = HeuristicPolicy()
    candidates = [Candidate(m, i + 1) for i, m in enumerate(models)]
    results.append(
        measure("heuristic", [heuristic.decide(e.prompt, candidates).model for e in test], test)
    )
    emb = {name: np.stack([embed(e.prompt) for e in part]).astype(np.float64) for name, part in
           (("train", train), ("validation", val), ("test", test))}  # fmt: skip
    k = max(
        KS,
        key=lambda k: (
            mean_utility(
                val, knn_picks(emb["train"], train, emb["validation"], k, lam, models), lam
            ),
            -k,
        ),
    )
    results.append(
        measure(f"kNN (k={k})", knn_picks(emb["train"], train, emb["test"], k, lam, models), test)
    )
    lgbm_result = measure("LightGBM", lgbm, test)
    results.append(random_matched(lgbm_result.shares, test, seed=0))
    results.append(lgbm_result)
    results.append(
        measure(
            f"LightGBM + cascade (<{threshold:.2f} → m5)",
            cascade(proba, models, threshold, models[-1]),
            test,
        )
    )
    results.append(
        measure(f"oracle (λ={lam:g})", [e.outcome.best_model(lam, models) for e in test], test)
    )
    with_pgr(results, results[0], results[len(models) - 1])

    strong = models[-1]

    def point(picks: list[str]) -> tuple[float, float, float]:
        r = measure("", picks, test)
        return r.quality, r.mean_latency, r.shares.get(strong, 0.0)

    curves: dict[str, list[tuple[float, float, float]]] = {"LightGBM (λ)": [], "kNN (λ)": []}
    for curve_lam in LAMBDAS:
        booster = fit(x["train"], train, x["validation"], val, models, curve_lam, seed=0).booster
        p = np.asarray(booster.predict(x["test"], num_iteration=booster.best_iteration))
        curves["LightGBM (λ)"].append(point([models[int(i)] for i in p.argmax(axis=1)]))
        curves["kNN (λ)"].append(
            point(knn_picks(emb["train"], train, emb["test"], k, curve_lam, models))
        )
    curves["LightGBM + cascade (threshold)"] = [
        point(cascade(proba, models, t, strong)) for t in np.linspace(0, 1, 11)
    ]
    weak_q, strong_q = results[0].quality, results[len(models) - 1].quality
    gap = strong_q - weak_q or 1.0
    areas = {
        name: apgr([(share, (q - weak_q) / gap) for q, _, share in points])
        for name, points in curves.items()
    }
    counts = {"train": len(train), "validation": len(val), "test": len(test)}
    always_strong = results[len(models) - 1].picks
    intervals = {
        r.name: paired_interval(r.picks, always_strong, test)
        for r in results
        if not r.name.startswith(("always", "random"))
    }
    return Evaluation(results, curves, areas, intervals, k, threshold, lam, counts)


def plot_curves(evaluation: Evaluation, path: Path) -> None:
    """Quality against mean latency: the routers' curves and every baseline as a point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for name, points in evaluation.curves.items():
        qs, lats = [p[0] for p in points], [p[1] for p in points]
        ax.plot(lats, qs, marker="o", markersize=4, label=name)
    for r in evaluation.results:
        ax.scatter(r.mean_latency, r.quality, marker="x" if "always" in r.name else "s", s=45)
        ax.annotate(r.name, (r.mean_latency, r.quality), fontsize=7, xytext=(4, 3),
                    textcoords="offset points")  # fmt: skip
    ax.set_xlabel("mean latency per request (s, calibrated)")
    ax.set_ylabel("quality (mean score, 0-1)")
    ax.set_title(f"Routers on the test split (n={evaluation.counts['test']})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _goal(evaluation: Evaluation, result: Result) -> list[str]:
    """The issue's goal, criterion by criterion, for one router."""
    m4 = next(r for r in evaluation.results if r.name == "always-m4")
    strong_share = result.shares.get("m4", 0.0) + result.shares.get("m5", 0.0)
    cut = 1 - result.mean_latency / m4.mean_latency if m4.mean_latency else 0.0
    checks = [
        (
            result.quality >= 0.95 * m4.quality,
            f"quality {result.quality / m4.quality:.0%} of always-m4 (goal ≥ 95%)",
        ),
        (strong_share <= 0.40, f"{strong_share:.0%} of requests to m4/m5 (goal ≤ 40%)"),
        (cut >= 0.50, f"mean latency {cut:.0%} below always-m4 (goal ≥ 50%)"),
    ]
    return [f"- {'met' if ok else '**not met**'}: {text}" for ok, text in checks]


def render(evaluation: Evaluation, meta: Mapping[str, Any]) -> str:
    """The markdown report."""
    models = sorted({m for r in evaluation.results for m in r.shares} | {"m1", "m2", "m3", "m4"})
    cats = sorted({c for r in evaluation.results for c in r.per_category})
    c = evaluation.counts
    lines = [
        "# Router evaluation: the learned router against the baselines",
        "",
        f"Written by `polyllm evaluate` on the test split: {c['test']} prompts (train {c['train']},"
        f" validation {c['validation']}), every distinct model's answer scored. The router was "
        f"trained at λ = {evaluation.lam:g}; its confidence threshold "
        f"{evaluation.threshold:.2f} was calibrated on validation; kNN's k = {evaluation.k} was "
        "tuned on validation. Latency is each answer's calibrated latency (its token counts at "
        "the model's idle-machine speed, `polyllm.training.cost`); quality is the mean score "
        "(0-1) of the answers the policy picks. m5 serves the m4 file, so a request escalated "
        "to m5 gets m4's answer at m4's latency.",
        "",
        "| policy | quality | PGR | mean latency (s) | p95 latency (s) | "
        + " | ".join(f"{m} share" for m in models)
        + " |",
        "|---|---:|---:|---:|---:|" + "---:|" * len(models),
    ]
    for r in evaluation.results:
        shares = " | ".join(f"{r.shares.get(m, 0.0):.0%}" for m in models)
        lines.append(
            f"| {r.name} | {r.quality:.3f} | {r.pgr:.2f} | {r.mean_latency:.2f} | "
            f"{r.p95_latency:.2f} | {shares} |"
        )
    lines += [
        "",
        "PGR = (quality - always-m1) / (always-m4 - always-m1). APGR (area under PGR against the "
        "share of requests sent to m4, from (0, 0) to (1, 1); random mixing of m1 and m4 = 0.50): "
        + ", ".join(f"{name} {area:.2f}" for name, area in evaluation.apgr.items())
        + ".",
        "",
        f"![quality against latency]({CURVE_PLOT})",
        "",
        "## Quality per category",
        "",
        "| policy | " + " | ".join(cats) + " |",
        "|---|" + "---:|" * len(cats),
    ]
    for r in evaluation.results:
        lines.append(
            f"| {r.name} | " + " | ".join(f"{r.per_category.get(k, 0.0):.2f}" for k in cats) + " |"
        )
    lgbm = next(r for r in evaluation.results if r.name == "LightGBM")
    casc = next(r for r in evaluation.results if r.name.startswith("LightGBM + cascade"))
    lines += ["", "## The goal", "", "LightGBM:", *_goal(evaluation, lgbm), "",
              "LightGBM + cascade:", *_goal(evaluation, casc), ""]  # fmt: skip
    lines += [
        "## Reading these numbers",
        "",
        f"The test split holds {c['test']} labelled prompts: its prompts for which every "
        "distinct model's answer has a numeric score. One answer moves a policy's quality by "
        f"{1 / max(c['test'], 1):.3f}; "
        "an interval that holds 0 is a difference within noise. 95% bootstrap intervals "
        f"(paired, {BOOTSTRAP} resamples) of quality minus always-m4's:",
        "",
        *(f"- {name}: [{lo:+.3f}, {hi:+.3f}]" for name, (lo, hi) in evaluation.intervals.items()),
        "",
        "Where the router falls short, the causes are (1) data size: "
        f"{c['train']:,} training prompts for a {len(meta.get('classes', []))}-class problem with "
        f"{len(meta.get('features', []))} features; (2) label noise: the label is the argmax "
        "of mostly 0/1 scores, so most prompts that every model fails (or every model passes) are "
        "labelled by latency alone, and the classes overlap heavily; (3) feature signal: "
        "the cues see what a prompt asks for, not how hard it is, and the embedding's principal "
        "components mostly separate topics. The oracle's row shows the headroom.",
        "",
        "## The model",
        "",
        f"`{meta.get('features_version')}`-version features "
        f"({len(meta.get('features', []))}: cues + embedding PCA), "
        f"params {meta.get('params')}, {meta.get('rounds')} rounds, data sha256 "
        f"`{str(meta.get('data_sha256'))[:16]}…`, validation {meta.get('validation')}.",
        "",
    ]
    return "\n".join(lines)


def write_report(evaluation: Evaluation, meta: Mapping[str, Any], path: Path = REPORT) -> Path:
    """Write the report and its plot next to it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    plot_curves(evaluation, path.parent / CURVE_PLOT)
    path.write_text(render(evaluation, meta), encoding="utf-8")
    return path
