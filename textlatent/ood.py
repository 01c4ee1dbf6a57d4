"""``textlatent eval ood``: can the latent space tell SST-2 from text it was never shown?

Protocol (nothing is fitted or chosen on a test split):

* reference (what "in-domain" means): SST-2 GLUE train, all but its last ``heldout`` phrases;
  the kNN index and the covariance are fitted on it, and the ELBO's VAE must be trained on the
  same text (``/work/models/vae-sst2-ood`` was: ``--train`` those phrases, ``--valid`` the
  held-out ones);
* selection (each method's one hyper-parameter: k and aggregate for kNN, the covariance
  estimator for Mahalanobis, per-token or per-sentence ELBO, or the per-token likelihood ratio
  against a unigram background fitted on the reference): the held-out train phrases as
  in-domain against two *non-test* out-of-domain sets, PTB valid and SciFact train queries;
  the setting with the best mean AUROC there is the one reported;
* test: SST-2 GLUE dev (in-domain) against PTB test sentences and SciFact test queries
  (those judged in ``qrels/test.tsv``), AUROC per method and OOD set.

Embeddings of the bundled encoder come through the disk cache (:mod:`textlatent.cache`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textlatent.anomaly import METHODS, ElboScorer, KnnScorer, MahalanobisScorer, UnigramBackground, auroc
from textlatent.errors import InvalidInputError

KNN_GRID = (1, 5, 10, 20, 50, 100)
SHRINKAGE_GRID = ("ledoit-wolf", "empirical")
ELBO_GRID = ("token", "sentence", "token-ratio")


def load_ood_sets(data_dir: str | Path, heldout: int = 2000) -> dict[str, list[str]]:
    """Every text set of the protocol, by name (see the module docstring)."""
    from textlatent.eval.loaders import load_ptb, load_sst2, read_beir_queries, read_qrels, require_data_dir

    root = require_data_dir(data_dir)
    train = load_sst2(root, "train", "glue").texts
    if not 100 <= heldout <= len(train) // 2:
        raise InvalidInputError(f"heldout must be between 100 and {len(train) // 2}, got {heldout}",
                                param="heldout")
    queries = read_beir_queries(root / "scifact" / "queries.jsonl")

    def judged(split: str) -> list[str]:
        return [queries[q] for q in read_qrels(root / "scifact" / "qrels" / f"{split}.tsv") if q in queries]

    return {
        "reference": train[:-heldout],
        "heldout": train[-heldout:],
        "sst2-dev": load_sst2(root, "dev", "glue").texts,
        "ptb-valid": load_ptb(root, "valid"),
        "scifact-train": judged("train"),
        "ptb-test": load_ptb(root, "test"),
        "scifact-test": judged("test"),
    }


SELECT_OOD = ("ptb-valid", "scifact-train")
TEST_OOD = ("ptb-test", "scifact-test")


Scores = dict[str, np.ndarray]  # set name -> one score per text


def _select(candidates: dict[str, Scores]) -> tuple[str, list[dict[str, Any]]]:
    """The setting whose scores best separate heldout from the selection OOD sets (mean AUROC)."""
    rows = []
    for setting, score in candidates.items():
        row: dict[str, Any] = {"setting": setting}
        for name in SELECT_OOD:
            row[name] = round(auroc(score["heldout"], score[name]), 5)
        row["mean"] = round(float(np.mean([row[n] for n in SELECT_OOD])), 5)
        rows.append(row)
    best = max(rows, key=lambda r: r["mean"])["setting"]
    return best, rows


def evaluate_ood(
    sets: dict[str, list[str]],
    embed: Callable[[str, Sequence[str]], np.ndarray],
    *,
    methods: Sequence[str] = ("knn", "mahalanobis"),
    vae: Any = None,
    encoder: Any = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """AUROC per method on the test OOD sets, each method at its selected setting.

    ``embed(name, texts)`` gives the L2-normalised embeddings of a named set (by ``encoder``, when
    given); ``vae`` is a :class:`~textlatent.vae.ops.VAEPipeline` trained on ``sets['reference']``
    (needed for elbo). Its q(z|x) is fed those embeddings only when ``vae.encoder`` is ``encoder``;
    a VAE with an encoder of its own (``--train-encoder``) embeds the sets itself."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise InvalidInputError(f"methods must be a non-empty subset of {', '.join(METHODS)}, got {list(methods)}",
                                param="methods")
    if "elbo" in methods and vae is None:
        raise InvalidInputError("method elbo needs --vae DIR (a VAE trained on the SST-2 reference text)",
                                param="vae")
    start = time.perf_counter()
    names = ["heldout", *SELECT_OOD, "sst2-dev", *TEST_OOD]
    emb = {name: embed(name, sets[name]) for name in ["reference", *names]}
    result: dict[str, Any] = {"task": "ood", "in_domain": "sst2-dev", "out_of_domain": list(TEST_OOD),
                              "reference": f"sst2-train minus its last {len(sets['heldout'])}",
                              "selection": {"in_domain": "sst2-train held-out", "out_of_domain": list(SELECT_OOD)},
                              "sizes": {n: len(sets[n]) for n in ["reference", *names]}, "methods": {}}

    def report(method: str, candidates: dict[str, Scores]) -> None:
        chosen, rows = _select(candidates)
        score = candidates[chosen]
        result["methods"][method] = {
            "setting": chosen,
            "auroc": {name: round(auroc(score["sst2-dev"], score[name]), 5) for name in TEST_OOD},
            "selection": rows,
        }

    if "knn" in methods:
        knn = KnnScorer(k=max(KNN_GRID)).fit(emb["reference"])
        dists = {name: knn.neighbour_distances(emb[name]) for name in names}
        candidates: dict[str, Scores] = {}
        for k in KNN_GRID:
            candidates[f"k={k},mean"] = {n: d[:, :k].mean(axis=1) for n, d in dists.items()}
            if k > 1:
                candidates[f"k={k},kth"] = {n: d[:, k - 1] for n, d in dists.items()}
        report("knn", candidates)
    if "mahalanobis" in methods:
        maha: dict[str, Scores] = {}
        for shrink in SHRINKAGE_GRID:
            fitted = MahalanobisScorer(shrink).fit(emb["reference"])
            maha[shrink] = {name: fitted.score(emb[name]) for name in names}
            if fitted.shrinkage_ is not None:
                result["ledoit_wolf_shrinkage"] = round(fitted.shrinkage_, 6)
        report("mahalanobis", maha)
    if "elbo" in methods:
        shared = encoder is not None and getattr(vae, "encoder", None) is encoder
        per_sentence = {name: ElboScorer(vae, per="sentence").score_texts(
            sets[name], embeddings=emb[name] if shared else None, show_progress=show_progress) for name in names}
        tokens = {name: np.array([len(vae.vocab.encode(t)) for t in sets[name]], dtype=np.float64) for name in names}
        per_token = {n: per_sentence[n] / tokens[n] for n in names}
        background = UnigramBackground(vae.vocab).fit(sets["reference"])
        ratio = {n: per_token[n] - background.nll_per_token(sets[n]) for n in names}
        candidates = {"sentence": per_sentence, "token": per_token, "token-ratio": ratio}
        report("elbo", {setting: candidates[setting] for setting in ELBO_GRID})
        result["vae"] = str(getattr(vae, "path", vae))
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result
