"""A text VAE whose decoder is a pretrained LM (SmolLM2-135M-Instruct): the Optimus approach.

Why this shape (Li et al. 2020, "Optimus"; prefix injection as in Li & Liang 2021):

* The posterior is the GRU VAE's (:class:`textlatent.vae.model.TextVAE`): the MiniLM sentence
  embedding, standardised per component, through a two-layer head to μ and log σ². Same layer
  names, so a trained GRU VAE's head can start this one (``init_posterior``): z then carries
  information from the first step, and the two models share one latent space to compare in.
* z reaches the LM as ``prefix_len`` vectors of the LM's hidden size, made by a small MLP and
  put in front of the token embeddings: a soft prompt that depends on z. The LM itself stays
  frozen (on two CPU cores its 135M weights cannot be trained in any useful budget; the
  prefix MLP and posterior head are all that learn), so the prefix must do two jobs: move a
  chat model to the target register (PTB: lower case, ``<unk>``, ``N``) and carry z.
* Generation goes through ``transformers``' own ``generate`` with ``inputs_embeds`` (greedy,
  sampling, beam search with its KV cache and length normalisation), not a hand-made loop.

A model folder holds ``config.json`` (``"kind": "optimus"``), ``head.pt`` (posterior and
prefix MLP; the LM's weights are not copied) and, only when the LM is not the bundled
SmolLM2, an ``lm/`` folder with that LM and its tokenizer (the tests use a tiny random one).
"""

from __future__ import annotations

import json
import pickle
import threading
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from textlatent.errors import InvalidInputError, NotFoundError
from textlatent.vae.model import PosteriorHead
from textlatent.vae.ops import PosteriorPipeline, Strategy, check_decoding, check_no_repeat_ngram, check_z, seeded_rng

if TYPE_CHECKING:
    from textlatent.encoder import Encoder

# n-grams counted over the generated tokens only is what `no_repeat_ngram` means here: the prompt is z's prefix
# vectors, which have no token ids. Registered once (catch_warnings around each call is not thread-safe).
warnings.filterwarnings("ignore", message="Passing `no_repeat_ngram_size` with `inputs_embeds`")

KIND = "optimus"
BUNDLED_LM = "SmolLM2-135M-Instruct"  # resolved through textlatent.retrieval.generate_llm.local_model_dir
LOCAL_LM = "lm"  # an LM saved inside the model folder


