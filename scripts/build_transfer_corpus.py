"""Training text for a style-transfer VAE that keeps content: PTB train + SST-2 sentences + phrases.

The VAE behind `textlatent transfer` has to decode a moved point back into a sentence that still
says what the source said, so it must learn to invert MiniLM embeddings of movie-review sentences.
Kim's 6,920 SST-2 train sentences alone are too few for that (a decoder overfits them in ~6 epochs,
docs/benchmarks.md), so this script writes a larger corpus, one sentence per line:

* PTB train (42,068 sentences of general English);
* Kim's SST-2 train sentences minus the held-out slice that `textlatent fit-transfer` selects the
  degree on (same size and seed), repeated ``--sst2-copies`` times so the review domain is not
  drowned out;
* GLUE's SST-2 train phrases of at least ``--min-phrase-tokens`` tokens, except those that occur
  inside a held-out sentence (so the held-out slice stays unseen) or repeat a training sentence;

shuffled with a fixed seed, and the held-out sentences as the validation file (`vae train
--valid`, which then chooses the epoch on exactly the sentences fit-transfer holds out)::

    .venv/bin/python scripts/build_transfer_corpus.py --data-dir ../shared/data --out data/transfer
    textlatent vae train --train data/transfer/train.txt --valid data/transfer/valid.txt ...

Nothing of SST-2 dev or test is read.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def build(data_dir: str | Path, out: str | Path, *, holdout: int = 500, seed: int = 0, sst2_copies: int = 3,
          min_phrase_tokens: int = 4, shuffle_seed: int = 1) -> dict[str, int]:
    """Write ``out/train.txt`` and ``out/valid.txt``; return the counts of each part."""
    from textlatent.eval.loaders import load_ptb, load_sst2
    from textlatent.vae.transfer_eval import heldout_split

    kim = load_sst2(data_dir, "train", "kim").texts
    fit_idx, held_idx = heldout_split(len(kim), holdout, seed)
    fit = [kim[i] for i in fit_idx]
    held = [kim[i] for i in held_idx]
    held_padded = [f" {h} " for h in held]
    fit_set = set(fit)
    phrases = sorted(
        p for p in {t.strip() for t in load_sst2(data_dir, "train", "glue").texts}
        if len(p.split()) >= min_phrase_tokens and p not in fit_set and not any(f" {p} " in h for h in held_padded)
    )
    ptb = load_ptb(data_dir, "train")
    train = ptb + fit * sst2_copies + phrases
    random.Random(shuffle_seed).shuffle(train)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    (folder / "valid.txt").write_text("\n".join(held) + "\n", encoding="utf-8")
    return {"ptb": len(ptb), "sst2_sentences": len(fit), "sst2_copies": sst2_copies, "phrases": len(phrases),
            "train_lines": len(train), "train_tokens": sum(len(t.split()) for t in train), "valid": len(held)}


def main(argv: list[str] | None = None) -> None:
    from textlatent.cli_options import positive_int

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", required=True, help="folder for train.txt and valid.txt")
    parser.add_argument("--holdout", type=positive_int, default=500, help="as `fit-transfer --holdout`")
    parser.add_argument("--seed", type=int, default=0, help="as `fit-transfer --seed`")
    parser.add_argument("--sst2-copies", type=positive_int, default=3)
    parser.add_argument("--min-phrase-tokens", type=positive_int, default=4)
    args = parser.parse_args(argv)
    from textlatent.errors import InvalidInputError

    try:
        counts = build(args.data_dir, args.out, holdout=args.holdout, seed=args.seed, sst2_copies=args.sst2_copies,
                       min_phrase_tokens=args.min_phrase_tokens)
    except InvalidInputError as exc:
        parser.exit(2, f"error: {exc}\n")
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
