#!/usr/bin/env python3
"""Reproduce the flags-dev selection (300 tweets from the whole complaints corpus), its
dev/held_back halves and each row's corpus split, and check them against labels.csv.

Usage: python3 choose.py $RAPPORT_CORPUS

Reads $RAPPORT_CORPUS/labelled/complaints/train.csv (the texts are not in the repo; see
GUIDELINES.md) and labels.csv next to this script. Prints one line per selected tweet
(tweet_id,chosen_by,corpus_split,half) and a summary, and exits 1 if anything differs
from labels.csv.

The three labels come from reading each tweet, not from this script. The halves are
stratified by label pattern, so the script reads the labels from labels.csv for that.
(The file used to be called select.py, which shadowed the standard library module.)
"""
import csv
import hashlib
import itertools
import os
import random
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
LABELS = os.path.join(HERE, "labels.csv")
FLAGS = ("allegation", "churn_threat", "evasive_reply")
COLUMNS = ("tweet_id", "half", "chosen_by", "corpus_split") + FLAGS
N_KEYWORD = 200
N_RANDOM = 100
SEED_RANDOM = 16
SEED_HALVES = 17

# Primary patterns: words and phrases for deception and for leaving. Every row that
# matches one of them is taken. Matched with re.search on the lower-cased text.
PRIMARY = [
    # deception
    r"\blie\b", r"\blied\b", r"\blies\b", r"\blying\b", r"\bliars?\b",
    r"\bscam", r"\bmisled\b", r"\bmislead", r"\bfalse(ly)? advertis", r"\bfraud",
    r"\bcheat", r"\bcon artists?\b", r"\brip(ped)? ?-?off\b", r"\bripoff", r"\bbait",
    r"\bdeceiv", r"\bdecept", r"\bdishonest", r"\bhidden (fee|charge|cost)",
    r"\bpromised?\b", r"not as advertised", r"\bshady\b", r"\bextort",
    r"hiding the truth", r"\btrick", r"\bbogus\b", r"\bmisrepresent",
    # leaving
    r"\bnever again\b", r"\bnever (buy|use|fly|order|shop|shopping|going)",
    r"\bnever\b.{0,40}\bagain\b", r"\b(won'?t|wont|will not)\b.{0,30}\bagain\b",
    r"\blast time\b", r"\blost a customer\b", r"\blost my business\b", r"\bdone with\b",
    r"\btaking my (business|money)\b", r"\bgoing (to go )?elsewhere\b", r"\bswitch",
    r"\bcancel", r"\bleaving\b", r"\bleave you\b",
    r"\b(won'?t|wont|will not) be (back|buying|using|flying|ordering)\b",
    r"\bnot (coming|going) back\b", r"\bstop (using|buying|ordering|flying|shopping)",
    r"\bno longer (use|using|buy|buying|a customer|shop)",
    r"\b(another|other|different) (company|provider|carrier|airline|bank|store|network"
    r"|service|brand)\b",
    r"\b(buy|order|get) from .* instead\b", r"\bunsubscrib", r"\bgood ?bye\b",
    # added after searching the corpus for other ways of saying the same
    r"\b(using|use|buy|buying|fly|flying|order|ordering|shop|shopping)\b.{0,30}\bagain\b",
    r"\bfrom now on\b", r"\bshopping around\b", r"\b(final|last) straw\b",
    r"\b(not|won'?t|wont|never)\b.{0,20}\brenew", r"\bnot loyal\b",
    r"\bport(ing)? (my|our) number", r"\bwhy (would|should) (i|anyone|we)\b",
    r"\brobbers?\b|\brobbing\b|\bthie(f|ves)\b",
    r"\bmatch(es)? (its|the) description|\bnot as described\b",
]
# Broad cues: weaker hints. Rows that match no primary pattern but match a cue or a
# competitor/brand name fill the keyword stratum up to N_KEYWORD rows.
CUES = [
    r"\badvertis", r"\bbye\b", r"\bwaste of money\b", r"\bwasting (my )?money\b",
    r"\bany ?more\b", r"\bloyal", r"\bcompetit", r"\belsewhere\b", r"\binstead\b",
    r"\bthe truth\b", r"\bhonest", r"\bfalse\b",
]
NAMES = (
    r"\b(amazon|walmart|target|verizon|at&t|att|t-?mobile|sprint|comcast|xfinity|spectrum"
    r"|southwest|delta|united|american airlines|jetblue|geico|progressive|state farm"
    r"|best ?buy|ebay|costco|kroger|lyft|uber|netflix|hulu|fedex|ups|usps|dhl|apple|samsung)\b"
)


