#!/usr/bin/python3
"""Numpy reference forward pass for HF Qwen3-MoE, Qwen2-MoE, OLMoE and Mixtral checkpoints
(one sequence, no KV cache).

Written from the semantics of transformers' modeling_qwen3_moe.py / modeling_qwen2_moe.py /
modeling_olmoe.py / modeling_mixtral.py (eager attention path, float32 model), NOT from moeserve's code:

  h = embed_tokens[ids]
  per layer:
    x  = RMSNorm(h; input_layernorm)                      # x * rsqrt(mean(x^2)+eps) * w
    q,k,v = x Wq^T, x Wk^T, x Wv^T
    qwen2_moe: + q_proj.bias / k_proj.bias / v_proj.bias (config qkv_bias, default True; o_proj has none)
    olmoe:     q = RMSNorm_full(q; q_norm [heads*head_dim]), k = RMSNorm_full(k; k_norm [kv_heads*head_dim])
               over the WHOLE projection width (before the head reshape); then clip_qkv clamp if set
    -> [T, heads, head_dim]
    qwen3_moe: q = RMSNorm_head_dim(q; q_norm), k = RMSNorm_head_dim(k; k_norm)   (before RoPE)
    RoPE (NeoX rotate_half; inv_freq = 1/theta^(arange(0,d,2)/d); emb = cat(freqs, freqs)),
        positions 0..T-1
    GQA: query head h uses kv head h // (heads/kv_heads)  (== repeat_kv)
    softmax(q k^T / sqrt(head_dim) + causal mask) v  -> o_proj ; h += .
    x  = RMSNorm(h; post_attention_layernorm)
    MoE: p = softmax(x Wg^T) over ALL experts; top-k of p (descending; ties -> lower expert id);
         qwen3_moe/qwen2_moe/olmoe: renormalise iff norm_topk_prob (default False); mixtral: always;
         out = sum_j w_j * down_j(silu(gate_j x) * up_j x)
         qwen2_moe: out += sigmoid(x . shared_expert_gate) * shared_expert(x)   (shared MLP of width
                    shared_expert_intermediate_size)
         h += out
    (qwen3_moe/qwen2_moe layers in mlp_only_layers or with (i+1) % decoder_sparse_step != 0 use the
     dense MLP mlp.{gate,up,down}_proj of width intermediate_size; olmoe and mixtral: every layer MoE)
  logits = RMSNorm(h; model.norm) lm_head^T   (lm_head = embed_tokens when tie_word_embeddings)

Precision: weights are decoded exactly from the file (bf16 -> f32 by <<16, f16 via numpy) and the
whole computation is carried out in float64 by default (compute_dtype=np.float64), i.e. this is a
high-precision evaluation of the HF float32 forward; pass compute_dtype=np.float32 to run every op
in float32 like HF does. Logits are returned as float32 [num_tokens, vocab].
"""

import argparse
import json
import os
import struct
import sys
from typing import Dict, List, Optional

import numpy as np

ST_DTYPES = {"BF16": 2, "F16": 2, "F32": 4}


# ----------------------------------------------------------------------------
# safetensors reading (own implementation)
# ----------------------------------------------------------------------------

class LoadError(Exception):
    pass


def read_safetensors(path: str) -> Dict[str, np.ndarray]:
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise LoadError(f"{path}: file shorter than 8 bytes")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise LoadError(f"{path}: header length {n} past end of file")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LoadError(f"{path}: bad JSON header: {e}")
    data = blob[8 + n:]
    out = {}
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = info["dtype"]
        shape = tuple(int(s) for s in info["shape"])
        b, e = (int(v) for v in info["data_offsets"])
        if dt not in ST_DTYPES:
            raise LoadError(f"{path}: {name}: unsupported dtype {dt}")
        nel = int(np.prod(shape, dtype=np.int64))
        if not (0 <= b <= e <= len(data)):
            raise LoadError(f"{path}: {name}: data_offsets {b},{e} out of range ({len(data)})")
        if e - b != nel * ST_DTYPES[dt]:
            raise LoadError(f"{path}: {name}: byte size {e - b} != {nel} x {dt}")
        spans.append((b, e, name))
        raw = data[b:e]
        if dt == "F32":
            arr = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        elif dt == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        else:  # BF16
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        out[name] = arr.reshape(shape)
    spans.sort()
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise LoadError(f"{path}: tensors {n0} and {n1} overlap")
    return out


