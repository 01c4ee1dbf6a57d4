"""Training and evaluating the Optimus VAE (:mod:`textlatent.vae.optimus`).

Training reuses the GRU VAE's remedies against posterior collapse (cyclical KL annealing,
free bits per dimension: :func:`textlatent.vae.train.beta_at`, :func:`~textlatent.vae.train.kl_term`),
AdamW with a cosine schedule, gradient clipping, bf16 autocast on CUDA, seeds. The LM is frozen;
the posterior head and the prefix MLP train. The budget is counted in optimizer steps (and an
optional wall-clock cap) rather than epochs: on a CPU one PTB epoch through a 135M-parameter LM
takes many hours, so a run sees a fraction of an epoch.

Evaluation reports per-word perplexity comparable with the GRU VAE's: the total NLL over
subword tokens (end token included) divided by the number of whitespace words plus one
``<eos>`` per sentence, i.e. the same denominator the GRU's word-level perplexity uses.
"""

from __future__ import annotations

import json
import logging
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from textlatent.errors import InvalidInputError
from textlatent.vae.data import cached_embeddings
from textlatent.vae.metrics import active_units, iw_log_likelihood, mutual_information
from textlatent.vae.model import gaussian_kl
from textlatent.vae.optimus import (
    BUNDLED_LM,
    LOCAL_LM,
    OptimusConfig,
    OptimusPipeline,
    OptimusVAE,
    gru_posterior_state,
    load_lm,
    save_folder,
)
from textlatent.vae.train import beta_at, check_select, kl_term, length_batches, seed_everything

log = logging.getLogger("textlatent.vae.optimus")


@dataclass
class OptimusTrainConfig:
    max_steps: int = 300
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.01
    clip: float = 1.0
    kl_cycles: int = 2
    kl_rise: float = 0.5
    free_bits: float = 0.25
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    time_budget_s: float | None = None  # stop (after a last validation) when the wall clock passes this
    eval_every: int = 100  # steps between validations (and at the end)
    valid_sentences: int = 200  # seeded random subset of the valid text used for selection
    max_train_tokens: int = 48  # longer training sentences are truncated (cost grows with length)
    init_posterior: str | None = None  # a GRU VAE folder whose posterior head starts this one
    select: str = "elbo"  # what picks the saved head: valid −ELBO ("elbo") or reconstruction ("rec"), as `vae train`
    encoder_model: str | None = None
    model: dict[str, Any] = field(default_factory=dict)  # OptimusConfig overrides


def _autocast(device: str) -> Any:
    import contextlib

    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def elbo_terms(model: OptimusVAE, emb: torch.Tensor, ids: Sequence[Sequence[int]], device: str,
               batch_size: int = 32, progress: bool = False, desc: str = "elbo") -> dict[str, Any]:
    """rec (one z per sentence), KL and the posterior parameters over a data set."""
    from tqdm.auto import tqdm

    model.eval()
    n = len(ids)
    rec = torch.zeros(n, dtype=torch.float64)
    kl = torch.zeros(n, dtype=torch.float64)
    mu_all = torch.zeros(n, model.config.latent_dim)
    logvar_all = torch.zeros(n, model.config.latent_dim)
    for idx in tqdm(list(length_batches([len(s) for s in ids], batch_size, None)), desc=desc,
                    disable=not progress, mininterval=10):
        with _autocast(device):
            mu, logvar = model.encode(emb[idx].to(device))
            z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
            rec[idx] = model.reconstruction_nll(z, [ids[i] for i in idx]).double().cpu()
        kl[idx] = gaussian_kl(mu.float(), logvar.float()).sum(dim=1).double().cpu()
        mu_all[idx], logvar_all[idx] = mu.float().cpu(), logvar.float().cpu()
    return {"rec": rec, "kl": kl, "mu": mu_all, "logvar": logvar_all}