def split_of(text):
    """The team's split rule: sha256 of the stripped text, first 8 bytes big-endian, mod 100."""
    t = text.strip()
    h = int.from_bytes(hashlib.sha256(t.encode("utf-8")).digest()[:8], "big")
    r = h % 100
    return "test" if r < 20 else ("dev" if r < 30 else "train")


def n_hits(patterns, text):
    t = text.lower()
    return sum(bool(re.search(p, t)) for p in patterns)


def sha_hex(tweet_id):
    return hashlib.sha256(tweet_id.encode("utf-8")).hexdigest()


def read_corpus(corpus):
    path = os.path.join(corpus, "labelled", "complaints", "train.csv")
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))  # tweet_id stays a string


def select(rows):
    """Return (chosen, stats): chosen maps tweet_id -> 'keyword' | 'random'."""
    primary = [r["tweet_id"] for r in rows if n_hits(PRIMARY, r["text"])]  # corpus order
    broad = [r for r in rows
             if not n_hits(PRIMARY, r["text"])
             and (n_hits(CUES, r["text"]) or re.search(NAMES, r["text"].lower()))]
    # rows matching more cues first (name-only rows have 0 cues), ties by sha256 of the id
    broad.sort(key=lambda r: (-n_hits(CUES, r["text"]), sha_hex(r["tweet_id"])))
    broad_taken = [r["tweet_id"] for r in broad[:max(0, N_KEYWORD - len(primary))]]
    keyword = primary + broad_taken
    taken = set(keyword)
    rest = [r["tweet_id"] for r in rows if r["tweet_id"] not in taken]  # corpus order
    rand = random.Random(SEED_RANDOM).sample(rest, N_RANDOM)
    chosen = {i: "keyword" for i in keyword}
    chosen.update({i: "random" for i in rand})
    stats = {"rows": len(rows), "primary": len(primary), "broad_pool": len(broad),
             "broad_taken": len(broad_taken), "rest": len(rest)}
    return chosen, stats, set(primary)


def halves(ids, pattern):
    """Split ids into dev / held_back, stratified by label pattern.

    ids are sorted numerically and shuffled with random.Random(17); each pattern group keeps
    that shuffled order and its first k go to dev. Even groups split exactly. For odd groups
    the extra row goes to dev or held_back, choosing (by trying every combination) first
    the one that splits each label's positives as evenly as possible with any extra in
    held_back, then the one closest to equal half sizes (extra in held_back), then the one
    that puts the extra in held_back for the earliest groups in sorted pattern order.
    """
    order = sorted(ids, key=int)
    random.Random(SEED_HALVES).shuffle(order)
    groups = {}
    for i in order:
        groups.setdefault(pattern[i], []).append(i)
    keys = sorted(groups)
    odd = [p for p in keys if len(groups[p]) % 2]
    n_labels = len(next(iter(pattern.values()))) if pattern else 0
    total = len(ids)
    best = None
    for bits in itertools.product((1, 0), repeat=len(odd)):  # 1: extra to held_back
        extra_held = dict(zip(odd, bits))
        dev_n = held_n = 0
        dev_pos, held_pos = [0] * n_labels, [0] * n_labels
        for p in keys:
            g = len(groups[p])
            d = g // 2 + (1 if p in extra_held and not extra_held[p] else 0)
            dev_n += d
            held_n += g - d
            for k in range(n_labels):
                dev_pos[k] += d * p[k]
                held_pos[k] += (g - d) * p[k]
        label_err = sum(abs((held_pos[k] - dev_pos[k]) - (dev_pos[k] + held_pos[k]) % 2)
                        for k in range(n_labels))
        size_err = abs((held_n - dev_n) - total % 2)
        key = (label_err, size_err, tuple(-b for b in bits))
        if best is None or key < best[0]:
            best = (key, extra_held)
    extra_held = best[1] if best else {}
    half = {}
    for p in keys:
        g = groups[p]
        k = len(g) // 2 + (1 if p in extra_held and not extra_held[p] else 0)
        for n, i in enumerate(g):
            half[i] = "dev" if n < k else "held_back"
    return half


