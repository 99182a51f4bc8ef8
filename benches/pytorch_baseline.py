#!/usr/bin/env python3
"""PyTorch CPU baseline for Rapport's candle sentence encoder.

Usage:

    python benches/pytorch_baseline.py --model minilm|e5-small --model-dir DIR \
        --texts FILE --threads N [--batch-size 32] [--json] [--dump-vectors OUT.json]

Embeds every line of FILE (one text per line) with mean pooling over the attention mask and
L2 normalisation, under torch.inference_mode(), on the CPU:

  minilm    sentence-transformers SentenceTransformer(DIR, device="cpu"), max_seq_length 512,
            model.encode(texts, batch_size=B) (which sorts by length itself). DIR is a model
            dir as Rapport imports it (config.json, model.safetensors, tokenizer.json, ...).
            The shipped tokenizer.json pads to a fixed 128 and truncates at 128; both are
            switched off in the backend, and sentence-transformers pads each batch to its
            longest text (the padded shapes are recorded and checked).
  e5-small  transformers AutoModel.from_pretrained(DIR) (BertModel) and a fast tokenizer from
            DIR/tokenizer.json (<pad>=1, <s>=0, </s>=2), inputs "query: " + text, truncation at
            512, sorted by token count, batches of B padded to the batch's longest,
            token_type_ids 0, positions 0..L-1; mean pooling + L2 in torch.

Timing: one untimed warm-up batch (the first B texts), then the wall clock of embedding all
texts, tokenisation included. Tokens are real tokens (special tokens included, padding not).

Requirements (a venv outside the repo; the PyPI torch wheel pulls CUDA packages but runs on
CPU without a GPU): torch transformers sentence-transformers tokenizers numpy safetensors.
"""
import argparse
import json
import os
import platform
import re
import sys
import time

import numpy as np
import torch

E5_PREFIX = "query: "
MAX_LEN = 512


# --------------------------------------------------------------------------- environment
def kernel_info():
    """Which CPU math kernels this torch build has, from torch.__config__.show()."""
    cfg = torch.__config__.show()
    parts = []
    m = re.search(r"Math Kernel Library Version ([0-9.]+)", cfg)
    if m:
        parts.append("MKL %s" % m.group(1))
    elif torch.backends.mkl.is_available():
        parts.append("MKL")
    m = re.search(r"MKL-DNN v([0-9.]+)", cfg) or re.search(r"oneDNN v([0-9.]+)", cfg)
    if m:
        parts.append("oneDNN v%s" % m.group(1))
    elif torch.backends.mkldnn.is_available():
        parts.append("oneDNN")
    m = re.search(r"BLAS_INFO=(\w+)", cfg)
    if m:
        parts.append("BLAS_INFO=%s" % m.group(1))
    try:
        cap = torch.backends.cpu.get_cpu_capability()
    except Exception:  # older torch
        m = re.search(r"CPU capability usage: (\w+)", cfg)
        cap = m.group(1) if m else "?"
    parts.append("CPU capability %s" % cap)
    return ", ".join(parts)


def versions():
    import tokenizers
    import transformers
    try:
        import sentence_transformers
        st = sentence_transformers.__version__
    except Exception:
        st = None
    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "sentence_transformers": st,
            "tokenizers": tokenizers.__version__, "numpy": np.__version__}