def load_weights(model_dir: str) -> Dict[str, np.ndarray]:
    idx = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            wm = json.load(f)["weight_map"]
        out = {}
        for fn in sorted(set(wm.values())):
            part = read_safetensors(os.path.join(model_dir, fn))
            for k, v in part.items():
                if wm.get(k) != fn:
                    raise LoadError(f"{fn}: tensor {k} not mapped to this shard in index")
                out[k] = v
        missing = set(wm) - set(out)
        if missing:
            raise LoadError(f"index names tensors not found in shards: {sorted(missing)[:3]}")
        return out
    return read_safetensors(os.path.join(model_dir, "model.safetensors"))


def load_config(model_dir: str) -> dict:
    with open(os.path.join(model_dir, "config.json")) as f:
        return json.load(f)


# ----------------------------------------------------------------------------
# building blocks (exposed for the self tests)
# ----------------------------------------------------------------------------

def rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    var = np.mean(x * x, axis=-1, keepdims=True)
    return (x / np.sqrt(var + eps)) * w.astype(x.dtype)


def rope_cos_sin(positions: np.ndarray, dim: int, theta: float, dtype=np.float64):
    inv_freq = 1.0 / (theta ** (np.arange(0, dim, 2, dtype=np.int64).astype(dtype) / dim))
    freqs = positions.astype(dtype)[:, None] * inv_freq[None, :]          # [T, dim/2]
    emb = np.concatenate([freqs, freqs], axis=-1)                        # [T, dim]
    return np.cos(emb).astype(dtype), np.sin(emb).astype(dtype)


def rotate_half(x: np.ndarray) -> np.ndarray:
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def apply_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """x: [T, heads, D]; cos/sin: [T, D]."""
    return x * cos[:, None, :] + rotate_half(x) * sin[:, None, :]


def softmax(x: np.ndarray, axis=-1) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axis, keepdims=True)


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def causal_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, scaling: float) -> np.ndarray:
    """q: [T, nq, D], k/v: [T, nkv, D] -> [T, nq, D]; GQA via repeat_kv semantics."""
    T, nq, D = q.shape
    nkv = k.shape[1]
    rep = nq // nkv
    kr = np.repeat(k, rep, axis=1)  # head h -> kv head h // rep (same as HF repeat_kv)
    vr = np.repeat(v, rep, axis=1)
    scores = np.einsum("ihd,jhd->hij", q, kr) * scaling                 # [nq, T, T]
    mask = np.triu(np.ones((T, T), dtype=bool), k=1)
    scores = np.where(mask[None], -np.inf, scores)
    p = softmax(scores, axis=-1)
    return np.einsum("hij,jhd->ihd", p, vr)


def route(router_logits: np.ndarray, top_k: int, renormalize: bool):
    """HF routing: softmax over all experts -> topk (descending) -> optional renormalisation.
    Returns (indices [T,k], weights [T,k], margin [T]) where margin = p_k - p_{k+1}."""
    p = softmax(router_logits, axis=-1)
    order = np.argsort(-p, axis=-1, kind="stable")  # ties -> lower expert index first
    idx = order[:, :top_k]
    w = np.take_along_axis(p, idx, axis=-1)
    if top_k < p.shape[-1]:
        nxt = np.take_along_axis(p, order[:, top_k:top_k + 1], axis=-1)[:, 0]
        margin = w[:, -1] - nxt
    else:
        margin = np.full(p.shape[0], np.inf)
    if renormalize:
        w = w / np.sum(w, axis=-1, keepdims=True)
    return idx, w, margin


def moe_block(x, gate_w, experts, top_k, renormalize, stats=None):
    """experts: list of (w_gate [F,H], w_up [F,H], w_down [H,F])."""
    logits = x @ gate_w.T
    idx, w, margin = route(logits, top_k, renormalize)
    if stats is not None:
        stats.setdefault("min_route_margin", np.inf)
        stats["min_route_margin"] = min(stats["min_route_margin"], float(np.min(margin)))
    out = np.zeros_like(x)
    for e, (wg, wu, wd) in enumerate(experts):
        rows, slot = np.nonzero(idx == e)
        if rows.size == 0:
            continue
        xe = x[rows]
        ye = (silu(xe @ wg.T) * (xe @ wu.T)) @ wd.T
        out[rows] += ye * w[rows, slot][:, None]
    return out