@dataclass
class OptimusConfig:
    lm: str = BUNDLED_LM
    embed_dim: int = 384  # the sentence embedding the posterior reads (MiniLM: 384)
    latent_dim: int = 32
    posterior_hidden: int = 512
    prefix_len: int = 4  # P prefix vectors made from z
    prefix_hidden: int = 512
    hidden_size: int = 0  # the LM's; filled in when the model is built
    max_len: int = 64  # subword tokens decoded at most

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OptimusConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def load_lm(spec: str, folder: Path | None, device: str = "cpu", *,
            trained_on: str | None = None) -> tuple[Any, Any]:
    """The decoder LM and its tokenizer: the bundled SmolLM2 (converted once from its GGUF by
    :func:`~textlatent.retrieval.generate_llm.local_model_dir`) or ``folder / spec``.
    ``trained_on``: the GGUF hash a trained head recorded; another installed file is refused, since
    the prefix was fitted to that LM's embeddings and would decode against another's."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from textlatent.models import set_offline_defaults

    set_offline_defaults()
    if spec == BUNDLED_LM:
        from textlatent.retrieval.generate_llm import gguf_key, local_model_dir

        if trained_on is not None and trained_on != gguf_key():
            raise InvalidInputError(
                f"this Optimus model was trained on another SmolLM2 file (GGUF {trained_on}, installed: "
                f"{gguf_key()}); reinstall the version it was trained with (`make install`) or retrain it",
                param="model")
        path = local_model_dir()
    else:
        if folder is None or not (folder / spec / "config.json").is_file():
            raise NotFoundError(f"the decoder LM folder {spec!r} is missing from {folder}", param="model")
        path = folder / spec
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    lm: Any = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    return lm.to(device).eval(), tokenizer


class OptimusVAE(PosteriorHead, nn.Module):
    """MiniLM-embedding posterior + a frozen causal LM conditioned on z through prefix vectors."""

    embed_mean: torch.Tensor
    embed_std: torch.Tensor

    def __init__(self, config: OptimusConfig, lm: Any, tokenizer: Any) -> None:
        super().__init__()
        hidden = int(lm.config.hidden_size)
        config.hidden_size = hidden
        self.config = c = config
        self.lm = lm
        self.lm.requires_grad_(False)
        self.lm.eval()
        self.tokenizer = tokenizer
        eos = tokenizer.eos_token_id
        self.eos_id = int(eos if eos is not None else lm.config.eos_token_id)
        # A sentence is one line: a newline token ends a decode as the end token does (a chat LM
        # that has not yet learnt to stop otherwise runs on into a second paragraph).
        newlines = [tokenizer("\n" * k, add_special_tokens=False)["input_ids"] for k in (1, 2)]
        self.stop_ids = [self.eos_id, *(ids[0] for ids in newlines if len(ids) == 1)]
        # Same layout (and parameter names) as TextVAE's posterior, so its weights can be loaded here.
        self.posterior = nn.Sequential(
            nn.Linear(c.embed_dim, c.posterior_hidden), nn.Tanh(), nn.Linear(c.posterior_hidden, 2 * c.latent_dim)
        )
        self.register_buffer("embed_mean", torch.zeros(c.embed_dim))
        self.register_buffer("embed_std", torch.ones(c.embed_dim))
        self.to_prefix = nn.Sequential(
            nn.Linear(c.latent_dim, c.prefix_hidden), nn.Tanh(), nn.Linear(c.prefix_hidden, c.prefix_len * hidden)
        )
        self._init_prefix()

    @torch.no_grad()
    def _init_prefix(self) -> None:
        """Start the prefix at real token embeddings (a soft prompt an LM can read) with a small
        z-dependent part: a random prefix far from the embedding manifold makes the frozen LM's
        first steps noise, and a large z part would swamp what the prompt says."""
        table = self.lm.get_input_embeddings().weight
        ids = self.tokenizer("here is a sentence :", add_special_tokens=False)["input_ids"]
        ids = [i for i in ids if 0 <= i < table.shape[0]] or [0]
        ids = (ids * self.config.prefix_len)[-self.config.prefix_len:]
        out = self.to_prefix[-1]
        assert isinstance(out, nn.Linear)
        scale = float(table.std())
        nn.init.normal_(out.weight, std=scale / 25.0)
        out.bias.copy_(table[torch.tensor(ids)].reshape(-1).to(out.bias.dtype))

    # ------------------------------------------------------------------ posterior (as TextVAE)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Everything but the frozen LM: what ``head.pt`` holds."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("lm.")}

    # ------------------------------------------------------------------ decoder

    def prefix(self, z: torch.Tensor) -> torch.Tensor:
        """z ``[B, d]`` → prefix embeddings ``[B, P, hidden]``."""
        return self.to_prefix(z).view(z.shape[0], self.config.prefix_len, self.config.hidden_size)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Subword ids of each text followed by the end token (what the likelihood scores)."""
        enc = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [[*ids[: self.config.max_len - 1], self.eos_id] for ids in enc]

    def reconstruction_nll(self, z: torch.Tensor, ids: Sequence[Sequence[int]]) -> torch.Tensor:
        """−log p(x|z) summed over each sentence's subword tokens, the end token included → ``[B]``.

        Inputs are [prefix(z), x_1 … x_{T−1}]; the output at the last prefix position predicts x_1.
        Rows are right-padded; only real tokens reach the (49k-way) output layer."""
        device = z.device
        longest = max(len(s) for s in ids)
        targets = torch.full((len(ids), longest), self.eos_id, dtype=torch.long)
        mask = torch.zeros(len(ids), longest, dtype=torch.bool)
        for i, s in enumerate(ids):
            targets[i, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[i, : len(s)] = True
        targets, mask = targets.to(device), mask.to(device)
        P = self.config.prefix_len
        token_embeds = self.lm.get_input_embeddings()(targets[:, :-1])
        prefix = self.prefix(z).to(token_embeds.dtype)
        inputs = torch.cat([prefix, token_embeds], dim=1)
        attention = torch.cat([torch.ones(len(ids), P, dtype=torch.long, device=device),
                               mask[:, :-1].long()], dim=1)
        hidden = self.lm.base_model(inputs_embeds=inputs, attention_mask=attention).last_hidden_state[:, P - 1:]
        logits = self.lm.get_output_embeddings()(hidden[mask]).float()
        nll = F.cross_entropy(logits, targets[mask], reduction="none")
        per_token = torch.zeros(targets.shape, dtype=nll.dtype, device=device)
        per_token[mask] = nll
        return per_token.sum(dim=1)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, *, strategy: str = "greedy", temperature: float = 1.0,
                 beam_size: int = 5, max_len: int | None = None, no_repeat_ngram: int = 0) -> list[list[int]]:
        """Token ids (end token dropped) for each row of ``z``, through ``lm.generate``
        (``no_repeat_ngram`` ≥ 2: transformers' ``no_repeat_ngram_size``, over SmolLM2 tokens)."""
        prefix = self.prefix(z).to(self.lm.get_input_embeddings().weight.dtype)
        kw: dict[str, Any] = {"max_new_tokens": max_len or self.config.max_len, "eos_token_id": self.stop_ids,
                              "pad_token_id": self.eos_id, "do_sample": strategy == "sample", "num_beams": 1}
        kw["no_repeat_ngram_size"] = no_repeat_ngram  # 0 given explicitly: the LM's own config cannot turn it on
        if strategy == "sample":
            kw.update(temperature=float(temperature), top_k=0, top_p=1.0)
        elif strategy == "beam":
            kw.update(num_beams=beam_size, early_stopping=True)
        attention = torch.ones(prefix.shape[:2], dtype=torch.long, device=prefix.device)
        out = self.lm.generate(inputs_embeds=prefix, attention_mask=attention, **kw)
        result = []
        for row in out.tolist():
            seq = []
            for t in row:
                if t in self.stop_ids:
                    break
                seq.append(int(t))
            result.append(seq)
        return result


