"""Exact inner-product search in torch, for GPUs that the installed FAISS build cannot use.

The CPU wheel of FAISS (the default install) has no GPU code; with a CUDA torch present,
flat collections are still searched on the GPU by this class. It also runs on the CPU,
which is how the tests check it against FAISS.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class TorchFlatSearcher:
    """Snapshot of an ``IndexIDMap2(IndexFlatIP)`` held as torch tensors on ``device``."""

    def __init__(self, index: Any, device: str) -> None:
        import faiss
        import torch

        if not isinstance(index, faiss.IndexIDMap2) or not isinstance(
            flat := faiss.downcast_index(index.index), faiss.IndexFlat
        ):
            raise TypeError("TorchFlatSearcher only handles flat indexes")
        n = index.ntotal
        vectors = flat.reconstruct_n(0, n) if n else np.zeros((0, index.d), dtype=np.float32)
        self.device = device
        self.vectors = torch.from_numpy(np.ascontiguousarray(vectors)).to(device)
        self.ids = torch.from_numpy(faiss.vector_to_array(index.id_map).astype(np.int64)).to(device)

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).to(self.device)
            scores = q @ self.vectors.T
            if allowed is not None:
                keep = torch.isin(self.ids, torch.from_numpy(allowed).to(self.device))
                scores[:, ~keep] = float("-inf")
            k = min(k, scores.shape[1])
            if k == 0:
                empty = np.full((len(queries), 0), -1, dtype=np.int64)
                return empty.astype(np.float32), empty
            top = scores.topk(k, dim=1)
            keys = self.ids[top.indices]
            keys[torch.isinf(top.values)] = -1
            return top.values.float().cpu().numpy(), keys.cpu().numpy()
