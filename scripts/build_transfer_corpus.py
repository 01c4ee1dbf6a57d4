"""Training text for a style-transfer VAE that keeps content: PTB train + SST-2 sentences + phrases.

The VAE behind `textlatent transfer` has to decode a moved point back into a sentence that still
says what the source said, so it must learn to invert MiniLM embeddings of movie-review sentences.
Kim's 6,920 SST-2 train sentences alone are too few for that (a decoder overfits them in ~6 epochs,
docs/benchmarks.md), so this script writes a larger corpus, one sentence per line:

* PTB train (42,068 sentences of general English);
* Kim's SST-2 train sentences minus the held-out slice that `textlatent fit-transfer` selects the
  degree on (same size and seed) and minus any other copy of a held-out sentence, written
  ``--sst2-copies`` times (default once: three copies, the session-16 corpus, made the decoder
  learn them by heart sooner, and its held-out transfer score was lower, docs/benchmarks.md);
* GLUE's SST-2 train phrases of at least ``--min-phrase-tokens`` tokens, except those that occur
  inside a held-out sentence or share 6 consecutive tokens with one (so the held-out slice stays
  unseen; Kim's ``-lrb-``, ``\\/`` escapes are undone for the comparison, as GLUE writes ``(``, ``/``)
  or repeat a training sentence;

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

_KIM_ESCAPES = (("-lrb-", "("), ("-rrb-", ")"), ("\\/", "/"), ("\\*", "*"))  # Kim's files escape what GLUE writes
OVERLAP = 6  # a phrase sharing this many consecutive tokens with a held-out sentence is left out


def comparable(text: str) -> list[str]:
    """Tokens of ``text`` with Kim's escapes undone, so Kim sentences and GLUE phrases compare."""
    for escaped, plain in _KIM_ESCAPES:
        text = text.replace(escaped, plain)
    return text.split()


def build(data_dir: str | Path, out: str | Path, *, holdout: int = 500, seed: int = 0, sst2_copies: int = 1,
          min_phrase_tokens: int = 4, shuffle_seed: int = 1) -> dict[str, int]:
    """Write ``out/train.txt`` and ``out/valid.txt``; return the counts of each part.

    A GLUE phrase is left out when, compared with Kim's escapes undone, it occurs inside a held-out
    sentence, shares ``OVERLAP`` consecutive tokens with one (spelling variants: "savour" / "savor"),
    or repeats a training sentence. Both files are written next to their final names and then renamed,
    so a failure leaves no half-written corpus."""
    from textlatent.eval.loaders import load_ptb, load_sst2
    from textlatent.vae.transfer_eval import heldout_split

    kim = load_sst2(data_dir, "train", "kim").texts
    fit_idx, held_idx = heldout_split(len(kim), holdout, seed)
    held = [kim[i] for i in held_idx]
    held_tokens = [comparable(h) for h in held]
    held_joined = [" ".join(t) for t in held_tokens]
    held_set = set(held_joined)
    # Kim's train file repeats a few short sentences ("too bad ."); a copy outside the slice is left out too
    fit = [kim[i] for i in fit_idx if " ".join(comparable(kim[i])) not in held_set]
    held_padded = [f" {h} " for h in held_joined]
    held_grams = {tuple(t[i:i + OVERLAP]) for t in held_tokens for i in range(len(t) - OVERLAP + 1)}
    fit_set = {" ".join(comparable(t)) for t in fit}

    def kept(phrase: str) -> bool:
        tokens = comparable(phrase)
        joined = " ".join(tokens)
        return (len(tokens) >= min_phrase_tokens and joined not in fit_set
                and not any(f" {joined} " in h for h in held_padded)
                and not any(tuple(tokens[i:i + OVERLAP]) in held_grams for i in range(len(tokens) - OVERLAP + 1)))

    phrases = sorted(p for p in {t.strip() for t in load_sst2(data_dir, "train", "glue").texts} if kept(p))
    ptb = load_ptb(data_dir, "train")
    train = ptb + fit * sst2_copies + phrases
    random.Random(shuffle_seed).shuffle(train)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    files = {"train.txt": train, "valid.txt": held}
    for name, lines in files.items():
        (folder / f"{name}.tmp").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name in files:
        (folder / f"{name}.tmp").replace(folder / name)
    return {"ptb": len(ptb), "sst2_sentences": len(fit), "sst2_copies": sst2_copies, "phrases": len(phrases),
            "train_lines": len(train), "train_tokens": sum(len(t.split()) for t in train), "valid": len(held)}


def main(argv: list[str] | None = None) -> None:
    from textlatent.cli_options import non_negative_int, positive_int

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", required=True, help="folder for train.txt and valid.txt")
    parser.add_argument("--holdout", type=positive_int, default=500, help="as `fit-transfer --holdout`")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="as `fit-transfer --seed`")
    parser.add_argument("--sst2-copies", type=positive_int, default=1)
    parser.add_argument("--min-phrase-tokens", type=positive_int, default=4)
    args = parser.parse_args(argv)
    from textlatent.errors import TextLatentError

    try:
        counts = build(args.data_dir, args.out, holdout=args.holdout, seed=args.seed, sst2_copies=args.sst2_copies,
                       min_phrase_tokens=args.min_phrase_tokens)
    except (TextLatentError, OSError) as exc:
        parser.exit(2, f"error: {exc}\n")
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