# --------------------------------------------------------------------------- MiniLM
class MiniLM:
    """sentence-transformers path. Records the shape of every batch it tokenises."""

    def __init__(self, model_dir, batch_size):
        from sentence_transformers import SentenceTransformer
        self.batch_size = batch_size
        self.model = SentenceTransformer(model_dir, device="cpu")
        self.model.max_seq_length = MAX_LEN
        tok = self.model.tokenizer
        # the shipped tokenizer.json pads to a fixed 128 and truncates at 128; transformers
        # resets both per call, but switch them off in the backend so nothing depends on that
        tok._tokenizer.no_padding()
        tok._tokenizer.no_truncation()
        tok.model_max_length = MAX_LEN
        assert self.model.max_seq_length == MAX_LEN
        self.reset_counts()
        # encode() tokenises each batch through model.preprocess (sentence-transformers >= 5)
        # or model.tokenize (older); wrap it to record the padded shapes it feeds the model
        hook = "preprocess" if hasattr(self.model, "preprocess") else "tokenize"
        inner = getattr(self.model, hook)

        def tokenize(texts, *a, **kw):
            feats = inner(texts, *a, **kw)
            mask = feats["attention_mask"]
            self.batches.append(tuple(mask.shape))
            self.tokens += int(mask.sum())
            self.padded += int(mask.numel())
            self.per_batch_longest &= int(mask.sum(1).max()) == mask.shape[1]
            return feats

        setattr(self.model, hook, tokenize)
        mods = [type(m).__name__ for m in self.model]
        assert mods[:2] == ["Transformer", "Pooling"] and "Normalize" in mods, mods
        pool = self.model[1]
        mean = (getattr(pool, "pooling_mode", None) in ("mean", ("mean",))
                or getattr(pool, "pooling_mode_mean_tokens", False))
        assert mean, "pooling is not mean"

    def reset_counts(self):
        self.batches, self.tokens, self.padded, self.per_batch_longest = [], 0, 0, True

    def describe(self):
        return ("sentence-transformers SentenceTransformer(DIR), modules %s, max_seq_length %d, "
                "per-batch longest padding, attn %s"
                % ([type(m).__name__ for m in self.model], self.model.max_seq_length,
                   getattr(self.model[0].auto_model.config, "_attn_implementation", "?")))

    def embed(self, texts):
        v = self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                              normalize_embeddings=False, show_progress_bar=False)
        return v.astype(np.float32)

    def ids(self, texts):
        return self.model.tokenizer(texts, truncation=True, max_length=MAX_LEN, padding=False,
                                    return_attention_mask=False,
                                    return_token_type_ids=False)["input_ids"]


