#!/usr/bin/python3
"""Convert a moeserve-generated Hugging Face qwen3_moe directory into a GGUF v3 file for llama.cpp.

    hf_to_gguf.py MODEL_DIR OUT.gguf

Input: config.json (model_type qwen3_moe) and model.safetensors (or sharded
model-*.safetensors with model.safetensors.index.json), tensors in HF naming
(model/weight_names.cc), bf16 / f16 / f32.

Output: a GGUF v3 file that llama.cpp loads as architecture `qwen3moe`, laid out the way
llama.cpp's own convert_hf_to_gguf.py (Qwen3MoeModel) lays it out:

  * tensor names: token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output,
    attn_q_norm, attn_k_norm, ffn_norm, ffn_gate_inp, ffn_gate_exps, ffn_up_exps,
    ffn_down_exps}, output_norm, output (left out when the embeddings are tied);
  * the per-expert gate/up/down matrices stacked over experts: numpy shape
    [n_expert, rows, cols], i.e. GGML ne = (cols, rows, n_expert) (GGML lists dims innermost
    first, the reverse of numpy);
  * no q/k row permutation: Qwen uses NeoX-style RoPE (rotate halves), which is the rope type
    llama.cpp hard-wires for qwen3moe, and that matches HF's rotate_half layout as is;
  * matrices are written in the checkpoint's dtype (bf16 -> GGML type BF16 = 30), 1-D tensors
    (norms) and the router (ffn_gate_inp) as F32, exactly as convert_hf_to_gguf.py keeps them
    (bf16 -> f32 is exact, so the model is unchanged);
  * metadata: qwen3moe.{context_length, embedding_length, block_count, feed_forward_length,
    expert_feed_forward_length, attention.head_count(_kv), attention.key_length/value_length,
    rope.freq_base, attention.layer_norm_rms_epsilon, expert_count, expert_used_count}.
    llama.cpp's qwen3moe graph always renormalises the top-k router weights (norm_w = true is
    hard-coded), so a config with norm_topk_prob = false cannot be represented: refused.
  * tokenizer: the generated models have none, so a synthetic byte-level "gpt2" BPE vocabulary
    of exactly vocab_size entries is written: ids 0..2 are <unk>/<s>/</s>-style control tokens
    placed at config.json's bos/eos ids, then the 256 GPT-2 byte tokens, then unique filler
    strings; one trivial merge. Enough for llama.cpp to load the model and evaluate token ids.

Only the standard library and numpy (Debian's python3-numpy).
"""

import json
import os
import struct
import sys

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
ALIGNMENT = 32

# gguf value types
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY, \
    T_UINT64, T_INT64, T_FLOAT64 = range(13)

# ggml tensor types
GGML_F32, GGML_F16, GGML_BF16 = 0, 1, 30
ST_TO_GGML = {"F32": GGML_F32, "F16": GGML_F16, "BF16": GGML_BF16}
ST_SIZE = {"F32": 4, "F16": 2, "BF16": 2}
# llama_ftype: ALL_F32 = 0, MOSTLY_F16 = 1, MOSTLY_BF16 = 32
FILE_TYPE = {"F32": 0, "F16": 1, "BF16": 32}

# llama_token_type
TOK_NORMAL, TOK_CONTROL = 1, 3


# --------------------------------------------------------------------------- safetensors

class SafeTensors:
    """Lazy reader over one or more safetensors files: name -> (dtype, shape, raw bytes view)."""

    def __init__(self, model_dir):
        index = os.path.join(model_dir, "model.safetensors.index.json")
        if os.path.exists(index):
            with open(index) as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
        else:
            files = ["model.safetensors"]
        self.entries = {}
        self.maps = []
        for fn in files:
            path = os.path.join(model_dir, fn)
            with open(path, "rb") as f:
                (hlen,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(hlen))
            mm = np.memmap(path, dtype=np.uint8, mode="r")
            self.maps.append(mm)
            base = 8 + hlen
            for name, info in header.items():
                if name == "__metadata__":
                    continue
                b, e = info["data_offsets"]
                self.entries[name] = (info["dtype"], list(info["shape"]), mm[base + b:base + e])

    def __contains__(self, name):
        return name in self.entries

    def get(self, name):
        return self.entries[name]