def gru_posterior_state(folder: str | Path) -> dict[str, torch.Tensor]:
    """The posterior head (and input standardisation) of a trained GRU VAE folder."""
    path = Path(folder) / "model.pt"
    if not path.is_file():
        raise NotFoundError(f"{folder} is not a trained GRU VAE folder (no model.pt)", param="init_posterior")
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v for k, v in state.items() if k.startswith("posterior.") or k in ("embed_mean", "embed_std")}


def save_folder(model: OptimusVAE, out: Path, meta: dict[str, Any]) -> None:
    """``config.json`` (``kind: optimus``) and ``head.pt``; the caller saves a non-bundled LM to ``out/lm``."""
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.trainable_state(), out / "head.pt.tmp")
    (out / "head.pt.tmp").replace(out / "head.pt")
    (out / "config.json").write_text(json.dumps({**meta, "kind": KIND, "model": model.config.to_dict()}, indent=2))


def is_optimus_folder(path: str | Path) -> bool:
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text()).get("kind") == KIND
    except (ValueError, AttributeError):
        return False


class OptimusPipeline(PosteriorPipeline):
    """A trained Optimus folder behind the :class:`~textlatent.vae.ops.LatentModel` interface,
    so the /latent routes and ``textlatent vae sample|reconstruct|interpolate|analogy`` use it
    unchanged. ``encoder`` may share an already loaded bundled MiniLM (the API's)."""

    kind = KIND

    def __init__(self, path: str | Path, *, device: str = "cpu", encoder: Encoder | None = None,
                 no_repeat_ngram: int = 0) -> None:
        from textlatent.encoder import Encoder
        from textlatent.models import resolve_device

        # off by default: SmolLM2 does not loop as the GRU does, and its figures were measured without it
        self.no_repeat_ngram = check_no_repeat_ngram(no_repeat_ngram)

        self.path = Path(path).expanduser()
        config_file, weights = self.path / "config.json", self.path / "head.pt"
        if not config_file.is_file() or not weights.is_file():
            raise NotFoundError(f"{str(self.path)!r} is not a trained Optimus folder (needs config.json and "
                                "head.pt); train one with `textlatent vae train-optimus`", param="model")
        try:  # a damaged folder is named, not a traceback
            meta = json.loads(config_file.read_text())
            self.config = OptimusConfig.from_dict(meta["model"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InvalidInputError(f"{str(self.path)!r} is not a readable Optimus folder ({type(exc).__name__}: "
                                    f"{str(exc)[:200]})", param="model") from exc
        self.meta = meta
        self.device = resolve_device(device)
        recorded = meta.get("lm_gguf")
        lm, tokenizer = load_lm(self.config.lm, self.path, self.device,
                                trained_on=recorded if isinstance(recorded, str) else None)
        self.model = OptimusVAE(self.config, lm, tokenizer).to(self.device)
        try:
            state = torch.load(weights, map_location=self.device, weights_only=True)
        except (OSError, RuntimeError, pickle.UnpicklingError) as exc:
            raise InvalidInputError(f"cannot read {weights} ({type(exc).__name__}: {str(exc)[:200]})",
                                    param="model") from exc
        result = self.model.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith("lm.")]  # the LM is loaded apart
        if missing or result.unexpected_keys:
            raise NotFoundError(f"{weights} does not match its config.json (missing {missing[:3]}, unexpected "
                                f"{result.unexpected_keys[:3]})", param="model")
        self.model.eval()
        self.name = self.path.resolve().name
        self.latent_dim = self.config.latent_dim
        self.encoder = encoder if encoder is not None else Encoder(meta.get("encoder_model"), device=self.device)
        self._lock = threading.Lock()  # generation is not re-entrant across threads

    def decode(self, z: np.ndarray, *, strategy: Strategy = "greedy", temperature: float = 1.0,
               beam_size: int = 5, seed: int | None = None, no_repeat_ngram: int | None = None,
               batch_size: int = 32) -> list[str]:
        z_arr = check_z(z, self.latent_dim)
        check_decoding(strategy, temperature, beam_size, seed)
        n = self.no_repeat_ngram if no_repeat_ngram is None else check_no_repeat_ngram(no_repeat_ngram)
        texts: list[str] = []
        with self._lock, torch.no_grad(), seeded_rng(seed, self.device):
            for start in range(0, len(z_arr), batch_size):
                zb = torch.from_numpy(z_arr[start:start + batch_size]).to(self.device)
                ids = self.model.generate(zb, strategy=strategy, temperature=temperature, beam_size=beam_size,
                                          no_repeat_ngram=n)
                # whitespace normalised: one line per sentence, whatever the LM put between words
                texts.extend(" ".join(str(self.model.tokenizer.decode(s, skip_special_tokens=True)).split())
                             for s in ids)
        return texts
