"""Bounds on what a client may send to the latent space, in a module of their own (no numpy or
torch), so the CLI can declare them in its options without loading the library at start-up."""

MAX_Z_ABS = 1e3  # largest |component| of a z a client may send (priors are N(0, I) or fitted near it)
MAX_SEED = 2**31 - 1  # largest decoding or sampling seed
MAX_STEPS = 50  # most points on an interpolation path
MAX_DEGREE = 16.0  # furthest style-transfer move, in margins of the latent classifier: a 128-d latent needed
# more than 8 on the held-out slice (docs/benchmarks.md, style transfer, session 16)
MAX_NO_REPEAT_NGRAM = 10  # largest n of `no_repeat_ngram` (decoding without repeated n-grams)
MAX_CANDIDATES = 64  # most decodes of one move (`candidates`)
MAX_MOVES = 16  # most moves content reranking decodes (`moves`)
CONTENT_STEPS = 8  # content reranking's default `moves`: it decodes at degree·j/8, j = 1 … 8, and keeps the candidate
# nearest the source among those at p(target) ≥ min_p_target (default CONTENT_THRESHOLD)
CONTENT_THRESHOLD = 0.8  # content reranking's default p(target) a candidate needs (textlatent.vae.transfer)
# Both chosen on the held-out train slice with 64 candidates per move, then read once on SST-2 dev (docs/benchmarks.md,
# style transfer, session 19; session 18 shipped 4 moves and 0.9)
