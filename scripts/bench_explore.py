"""Explorer timings: GET /collections/{name}/map cold and cached, PCA and UMAP, both colourings.

Part 1 (real data) adds SST-2 dev sentences (GLUE, 872; encoded by the bundled MiniLM) to a
temporary collection, times the map routes through the app, and checks the sentiment colours
against the gold labels: they must agree as often as the shipped linear head is accurate on
SST-2 dev (81.77, docs/benchmarks.md), since the map reads the same head off the stored vectors.
Part 2 (scale) fills collections with random unit vectors (the map's cost depends on n and the
dimension, not on what the vectors mean) to time 5,000 and 20,000 points.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python scripts/bench_explore.py [--data-dir ../shared/data]
        [--scale 5000 --scale 20000] [--no-umap | --umap-max 5000] [--vae-model DIR --screenshot out.png]

With --screenshot (needs chromium and playwright), the page is opened on the SST-2 collection
in headless Chromium, two points are picked and their interpolation path decoded by
--vae-model, and a screenshot is saved.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def timed_get(client: Any, url: str, **params: Any) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    r = client.get(url, params=params)
    elapsed = time.perf_counter() - start
    if r.status_code != 200:
        raise SystemExit(f"GET {url} {params} → {r.status_code}: {r.text[:300]}")
    return elapsed, r.json()


def map_timings(client: Any, name: str, *, umap: bool, limit: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    runs = [("pca", "cluster"), ("pca", "sentiment")] + ([("umap", "cluster")] if umap else [])
    for method, color in runs:
        cold, body = timed_get(client, f"/collections/{name}/map", method=method, color=color, limit=limit)
        warm, again = timed_get(client, f"/collections/{name}/map", method=method, color=color, limit=limit)
        assert again["cached"] and again["points"] == body["points"]
        out[f"{method}+{color}"] = {"cold_s": round(cold, 3), "cached_s": round(warm, 3), "points": body["count"]}
        print(f"  {name}: {method}+{color}: {body['count']} points, cold {cold:.2f} s, cached {warm:.3f} s",
              flush=True)
    return out


def real_data(client: Any, service: Any, data_dir: Path, umap: bool) -> dict[str, Any]:
    from textlatent.eval.loaders import load_sst2

    dev = load_sst2(data_dir, "dev")
    docs = [{"id": f"dev-{i}", "text": t, "metadata": {"gold": int(y)}}
            for i, (t, y) in enumerate(zip(dev.texts, dev.labels or [], strict=True))]
    service.create_collection("sst2-dev")
    start = time.perf_counter()
    service.add_documents("sst2-dev", docs, check_limit=False)
    add_s = time.perf_counter() - start
    print(f"  added {len(docs)} SST-2 dev sentences in {add_s:.1f} s", flush=True)
    timings = map_timings(client, "sst2-dev", umap=umap, limit=5000)
    body = client.get("/collections/sst2-dev/map", params={"color": "sentiment"}).json()
    gold = {d["id"]: d["metadata"]["gold"] for d in docs}
    agree = sum((p["label"] == "positive") == bool(gold[p["id"]]) for p in body["points"]) / len(body["points"])
    start = time.perf_counter()
    nb = client.get("/collections/sst2-dev/neighbors", params={"id": "dev-0", "k": 10})
    nb_s = time.perf_counter() - start
    assert nb.status_code == 200, nb.text
    print(f"  sentiment colours agree with gold labels on {100 * agree:.2f}% · neighbours {nb_s * 1000:.0f} ms",
          flush=True)
    return {"documents": len(docs), "add_s": round(add_s, 1), "maps": timings,
            "sentiment_agreement_with_gold": round(100 * agree, 2), "neighbors_s": round(nb_s, 3)}


def scale(client: Any, service: Any, n: int, umap: bool) -> dict[str, Any]:
    import numpy as np

    from textlatent.collections import Document

    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(n, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    name = f"random-{n}"
    service.create_collection(name)
    docs = [Document(id=f"r{i}", text=f"random point number {i}") for i in range(n)]
    service.collection(name).upsert(docs, vecs)
    return map_timings(client, name, umap=umap, limit=n)


def screenshot(app: Any, path: Path) -> None:
    import uvicorn
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=args, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/explore?collection=sst2-dev")
            page.wait_for_function("document.querySelectorAll('#map circle.pt').length > 0", timeout=120_000)
            page.select_option("#color", "sentiment")
            page.wait_for_function("document.getElementById('status').textContent.includes('sentiment by')",
                                   timeout=120_000)
            for doc_id in ("dev-1", "dev-3"):
                # the exact element, even where another point overlaps it (a click at its centre would
                # go to whichever circle is drawn on top)
                page.locator(f'#map circle.pt[data-id="{doc_id}"]').dispatch_event("click")
            page.locator("#decode").click()
            page.wait_for_function("document.querySelectorAll('#path li').length > 0 || "
                                   "document.getElementById('path-error').textContent", timeout=120_000)
            page.locator('#map circle.pt[data-id="dev-7"]').hover(force=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(path))
            print("  path:", page.locator("#path li").all_inner_texts() or page.locator("#path-error").inner_text())
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def main() -> None:
    from textlatent.cli_options import positive_int

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--scale", type=positive_int, action="append",
                        help="random-vector collection sizes (repeatable)")
    parser.add_argument("--no-umap", action="store_true")
    parser.add_argument("--umap-max", type=positive_int, default=5000,
                        help="time UMAP only on random collections up to this size (it is slow on random vectors)")
    parser.add_argument("--vae-model", type=Path)
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from api.app import create_app
    from textlatent.config import Settings

    results: dict[str, Any] = {"threads": os.environ.get("OMP_NUM_THREADS", "default")}
    with tempfile.TemporaryDirectory() as root:
        app = create_app(Settings(index_dir=Path(root), device="cpu", vae_model=args.vae_model,
                                  threads=int(os.environ.get("OMP_NUM_THREADS", "1"))))
        with TestClient(app) as client:
            service = app.state.service
            print("real data: SST-2 dev", flush=True)
            results["sst2_dev"] = real_data(client, service, args.data_dir, not args.no_umap)
            for n in [n for n in args.scale or [5000, 20000] if n > 0]:  # --scale 0: none
                print(f"scale: {n} random unit vectors", flush=True)
                results[f"random_{n}"] = scale(client, service, n, not args.no_umap and n <= args.umap_max)
            if args.screenshot:
                screenshot(app, args.screenshot)
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
