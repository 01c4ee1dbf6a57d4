"""Retrieval for LLM apps: chunked ingestion, BM25 + dense hybrid search, a trained reranker,
cited prompts within a token budget, and answer generation (local SmolLM2 or a remote endpoint).

Modules: ``chunking`` (token-aware windows with offsets), ``ingest`` (sources → chunks →
collection), ``bm25`` (bm25s index and the per-collection sidecar), ``fusion`` (RRF, weighted),
``search`` (the three modes, reranking), ``rerank`` (cross-encoder training and use), ``rag``
(the cited prompt), ``generate_llm`` (answers).
Heavy libraries load inside functions, so importing this package is cheap.
"""
