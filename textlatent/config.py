"""Settings shared by the library, the CLI and the API.

Every field can be set from the environment with the ``TEXTLATENT_`` prefix (for example
``TEXTLATENT_INDEX_DIR=/srv/indexes``) or from a ``.env`` file in the working directory.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TEXTLATENT_", env_file=".env", extra="ignore")

    index_dir: Path = Field(Path("indexes"), description="Folder holding one sub-folder per collection.")
    model: str | None = Field(
        None,
        description="Sentence-transformers model folder to serve; empty means the bundled all-MiniLM-L6-v2.",
    )
    sentiment_model: str | None = Field(
        None,
        description="Sentiment model folder for /sentiment and `score`; empty means the bundled SST-2 linear head.",
    )
    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$",
                        description="'auto' (cuda when available, else cpu), 'cpu', 'mps', 'cuda', 'cuda:1'...")
    threads: int | None = Field(None, ge=1, description="CPU threads for torch; unset leaves torch's default.")
    precision: Literal["auto", "fast", "fp32", "bf16"] = Field(
        "auto", description="Encoder arithmetic: 'auto' is bf16 autocast on cuda and fp32 on the CPU; 'fast' is "
        "bf16 wherever the hardware computes it natively (cuda, CPUs with AVX512-BF16 or AMX), else fp32."
    )
    batch_size: int = Field(64, ge=1, le=4096, description="Encoder batch size.")
    max_batch: int = Field(
        2048, ge=1, description="Most texts (or documents) one request may carry; more gets HTTP 413."
    )
    max_request_bytes: int = Field(
        32 * 1024 * 1024, ge=1024, description="Largest request body accepted; more gets HTTP 413."
    )
    max_k: int = Field(1000, ge=1, description="Largest k a search may ask for.")
    api_keys: str = Field(
        "", description="Comma-separated API keys; when set, every route but /healthz needs a Bearer key."
    )
    vae_model: Path | None = Field(
        None, description="Trained text VAE folder served by the /latent routes (`textlatent vae train --out`)."
    )
    preload: bool = Field(True, description="Load the default encoder when the API starts.")
    # Retrieval and RAG (textlatent/retrieval): a trained reranker, and where answers are generated.
    reranker: str | None = Field(None, description="Cross-encoder folder from `textlatent rerank train`; "
                                 "enables rerank=true in searches and /rag/query.")
    llm_url: str | None = Field(None, description="OpenAI-compatible chat-completions URL for RAG answers "
                                "(e.g. http://host:8080/v1/chat/completions); empty means the local SmolLM2.")
    llm_model: str = Field("default", description="`model` sent to the remote chat-completions endpoint.")
    llm_api_key: str = Field("", description="Bearer key for the remote chat-completions endpoint.")
    llm_timeout: float = Field(120.0, gt=0, description="Seconds to wait for the remote endpoint.")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)

    def api_key_list(self) -> list[str]:
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