def dense_mlp(x, wg, wu, wd):
    return (silu(x @ wg.T) * (x @ wu.T)) @ wd.T


def sigmoid(x: np.ndarray) -> np.ndarray:
    # numerically safe for large |x| (sigmoid(-inf) == 0 exactly)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(x >= 0, 1.0 / (1.0 + np.exp(-x)), np.exp(x) / (1.0 + np.exp(x)))


def shared_expert(x, wg, wu, wd, gate_w):
    """Qwen2-MoE shared expert: sigmoid(shared_expert_gate(x)) * shared_expert(x); gate_w: [1, H]."""
    return sigmoid(x @ gate_w.T) * dense_mlp(x, wg, wu, wd)


# ----------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------

class HFReference:
    def __init__(self, model_dir: str, compute_dtype=np.float64, config: Optional[dict] = None,
                 weights: Optional[Dict[str, np.ndarray]] = None):
        self.cfg = config if config is not None else load_config(model_dir)
        self.w = weights if weights is not None else load_weights(model_dir)
        self.dt = compute_dtype
        c = self.cfg
        self.arch = c["model_type"]
        if self.arch not in ("qwen3_moe", "mixtral", "qwen2_moe", "olmoe"):
            raise ValueError(f"unsupported model_type {self.arch}")
        self.H = c["hidden_size"]
        self.L = c["num_hidden_layers"]
        self.nq = c["num_attention_heads"]
        self.nkv = c.get("num_key_value_heads") or self.nq
        if self.arch == "olmoe":
            self.D = self.H // self.nq          # OlmoeAttention: head_dim = hidden_size // num_heads
        else:
            self.D = c.get("head_dim") or self.H // self.nq
        self.eps = c["rms_norm_eps"]
        self.theta = c.get("rope_theta", 10000.0)
        self.V = c["vocab_size"]
        self.tied = bool(c.get("tie_word_embeddings", False))
        self.top_k = c["num_experts_per_tok"]
        self.mlp_only = set()
        self.sparse_step = 1
        self.qkv_bias = False
        self.clip_qkv = None
        if self.arch in ("qwen3_moe", "qwen2_moe"):
            self.E = c["num_experts"]
            self.renorm = bool(c.get("norm_topk_prob", False))  # HF config default False
            self.mlp_only = set(c.get("mlp_only_layers", []) or [])
            self.sparse_step = c.get("decoder_sparse_step", 1)
            if self.arch == "qwen2_moe":
                self.qkv_bias = bool(c.get("qkv_bias", True))  # Qwen2MoeConfig.qkv_bias default True
        elif self.arch == "olmoe":
            self.E = c["num_experts"]
            self.renorm = bool(c.get("norm_topk_prob", False))  # OlmoeConfig default False
            self.qkv_bias = bool(c.get("attention_bias", False))
            self.clip_qkv = c.get("clip_qkv")
        else:
            self.E = c["num_local_experts"]
            self.renorm = True
        if c.get("rope_scaling") not in (None, {}):
            raise ValueError("rope_scaling not supported by the reference")
        self.stats = {}

    def W(self, name):
        return self.w[name].astype(self.dt)

    def _is_sparse(self, i):
        if self.arch in ("mixtral", "olmoe"):
            return True
        return (i not in self.mlp_only) and self.E > 0 and (i + 1) % self.sparse_step == 0

    def attention(self, i, x, cos, sin):
        p = f"model.layers.{i}.self_attn."
        T = x.shape[0]
        q = x @ self.W(p + "q_proj.weight").T
        k = x @ self.W(p + "k_proj.weight").T
        v = x @ self.W(p + "v_proj.weight").T
        if self.qkv_bias:
            q = q + self.W(p + "q_proj.bias")
            k = k + self.W(p + "k_proj.bias")
            v = v + self.W(p + "v_proj.bias")
        if self.arch == "olmoe":
            # full-width RMSNorm over heads*head_dim (resp. kv_heads*head_dim), before the reshape
            q = rms_norm(q, self.W(p + "q_norm.weight"), self.eps)
            k = rms_norm(k, self.W(p + "k_norm.weight"), self.eps)
            if self.clip_qkv is not None:
                c = float(self.clip_qkv)
                q, k, v = np.clip(q, -c, c), np.clip(k, -c, c), np.clip(v, -c, c)
        q = q.reshape(T, self.nq, self.D)
        k = k.reshape(T, self.nkv, self.D)
        v = v.reshape(T, self.nkv, self.D)
        if self.arch == "qwen3_moe":
            q = rms_norm(q, self.W(p + "q_norm.weight"), self.eps)
            k = rms_norm(k, self.W(p + "k_norm.weight"), self.eps)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        a = causal_attention(q, k, v, self.D ** -0.5).reshape(T, self.nq * self.D)
        out = a @ self.W(p + "o_proj.weight").T
        if self.arch == "olmoe" and self.qkv_bias:   # OLMoE attention_bias also covers o_proj
            out = out + self.W(p + "o_proj.bias")
        return out

    def mlp(self, i, x):
        p = f"model.layers.{i}."
        if self.arch == "mixtral":
            q = p + "block_sparse_moe."
            ex = [(self.W(q + f"experts.{e}.w1.weight"), self.W(q + f"experts.{e}.w3.weight"),
                   self.W(q + f"experts.{e}.w2.weight")) for e in range(self.E)]
            return moe_block(x, self.W(q + "gate.weight"), ex, self.top_k, True, self.stats)
        if self._is_sparse(i):
            q = p + "mlp."
            ex = [(self.W(q + f"experts.{e}.gate_proj.weight"), self.W(q + f"experts.{e}.up_proj.weight"),
                   self.W(q + f"experts.{e}.down_proj.weight")) for e in range(self.E)]
            out = moe_block(x, self.W(q + "gate.weight"), ex, self.top_k, self.renorm, self.stats)
            if self.arch == "qwen2_moe":
                s = q + "shared_expert."
                out = out + shared_expert(x, self.W(s + "gate_proj.weight"), self.W(s + "up_proj.weight"),
                                          self.W(s + "down_proj.weight"),
                                          self.W(q + "shared_expert_gate.weight"))
            return out
        q = p + "mlp."
        return dense_mlp(x, self.W(q + "gate_proj.weight"), self.W(q + "up_proj.weight"),
                         self.W(q + "down_proj.weight"))

    def hidden_states(self, tokens: List[int]) -> np.ndarray:
        ids = np.asarray(tokens, dtype=np.int64)
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError("tokens must be a non-empty 1-D list")
        if ids.min() < 0 or ids.max() >= self.V:
            raise ValueError("token id out of range")
        h = self.W("model.embed_tokens.weight")[ids]
        cos, sin = rope_cos_sin(np.arange(len(ids)), self.D, self.theta, self.dt)
        for i in range(self.L):
            p = f"model.layers.{i}."
            x = rms_norm(h, self.W(p + "input_layernorm.weight"), self.eps)
            h = h + self.attention(i, x, cos, sin)
            x = rms_norm(h, self.W(p + "post_attention_layernorm.weight"), self.eps)
            h = h + self.mlp(i, x)
        return rms_norm(h, self.W("model.norm.weight"), self.eps)

    def lm_head(self) -> np.ndarray:
        if self.tied:
            return self.W("model.embed_tokens.weight")
        return self.W("lm_head.weight")

    def logits(self, tokens: List[int]) -> np.ndarray:
        self.stats = {}
        h = self.hidden_states(tokens)
        return (h @ self.lm_head().T).astype(np.float32)


def reference_logits(model_dir: str, tokens: List[int], compute_dtype=np.float64) -> np.ndarray:
    return HFReference(model_dir, compute_dtype).logits(tokens)


def parse_tokens(s: str) -> List[int]:
    return [int(t) for t in s.replace(" ", "").split(",") if t != ""]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="numpy HF reference forward")
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", required=True, help="comma-separated token ids")
    ap.add_argument("--out", help="write raw little-endian float32 logits [T, vocab] here")
    ap.add_argument("--f32", action="store_true", help="compute in float32 instead of float64")
    a = ap.parse_args(argv)
    ref = HFReference(a.model, np.float32 if a.f32 else np.float64)
    lg = ref.logits(parse_tokens(a.tokens))
    if a.out:
        lg.astype("<f4").tofile(a.out)
    print(f"logits shape {lg.shape}; argmax per position: {lg.argmax(-1).tolist()}")
    print(f"min routing margin (p_k - p_k+1): {ref.stats.get('min_route_margin')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
