"""``textlatent outliers``, ``textlatent eval ood`` and ``textlatent eval compression``.

Argument parsing and printing only; the work is in :mod:`textlatent.anomaly`,
:mod:`textlatent.ood` and :mod:`textlatent.compression`. Heavy imports stay inside the commands.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from textlatent.cli_options import json_out

VaeOpt = Annotated[
    Path | None, typer.Option("--vae", help="Trained VAE folder for elbo \\[env TEXTLATENT_VAE_MODEL]",
                              show_default=False)
]
DataDirOpt = Annotated[
    Path, typer.Option("--data-dir", envvar="TEXTLATENT_DATA_DIR", help="Benchmark folder laid out like ../shared/data")
]


def _cli() -> Any:
    from textlatent import cli

    return cli


def _ints(raw: str, option: str) -> list[int]:
    try:
        values = [int(x) for x in raw.split(",") if x.strip()]
    except ValueError:
        raise _cli()._fail(f"{option} takes comma-separated integers, got {raw!r}") from None
    if not values:
        raise _cli()._fail(f"{option} is empty")
    return values


def _vae(path: Path | None, encoder: Any = None) -> Any:
    """The VAE pipeline of --vae or the setting; None when neither is given. ``encoder`` (already
    loaded) is shared only with a VAE trained on it, frozen; any other VAE loads its own."""
    cli = _cli()
    settings = cli._State.settings()
    folder = path or settings.vae_model
    if folder is None:
        return None
    from textlatent.vae.ops import VAEPipeline, trained_on

    shared = encoder if encoder is not None and trained_on(folder, encoder.path) else None
    return cli._run(lambda: VAEPipeline(folder, device=settings.device, encoder=shared))


def outliers(
    name: Annotated[str, typer.Argument(help="Collection name")],
    method: Annotated[str, typer.Option(help="knn, mahalanobis or elbo")] = "knn",
    k: Annotated[int, typer.Option("--k", "-k", help="Neighbours for knn")] = 10,
    n: Annotated[int, typer.Option("-n", help="How many outliers to show")] = 10,
    vae: VaeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """The documents of a collection that fit it least, most anomalous first."""
    from textlatent.anomaly import check_k, check_method, collection_outliers

    cli = _cli()
    cli._run(lambda: (check_method(method), check_k(k)))
    if n < 1:
        raise cli._fail(f"-n must be a positive integer, got {n}")
    service = cli._State.service()
    coll = cli._run(lambda: service.collection(name))
    pipeline = None
    if method == "elbo":
        pipeline = _vae(vae)
        if pipeline is None:
            raise cli._fail("method elbo needs a trained VAE: pass --vae DIR or set TEXTLATENT_VAE_MODEL")
    result = cli._run(lambda: collection_outliers(coll, method=method, k=k, n=n, pipeline=pipeline))
    if as_json:
        payload = {**result, "results": [o.__dict__ for o in result["results"]]}
        typer.echo(json_out(payload, ensure_ascii=False))
        return
    typer.echo(f"{result['method']} outliers of {name} ({result['count']} documents"
               + (f", k={result['k']}" if result["k"] else "") + "); higher = more anomalous")
    for o in result["results"]:
        snippet = " ".join(o.text.split())
        snippet = snippet if len(snippet) <= 90 else snippet[:89] + "…"
        typer.echo(f"{o.rank:>3}. {o.score:.4f}  [{o.id}]  {snippet}")


def eval_ood(
    data_dir: DataDirOpt = Path("../shared/data"),
    methods: Annotated[str | None, typer.Option(help="Comma-separated subset of knn,mahalanobis,elbo "
                                                     "\\[default: all three with a VAE, else knn,mahalanobis]")] = None,
    vae: VaeOpt = None,
    heldout: Annotated[int, typer.Option(min=100, help="Last N SST-2 train phrases held out for selection")] = 2000,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """AUROC of SST-2 dev (in-domain) against PTB test and SciFact test queries."""
    from textlatent.ood import METHODS, evaluate_ood, load_ood_sets

    cli = _cli()
    chosen = [m.strip() for m in methods.split(",") if m.strip()] if methods is not None else None
    if chosen is not None and (not chosen or any(m not in METHODS for m in chosen)):
        raise cli._fail(f"--methods must be a non-empty, comma-separated subset of {','.join(METHODS)}, "
                        f"got {methods!r}")
    sets = cli._run(lambda: load_ood_sets(data_dir, heldout))
    encoder = cli._eval_encoder(None, None)
    pipeline = _vae(vae, encoder) if (chosen is None or "elbo" in chosen) else None
    if chosen is None:
        chosen = ["knn", "mahalanobis"] + (["elbo"] if pipeline is not None else [])
    if "elbo" in chosen and pipeline is None:
        raise cli._fail("method elbo needs --vae DIR (a VAE trained on the SST-2 reference text) or "
                        "TEXTLATENT_VAE_MODEL")
    from textlatent.vae.data import cached_embeddings

    def embed(set_name: str, texts: Any) -> Any:
        typer.echo(f"embedding {set_name} ({len(texts)} texts) ...", err=True)
        return cached_embeddings(encoder, texts, show_progress=True)

    result = cli._run(lambda: evaluate_ood(sets, embed, methods=chosen, vae=pipeline, encoder=encoder,
                                           show_progress=True))
    if "elbo" not in chosen:
        result["not_measured"] = {"elbo": "not in --methods" if methods is not None else "no --vae given"}
    if as_json:
        typer.echo(json_out(result))
        return
    typer.echo(f"{'method':<12} {'setting':<14} " + " ".join(f"{n:>13}" for n in result["out_of_domain"]))
    for method, r in result["methods"].items():
        typer.echo(f"{method:<12} {r['setting']:<14} " + " ".join(f"{r['auroc'][n]:>13.4f}"
                                                                  for n in result["out_of_domain"]))


def _check_plot_path(path: Path) -> Path:
    """--out-plot as the file that will be written, checked before any work: an existing folder,
    a missing parent or a format matplotlib cannot write is refused; no suffix means PNG."""
    from matplotlib.figure import Figure

    cli = _cli()
    if path.is_dir():
        raise cli._fail(f"--out-plot {str(path)!r} is a folder; give a file name such as {str(path / 'plot.png')!r}")
    if not path.parent.is_dir():
        raise cli._fail(f"--out-plot folder {str(path.parent)!r} does not exist")
    if not path.suffix:
        return path.with_name(path.name + ".png")
    formats = Figure().canvas.get_supported_filetypes()
    if path.suffix[1:].lower() not in formats:
        raise cli._fail(f"--out-plot: matplotlib cannot write {path.suffix!r} files; use one of "
                        f"{', '.join('.' + f for f in sorted(formats))}")
    return path


def eval_compression(
    data_dir: DataDirOpt = Path("../shared/data"),
    dims: Annotated[str, typer.Option(help="Comma-separated d for PCA and truncation")] = "32,64,128,256",
    pq: Annotated[str, typer.Option(help="Comma-separated PQ sub-quantizer counts (= bytes)")] = "8,16,32,48,96",
    out_plot: Annotated[Path | None, typer.Option("--out-plot", help="Write the plot (PNG) here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """SciFact nDCG@10 and STS-B test Spearman against bytes per vector for each compression."""
    import time

    import numpy as np

    from textlatent.cache import cached_embeddings
    from textlatent.compression import RetrievalData, StsPairs, codecs, evaluate_compression, plot
    from textlatent.eval.loaders import load_beir, load_stsb
    from textlatent.eval.tasks import encode_all

    cli = _cli()
    dim_list, pq_list = _ints(dims, "--dims"), _ints(pq, "--pq")
    if out_plot is not None:
        out_plot = _check_plot_path(out_plot)
    encoder = cli._eval_encoder(None, None)
    cli._run(lambda: codecs(dim_list, pq_list, full_dim=encoder.dim))  # bad --dims/--pq: said before any embedding
    beir = cli._run(lambda: load_beir(data_dir, "scifact", "test"))
    sts_test = cli._run(lambda: load_stsb(data_dir, "test"))
    sts_train = cli._run(lambda: load_stsb(data_dir, "train"))
    start = time.perf_counter()

    def embed(ids: list[str], texts: list[str]) -> np.ndarray:
        return cached_embeddings(encoder, ids, texts, lambda t: encode_all(encoder, t, show_progress=True))

    doc_ids, doc_texts = beir.corpus_texts()
    typer.echo(f"embedding the SciFact corpus ({len(doc_ids)} documents; cached after the first run) ...", err=True)
    corpus = embed(doc_ids, doc_texts)
    query_ids = list(beir.queries)
    queries = encode_all(encoder, [beir.queries[q] for q in query_ids])
    fit_texts = sorted(set(sts_train.sentences1) | set(sts_train.sentences2))
    typer.echo(f"embedding STS-B: {len(fit_texts)} train sentences (to fit on) and {len(sts_test)} test pairs ...",
               err=True)
    fit = embed(fit_texts, fit_texts)
    a = embed([str(i) for i in range(len(sts_test))], sts_test.sentences1)
    b = embed([str(i) for i in range(len(sts_test))], sts_test.sentences2)
    retrieval = RetrievalData(doc_ids, corpus, query_ids, queries, beir.qrels)
    sts = StsPairs(fit, a, b, list(sts_test.scores))
    rows = cli._run(lambda: evaluate_compression(retrieval, sts, dims=dim_list, pq=pq_list, show_progress=True))
    result = {"task": "compression", "model": encoder.model_id, "retrieval": "scifact/test", "sts": "stsb/test",
              "fit_on": {"retrieval": "scifact corpus", "sts": "stsb train sentences"}, "rows": rows,
              "seconds": round(time.perf_counter() - start, 1)}
    plot_error = None
    if out_plot is not None:
        try:  # the results are printed even when the plot cannot be written
            plot(rows, str(out_plot), title=f"{encoder.model_id}: quality against bytes per vector")
            result["plot"] = str(out_plot)
        except (OSError, ValueError) as exc:
            plot_error = f"could not write the plot to {str(out_plot)!r}: {getattr(exc, 'strerror', None) or exc}"
    if as_json:
        typer.echo(json_out(result))
    else:
        typer.echo(f"{'method':<10} {'setting':<12} {'bytes':>6} {'nDCG@10':>8} {'Spearman':>9}")
        for r in rows:
            typer.echo(f"{r['method']:<10} {r['setting'] or '':<12} {r['bytes_per_vector']:>6} "
                       f"{r['ndcg@10']:>8.4f} {r['spearman']:>9.2f}")
    if plot_error:
        raise cli._fail(plot_error)


def register(app: typer.Typer, eval_app: typer.Typer) -> None:
    """Add ``outliers`` to the main command and ``ood``/``compression`` to ``eval``."""
    app.command("outliers")(outliers)
    eval_app.command("ood")(eval_ood)
    eval_app.command("compression")(eval_compression)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run through `textlatent`")