def to_f32(dtype, raw):
    if dtype == "F32":
        return np.frombuffer(raw, dtype="<f4")
    if dtype == "F16":
        return np.frombuffer(raw, dtype="<f2").astype(np.float32)
    if dtype == "BF16":
        u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return u.view(np.float32)
    raise ValueError(f"unsupported dtype {dtype}")


# --------------------------------------------------------------------------- gguf writing

def w_str(out, s):
    b = s.encode("utf-8")
    out += struct.pack("<Q", len(b)) + b


def w_kv(out, key, vtype, value, atype=None):
    w_str(out, key)
    out += struct.pack("<I", vtype)
    w_val(out, vtype, value, atype)


def w_val(out, vtype, value, atype=None):
    if vtype == T_STRING:
        w_str(out, value)
    elif vtype == T_ARRAY:
        out += struct.pack("<IQ", atype, len(value))
        if atype == T_STRING:
            for v in value:
                w_str(out, v)
        else:
            fmt = {T_INT32: "<i", T_UINT32: "<I", T_FLOAT32: "<f"}[atype]
            for v in value:
                out += struct.pack(fmt, v)
    else:
        fmt = {T_UINT8: "<B", T_INT8: "<b", T_UINT16: "<H", T_INT16: "<h", T_UINT32: "<I",
               T_INT32: "<i", T_FLOAT32: "<f", T_BOOL: "<?", T_UINT64: "<Q", T_INT64: "<q",
               T_FLOAT64: "<d"}[vtype]
        out += struct.pack(fmt, value)