def main():
    corpus = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RAPPORT_CORPUS")
    if not corpus:
        sys.exit("usage: python3 choose.py $RAPPORT_CORPUS")
    rows = read_corpus(corpus)
    text = {r["tweet_id"]: r["text"] for r in rows}
    chosen, stats, primary = select(rows)
    with open(LABELS, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        header = tuple(reader.fieldnames or ())
        lab = {r["tweet_id"]: r for r in reader}
    problems = []
    if header != COLUMNS:
        problems.append(f"labels.csv header is {','.join(header)}, expected {','.join(COLUMNS)}")
    listed = [r for r in lab]
    if listed != sorted(listed, key=int):
        problems.append("labels.csv is not sorted by numeric tweet_id")
    if set(lab) != set(chosen):
        problems.append(f"ids differ: {len(set(chosen) - set(lab))} selected but not in "
                        f"labels.csv, {len(set(lab) - set(chosen))} in labels.csv but not selected")
    common = [i for i in chosen if i in lab]
    for i in common:
        for k in FLAGS:
            if lab[i].get(k) not in ("0", "1"):
                problems.append(f"{i}: {k} is {lab[i].get(k)!r}, expected 0 or 1")
    pattern = {i: tuple(int(lab[i][k] == "1") for k in FLAGS) for i in common}
    half = halves(common, pattern)
    print("tweet_id,chosen_by,corpus_split,half")
    for i in sorted(common, key=int):
        split = split_of(text[i])
        print(f"{i},{chosen[i]},{split},{half[i]}")
        for col, want in (("chosen_by", chosen[i]), ("corpus_split", split), ("half", half[i])):
            if lab[i][col] != want:
                problems.append(f"{i}: {col} is {lab[i][col]} in labels.csv, {want} here")

    def count(pred):
        return sum(1 for i in common if pred(i))
    out = sys.stderr
    print(f"# corpus {stats['rows']} rows; keyword {stats['primary']} primary + "
          f"{stats['broad_taken']} of {stats['broad_pool']} broad-only; random {N_RANDOM} of "
          f"{stats['rest']}; selected {len(chosen)}", file=out)
    print(f"# halves: dev {count(lambda i: half[i] == 'dev')}, held_back "
          f"{count(lambda i: half[i] == 'held_back')}", file=out)
    for n, k in enumerate(FLAGS):
        parts = []
        for name, pred in (("dev", lambda i: half[i] == "dev"),
                           ("held_back", lambda i: half[i] == "held_back"),
                           ("primary", lambda i: i in primary),
                           ("broad", lambda i: chosen[i] == "keyword" and i not in primary),
                           ("random", lambda i: chosen[i] == "random")):
            parts.append(f"{name} {count(lambda i: pred(i) and pattern[i][n])}")
        print(f"# {k}: {count(lambda i: pattern[i][n])} positives ({', '.join(parts)})", file=out)
    if problems:
        print("MISMATCH with labels.csv:", *problems[:20], sep="\n  ", file=out)
        if len(problems) > 20:
            print(f"  ... and {len(problems) - 20} more", file=out)
        sys.exit(1)
    print("# OK: selection, corpus_split and halves match labels.csv", file=out)


if __name__ == "__main__":
    main()