def train_optimus(
    train_texts: Sequence[str],
    valid_texts: Sequence[str],
    out_dir: str | Path,
    config: OptimusTrainConfig | None = None,
    *,
    encoder: Any = None,
    lm: Any = None,
    tokenizer: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train; validate every ``eval_every`` steps on a fixed subset of ``valid_texts``; keep the
    head with the best valid −ELBO (or reconstruction, ``select="rec"``) in ``out_dir``.
    ``lm``/``tokenizer`` replace the bundled SmolLM2 (tests pass a tiny random LM; it is then
    saved to ``out_dir/lm``). The test split is never read here."""
    from tqdm.auto import tqdm

    from textlatent.encoder import Encoder
    from textlatent.models import resolve_device

    cfg = config or OptimusTrainConfig()
    if not train_texts or not valid_texts:
        raise InvalidInputError("training and validation text must both be non-empty", param="train")
    if cfg.max_steps < 1:
        raise InvalidInputError("max_steps must be at least 1", param="max_steps")
    check_select(cfg.select)
    out = Path(out_dir)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    out.mkdir(parents=True, exist_ok=True)  # after the checks: a refused run leaves no folder behind
    t_start = time.time()

    model_cfg = OptimusConfig.from_dict(cfg.model)
    if lm is None:
        lm, tokenizer = load_lm(model_cfg.lm, None, device)
    else:
        model_cfg.lm = LOCAL_LM
        lm.save_pretrained(str(out / LOCAL_LM))
        tokenizer.save_pretrained(str(out / LOCAL_LM))
    if encoder is None:
        encoder = Encoder(cfg.encoder_model, device=device, threads=cfg.threads)
    model_cfg.embed_dim = encoder.dim
    model = OptimusVAE(model_cfg, lm.to(device), tokenizer).to(device)

    rng = random.Random(cfg.seed)
    valid_pick = sorted(rng.sample(range(len(valid_texts)), min(cfg.valid_sentences, len(valid_texts))))
    valid_sel = [valid_texts[i] for i in valid_pick]
    train_emb = torch.from_numpy(cached_embeddings(encoder, train_texts, show_progress=progress))
    valid_emb = torch.from_numpy(cached_embeddings(encoder, valid_sel, show_progress=progress))
    if cfg.init_posterior:
        model.load_state_dict(gru_posterior_state(cfg.init_posterior), strict=False)
    else:
        model.set_input_stats(train_emb)
    train_ids = [s[: cfg.max_train_tokens - 1] + [model.eos_id] if len(s) > cfg.max_train_tokens else s
                 for s in model.token_ids(train_texts)]
    valid_ids = model.token_ids(valid_sel)

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.max_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    meta = {"train": asdict(cfg), "encoder": str(encoder.path), "encoder_id": encoder.model_id,
            "encoder_model": cfg.encoder_model, "trained_encoder": False, "frozen_lm": True,
            "train_sentences": len(train_texts), "valid_sentences_used": len(valid_sel)}
    if model_cfg.lm == BUNDLED_LM:  # the installed GGUF it was trained on: loading refuses another
        from textlatent.retrieval.generate_llm import gguf_key

        meta["lm_gguf"] = gguf_key()

    history: list[dict[str, Any]] = []
    best = math.inf
    step, seen, tokens, sums = 0, 0, 0, {"rec": 0.0, "kl": 0.0, "n": 0}
    t0 = time.time()
    bar = tqdm(total=total, desc="optimus", disable=not progress, mininterval=10)
    stop = False
    while not stop:
        for idx in length_batches([len(s) for s in train_ids], cfg.batch_size, rng):
            model.train()
            model.lm.eval()  # frozen: no dropout either
            beta = beta_at(step, total, cfg.kl_cycles, cfg.kl_rise)
            with _autocast(device):
                mu, logvar = model.encode(train_emb[idx].to(device))
                z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
                rec = model.reconstruction_nll(z, [train_ids[i] for i in idx])
            kl_dims = gaussian_kl(mu.float(), logvar.float())
            loss = rec.float().mean() + beta * kl_term(kl_dims, cfg.free_bits)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.clip)
            optimizer.step()
            scheduler.step()
            step += 1
            seen += len(idx)
            tokens += sum(len(train_ids[i]) for i in idx)
            sums["rec"] += float(rec.detach().sum())
            sums["kl"] += float(kl_dims.detach().sum())
            sums["n"] += len(idx)
            bar.update(1)
            bar.set_postfix(rec=f"{sums['rec'] / sums['n']:.1f}", kl=f"{sums['kl'] / sums['n']:.2f}",
                            beta=f"{beta:.2f}", tok_s=f"{tokens / (time.time() - t0):.0f}", refresh=False)
            over_time = cfg.time_budget_s is not None and time.time() - t_start > cfg.time_budget_s
            stop = step >= total or over_time
            if step % cfg.eval_every == 0 or stop:
                val = elbo_terms(model, valid_emb, valid_ids, device)
                au, _ = active_units(val["mu"])
                valid_nll = float((val["rec"] + val["kl"]).mean())
                record = {"step": step, "sentences_seen": seen, "train_rec": sums["rec"] / sums["n"],
                          "train_kl": sums["kl"] / sums["n"], "beta": beta, "valid_rec": float(val["rec"].mean()),
                          "valid_kl": float(val["kl"].mean()), "valid_elbo_nll": valid_nll, "valid_au": au,
                          "valid_mi": mutual_information(val["mu"], val["logvar"]),
                          "seconds": round(time.time() - t_start, 1),
                          "tokens_per_s": round(tokens / (time.time() - t0), 1),
                          "stopped_by_time": over_time}
                figure = valid_nll if cfg.select == "elbo" else record["valid_rec"]
                record["selected"] = figure < best
                if figure < best:
                    best = figure
                    save_folder(model, out, meta)
                history.append(record)
                sums = {"rec": 0.0, "kl": 0.0, "n": 0}
                line = json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in record.items()})
                log.info("validation: %s", line)
                if progress:
                    tqdm.write(line, file=sys.stderr)  # stdout is for results (--json prints one object)
                (out / "history.json").write_text(json.dumps(history, indent=2))
            if stop:
                break
    bar.close()
    kept_all = [r for r in history if r["selected"]]
    if not kept_all:  # every validation figure was NaN: nothing was saved
        raise InvalidInputError("training diverged: no validation figure was finite, so no model was kept; "
                                "lower --lr", param="lr")
    kept = kept_all[-1]
    return {"history": history, "select": cfg.select, "step": kept["step"],
            "best_valid_elbo_nll": kept["valid_elbo_nll"], "best_valid_rec": kept["valid_rec"], "steps": step}


@torch.no_grad()
def evaluate_optimus(pipeline: OptimusPipeline, texts: Sequence[str], *, k: int = 10, seed: int = 0,
                     batch_size: int = 16, lm_baseline: bool = False, z_check: bool = False,
                     progress: bool = False) -> dict[str, Any]:
    """The GRU VAE's figures (``textlatent.vae.evaluate``) for an Optimus model, per-word perplexity
    on the GRU's denominator (words + one ``<eos>`` per sentence), plus subword statistics.

    ``lm_baseline`` also scores the text under the frozen LM alone (no prefix, no z; the first
    token predicted after the LM's BOS token): what the prefix adds over the bare LM.
    ``z_check`` scores the reconstruction with z = μ(x), with the μ of another sentence of the
    set and with z = 0: AU and KL describe the posterior, this says whether the decoder uses z."""
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    t0 = time.time()
    model, device = pipeline.model, pipeline.device
    ids = model.token_ids(texts)
    emb = torch.from_numpy(cached_embeddings(pipeline.encoder, texts, show_progress=progress))
    terms = elbo_terms(model, emb, ids, device, batch_size, progress)
    au, au_var = active_units(terms["mu"])
    generator = torch.Generator().manual_seed(seed)
    mi = mutual_information(terms["mu"], terms["logvar"], generator=generator)
    n = len(ids)
    words = sum(len(t.split()) + 1 for t in texts)  # whitespace words + one <eos> per sentence
    tokens = sum(len(s) for s in ids)  # subword tokens + the end token
    rec_total, kl_total = float(terms["rec"].sum()), float(terms["kl"].sum())
    iw_total = 0.0
    if k > 0:
        batches = list(length_batches([len(s) for s in ids], max(1, batch_size // min(k, batch_size)), None))
        for idx in tqdm(batches, desc=f"iw-nll k={k}", disable=not progress, mininterval=10):
            mu, logvar = model.encode(emb[idx].to(device))
            rows = [ids[i] for i in idx]

            def log_px_given_z(z: torch.Tensor, rows: list[list[int]] = rows) -> torch.Tensor:
                b, m, d = z.shape
                rep = [r for r in rows for _ in range(m)]
                return -model.reconstruction_nll(z.reshape(b * m, d), rep).view(b, m)

            iw_total += -float(iw_log_likelihood(log_px_given_z, mu.float(), logvar.float(), k=k,
                                                 chunk=min(k, batch_size), generator=generator).sum())
    result: dict[str, Any] = {
        "kind": "optimus",
        "sentences": n,
        "words": words,
        "tokens": tokens,
        "tokens_per_word": tokens / words,
        "unk_per_sentence": sum(t.split().count("<unk>") for t in texts) / n,
        "rec": rec_total / n,
        "kl": kl_total / n,
        "nll": (rec_total + kl_total) / n,
        "ppl_elbo": math.exp((rec_total + kl_total) / words),
        "ppl_elbo_per_token": math.exp((rec_total + kl_total) / tokens),
        "iw_nll": iw_total / n if k > 0 else None,
        "ppl": math.exp(iw_total / words) if k > 0 else None,
        "iw_samples": k,
        "au": au,
        "au_variances": [round(float(v), 4) for v in au_var],
        "mi": mi,
    }
    if z_check:  # does the decoder read z? rec with z = μ(x), with the μ of another sentence, with z = 0
        mu = terms["mu"]
        other = torch.roll(torch.arange(n), 1)
        for name, zs in (("rec_at_mu", mu), ("rec_at_other_mu", mu[other]), ("rec_at_zero", torch.zeros_like(mu))):
            total = 0.0
            for idx in length_batches([len(s) for s in ids], batch_size, None):
                total += float(model.reconstruction_nll(zs[idx].to(device), [ids[i] for i in idx]).sum())
            result[name] = total / n
    if lm_baseline:
        base = lm_only_nll(model, ids, device, batch_size)
        result["lm_only_nll"] = base / n
        result["ppl_lm_only"] = math.exp(base / words)
    result["seconds"] = round(time.time() - t0, 1)
    return result


def lm_only_nll(model: OptimusVAE, ids: Sequence[Sequence[int]], device: str, batch_size: int = 16) -> float:
    """Total NLL of the token sequences under the frozen LM alone, started from its BOS token."""
    from textlatent.retrieval.generate_llm import causal_lm_nll

    lm = model.lm
    start = lm.config.bos_token_id if lm.config.bos_token_id is not None else model.eos_id
    return causal_lm_nll(lm, ids, start_id=int(start), device=device, batch_size=batch_size)[0]


def subset(texts: Sequence[str], n: int | None, seed: int = 0) -> list[str]:
    """A seeded random subset in file order (the same one the GRU's ``vae eval --subset`` draws)."""
    if n is None or n >= len(texts):
        return list(texts)
    return [texts[i] for i in sorted(random.Random(seed).sample(range(len(texts)), n))]