def bytes_to_unicode():
    """GPT-2's byte -> printable unicode character map (the byte-level BPE alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def synthetic_vocab(vocab_size, bos, eos):
    """Exactly vocab_size unique tokens: control tokens, 256 byte tokens, fillers."""
    if vocab_size < 256 + 3:
        raise ValueError(f"vocab_size {vocab_size} too small for a byte-level vocabulary")
    tokens = [None] * vocab_size
    types = [TOK_NORMAL] * vocab_size
    specials = {0: "<unk>", bos: "<s>", eos: "</s>"}
    for i, s in specials.items():
        if 0 <= i < vocab_size:
            tokens[i] = s
            types[i] = TOK_CONTROL
    free = (i for i in range(vocab_size) if tokens[i] is None)
    for b in range(256):
        tokens[next(free)] = bytes_to_unicode()[b]
    # one trivial merge ("a" + "b" -> "ab") so the merges array is non-empty
    merges = ["a b"]
    tokens[next(free)] = "ab"
    k = 0
    for i in free:
        tokens[i] = f"<|filler_{k}|>"
        k += 1
    assert len(set(tokens)) == vocab_size
    return tokens, types, merges


def convert(model_dir, out_path, log=print):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    if cfg.get("model_type") != "qwen3_moe":
        raise ValueError(f"model_type {cfg.get('model_type')!r}: only qwen3_moe is supported")
    n_layer = cfg["num_hidden_layers"]
    n_embd = cfg["hidden_size"]
    n_head = cfg["num_attention_heads"]
    n_head_kv = cfg.get("num_key_value_heads", n_head)
    head_dim = cfg.get("head_dim") or n_embd // n_head
    n_expert = cfg["num_experts"]
    n_used = cfg["num_experts_per_tok"]
    n_ff_exp = cfg["moe_intermediate_size"]
    vocab = cfg["vocab_size"]
    tied = bool(cfg.get("tie_word_embeddings", False))
    if cfg.get("mlp_only_layers") or cfg.get("decoder_sparse_step", 1) != 1:
        raise ValueError("dense (mlp_only) layers are not representable in llama.cpp's qwen3moe")
    if not cfg.get("norm_topk_prob", False):
        raise ValueError("norm_topk_prob = false: llama.cpp's qwen3moe always renormalises top-k")
    if cfg.get("rope_scaling"):
        raise ValueError("rope_scaling is not handled by this writer")
    bos = cfg.get("bos_token_id", 1)
    eos = cfg.get("eos_token_id", 2)
    if isinstance(eos, list):
        eos = eos[0]

    st = SafeTensors(model_dir)

    # ---- tensor plan: (gguf name, ggml type, ggml ne (innermost first), [(raw bytes view, src dtype, as_f32)])
    plan = []
    src_dtypes = set()

    def add(gname, hf_names, force_f32=False):
        parts = []
        shape0 = None
        for hn in hf_names:
            dt, shape, raw = st.get(hn)
            src_dtypes.add(dt)
            if shape0 is None:
                shape0 = shape
            elif shape != shape0:
                raise ValueError(f"{hn}: shape {shape} != {shape0}")
            parts.append((raw, dt))
        f32 = force_f32 or len(shape0) == 1
        gtype = GGML_F32 if f32 else ST_TO_GGML[parts[0][1]]
        if not f32 and any(dt != parts[0][1] for _, dt in parts):
            raise ValueError(f"{gname}: mixed dtypes")
        np_shape = ([len(hf_names)] if len(hf_names) > 1 else []) + shape0
        ne = list(reversed(np_shape))
        nbytes = int(np.prod(np_shape)) * (4 if f32 else ST_SIZE[parts[0][1]])
        plan.append((gname, gtype, ne, parts, f32, nbytes))

    add("token_embd.weight", ["model.embed_tokens.weight"])
    for i in range(n_layer):
        p = f"model.layers.{i}."
        b = f"blk.{i}."
        add(b + "attn_norm.weight", [p + "input_layernorm.weight"])
        add(b + "attn_q.weight", [p + "self_attn.q_proj.weight"])
        add(b + "attn_k.weight", [p + "self_attn.k_proj.weight"])
        add(b + "attn_v.weight", [p + "self_attn.v_proj.weight"])
        add(b + "attn_output.weight", [p + "self_attn.o_proj.weight"])
        add(b + "attn_q_norm.weight", [p + "self_attn.q_norm.weight"])
        add(b + "attn_k_norm.weight", [p + "self_attn.k_norm.weight"])
        add(b + "ffn_norm.weight", [p + "post_attention_layernorm.weight"])
        add(b + "ffn_gate_inp.weight", [p + "mlp.gate.weight"], force_f32=True)
        for gg, hh in (("ffn_gate_exps", "gate_proj"), ("ffn_up_exps", "up_proj"),
                       ("ffn_down_exps", "down_proj")):
            add(b + gg + ".weight", [f"{p}mlp.experts.{e}.{hh}.weight" for e in range(n_expert)])
    add("output_norm.weight", ["model.norm.weight"])
    if not tied:
        add("output.weight", ["lm_head.weight"])

    mat_dtypes = src_dtypes - {"F32"} or {"F32"}
    file_type = FILE_TYPE[sorted(mat_dtypes)[0]] if len(mat_dtypes) == 1 else 1

    # ---- metadata
    A = "qwen3moe"
    tokens, types, merges = synthetic_vocab(vocab, bos, eos)
    kv = bytearray()
    n_kv = 0

    def k(key, vtype, value, atype=None):
        nonlocal n_kv
        w_kv(kv, key, vtype, value, atype)
        n_kv += 1

    k("general.architecture", T_STRING, A)
    k("general.type", T_STRING, "model")
    k("general.name", T_STRING, "moeserve " + os.path.basename(os.path.normpath(model_dir)))
    k("general.file_type", T_UINT32, file_type)
    k("general.quantization_version", T_UINT32, 2)
    k("general.alignment", T_UINT32, ALIGNMENT)
    k(f"{A}.context_length", T_UINT32, cfg.get("max_position_embeddings", 32768))
    k(f"{A}.embedding_length", T_UINT32, n_embd)
    k(f"{A}.block_count", T_UINT32, n_layer)
    k(f"{A}.feed_forward_length", T_UINT32, cfg.get("intermediate_size", n_ff_exp * n_used))
    k(f"{A}.expert_feed_forward_length", T_UINT32, n_ff_exp)
    k(f"{A}.attention.head_count", T_UINT32, n_head)
    k(f"{A}.attention.head_count_kv", T_UINT32, n_head_kv)
    k(f"{A}.attention.key_length", T_UINT32, head_dim)
    k(f"{A}.attention.value_length", T_UINT32, head_dim)
    k(f"{A}.rope.freq_base", T_FLOAT32, float(cfg.get("rope_theta", 1e6)))
    k(f"{A}.attention.layer_norm_rms_epsilon", T_FLOAT32, float(cfg.get("rms_norm_eps", 1e-6)))
    k(f"{A}.expert_count", T_UINT32, n_expert)
    k(f"{A}.expert_used_count", T_UINT32, n_used)
    k(f"{A}.expert_weights_norm", T_BOOL, True)  # documentation: the graph hard-wires it
    k("tokenizer.ggml.model", T_STRING, "gpt2")
    k("tokenizer.ggml.pre", T_STRING, "default")
    k("tokenizer.ggml.tokens", T_ARRAY, tokens, T_STRING)
    k("tokenizer.ggml.token_type", T_ARRAY, types, T_INT32)
    k("tokenizer.ggml.merges", T_ARRAY, merges, T_STRING)
    k("tokenizer.ggml.bos_token_id", T_UINT32, bos)
    k("tokenizer.ggml.eos_token_id", T_UINT32, eos)
    k("tokenizer.ggml.add_bos_token", T_BOOL, False)
    k("tokenizer.ggml.add_eos_token", T_BOOL, False)

    # ---- tensor infos
    info = bytearray()
    offset = 0
    offsets = []
    for gname, gtype, ne, parts, f32, nbytes in plan:
        offsets.append(offset)
        w_str(info, gname)
        info += struct.pack("<I", len(ne))
        for d in ne:
            info += struct.pack("<Q", d)
        info += struct.pack("<IQ", gtype, offset)
        offset += (nbytes + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT

    header = bytearray(GGUF_MAGIC + struct.pack("<IQQ", GGUF_VERSION, len(plan), n_kv))
    header += kv
    header += info
    header += b"\0" * ((-len(header)) % ALIGNMENT)

    tmp = out_path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(header)
        data_start = f.tell()
        for (gname, gtype, ne, parts, f32, nbytes), off in zip(plan, offsets):
            assert f.tell() - data_start == off, gname
            written = 0
            for raw, dt in parts:
                if f32 and dt != "F32":
                    buf = to_f32(dt, raw).astype("<f4").tobytes()
                else:
                    buf = memoryview(raw)
                f.write(buf)
                written += len(buf)
            assert written == nbytes, (gname, written, nbytes)
            f.write(b"\0" * ((-nbytes) % ALIGNMENT))
    os.replace(tmp, out_path)
    log(f"wrote {out_path}: {len(plan)} tensors, {n_kv} metadata keys, "
        f"{os.path.getsize(out_path) / 1e9:.3f} GB (arch {A}, {n_layer} layers, "
        f"{n_expert} experts top-{n_used}, vocab {vocab}, matrices {sorted(mat_dtypes)})")


def main(argv):
    if len(argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        print(f"usage: {argv[0]} MODEL_DIR OUT.gguf", file=sys.stderr)
        return 2
    convert(argv[1], argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