# --------------------------------------------------------------------------- e5-small
class E5Small:
    """transformers BertModel + fast tokenizer, manual length sort / padding / pooling."""

    def __init__(self, model_dir, batch_size):
        from transformers import AutoModel, PreTrainedTokenizerFast
        self.batch_size = batch_size
        # no pooler: only last_hidden_state is used (an export may not ship pooler weights)
        self.model = AutoModel.from_pretrained(model_dir, add_pooling_layer=False)
        self.model.eval()
        assert self.model.config.model_type == "bert", self.model.config.model_type
        assert self.model.dtype == torch.float32, self.model.dtype
        self.tok = PreTrainedTokenizerFast(
            tokenizer_file=os.path.join(model_dir, "tokenizer.json"),
            bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
            cls_token="<s>", sep_token="</s>", mask_token="<mask>",
            model_max_length=MAX_LEN)
        self.tok._tokenizer.no_padding()
        self.tok._tokenizer.no_truncation()
        self.pad_id = self.tok.pad_token_id
        assert self.pad_id == 1, self.pad_id
        assert self.tok.convert_tokens_to_ids(["<s>", "</s>"]) == [0, 2]
        self.reset_counts()

    def reset_counts(self):
        self.batches, self.tokens, self.padded, self.per_batch_longest = [], 0, 0, True

    def describe(self):
        return ("transformers AutoModel (%s, attn %s) + PreTrainedTokenizerFast(tokenizer.json), "
                "prefix %r, truncation %d" % (type(self.model).__name__,
                                              getattr(self.model.config, "_attn_implementation",
                                                      "?"), E5_PREFIX, MAX_LEN))

    def ids(self, texts):
        enc = self.tok([E5_PREFIX + t for t in texts], truncation=True, max_length=MAX_LEN,
                       padding=False, return_attention_mask=False, return_token_type_ids=False)
        return enc["input_ids"]

    def embed(self, texts):
        ids = self.ids(texts)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        out = torch.empty((len(ids), self.model.config.hidden_size), dtype=torch.float32)
        for s in range(0, len(order), self.batch_size):
            idx = order[s:s + self.batch_size]
            L = max(len(ids[i]) for i in idx)
            input_ids = torch.full((len(idx), L), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), L), dtype=torch.long)
            for r, i in enumerate(idx):
                input_ids[r, :len(ids[i])] = torch.tensor(ids[i], dtype=torch.long)
                mask[r, :len(ids[i])] = 1
            self.batches.append((len(idx), L))
            self.tokens += int(mask.sum())
            self.padded += int(mask.numel())
            h = self.model(input_ids=input_ids, attention_mask=mask,
                           token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
            m = mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            out[idx] = torch.nn.functional.normalize(pooled, p=2, dim=-1)
        return out.numpy()


def load(model, model_dir, batch_size):
    if model == "minilm":
        return MiniLM(model_dir, batch_size)
    if model == "e5-small":
        return E5Small(model_dir, batch_size)
    raise SystemExit("unknown model %s" % model)


def setup_threads(n):
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set (e.g. when imported by another script)
        pass


def read_texts(path):
    with open(path, encoding="utf-8") as f:
        texts = [ln.rstrip("\n") for ln in f]
    return [t for t in texts if t.strip()]


def sig7(x):
    return float("%.7g" % x)


# --------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, choices=["minilm", "e5-small"])
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--texts", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--json", action="store_true", help="also print one JSON object")
    ap.add_argument("--dump-vectors", metavar="OUT.json",
                    help="write the vectors (input order, 7 significant digits) to OUT.json")
    args = ap.parse_args()

    setup_threads(args.threads)
    texts = read_texts(args.texts)
    if not texts:
        sys.exit("no texts in %s" % args.texts)
    enc = load(args.model, args.model_dir, args.batch_size)

    with torch.inference_mode():
        enc.embed(texts[:args.batch_size])  # warm-up, untimed
        enc.reset_counts()
        c0 = time.process_time()
        t0 = time.perf_counter()
        vecs = enc.embed(texts)
        secs = time.perf_counter() - t0
        cpu = time.process_time() - c0

    assert vecs.shape[0] == len(texts)
    norms = np.linalg.norm(vecs, axis=1)
    assert np.all(np.abs(norms - 1) < 1e-4), "vectors are not L2-normalised"
    # the counts come from the padded batches actually fed to the model
    assert enc.per_batch_longest and enc.batches, "a batch was padded past its longest text"
    assert max(l for _, l in enc.batches) <= MAX_LEN
    v = versions()
    res = {
        "impl": "pytorch",
        "model": args.model,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "texts": len(texts),
        "tokens": enc.tokens,
        "seconds": round(secs, 4),
        "texts_per_s": round(len(texts) / secs, 2),
        "tokens_per_s": round(enc.tokens / secs, 1),
        "padded_token_fraction": round(1 - enc.tokens / enc.padded, 4),
        # CPU seconds of this process per wall second: close to the thread count when the run
        # had the cores to itself, clearly lower when something else competed for them
        "cpu_per_wall": round(cpu / secs, 2),
        "batches": len(enc.batches),
        "max_batch_len": max(l for _, l in enc.batches),
        "torch": v["torch"],
        "transformers": v["transformers"],
        "sentence_transformers": v["sentence_transformers"],
        "tokenizers": v["tokenizers"],
        "kernels": kernel_info(),
        "how": enc.describe(),
    }
    print("%s: %d texts, %d tokens in %.3f s -> %.1f texts/s, %.0f tokens/s "
          "(threads %d, batch %d, %d batches, padded-token fraction %.3f, max batch len %d, "
          "cpu/wall %.2f)"
          % (args.model, len(texts), enc.tokens, secs, res["texts_per_s"], res["tokens_per_s"],
             args.threads, args.batch_size, len(enc.batches), res["padded_token_fraction"],
             res["max_batch_len"], res["cpu_per_wall"]),
          file=sys.stderr if args.json else sys.stdout)
    print("torch %s, transformers %s, sentence-transformers %s; kernels: %s"
          % (v["torch"], v["transformers"], v["sentence_transformers"], res["kernels"]),
          file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(res))
    if args.dump_vectors:
        with open(args.dump_vectors, "w", encoding="utf-8") as f:
            json.dump({"model": args.model, "model_dir": os.path.abspath(args.model_dir),
                       "how": enc.describe(), "versions": v, "texts": texts,
                       "vectors": [[sig7(x) for x in row] for row in vecs.tolist()]},
                      f, ensure_ascii=False)
            f.write("\n")


if __name__ == "__main__":
    main()
