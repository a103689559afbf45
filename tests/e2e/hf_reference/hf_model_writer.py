#!/usr/bin/python3
"""Write a random-weight Hugging Face MoE checkpoint directory (config.json + safetensors).

Independent of moeserve: the safetensors container is produced here by hand
(8-byte little-endian u64 header length, JSON header, raw little-endian data).

Supported architectures (tensor names exactly as the HF checkpoints use them):
  qwen3_moe  -> Qwen3MoeForCausalLM   (per-head q_norm/k_norm; optional dense layers)
  qwen2_moe  -> Qwen2MoeForCausalLM   (q/k/v bias, shared expert + shared_expert_gate; optional dense layers)
  olmoe      -> OlmoeForCausalLM      (full-width q_norm/k_norm; every layer MoE)
  mixtral    -> MixtralForCausalLM

Usage (CLI):
  hf_model_writer.py --out DIR --arch qwen3_moe --hidden 64 --layers 2 --heads 4 \
      --kv-heads 2 --head-dim 32 --vocab 256 --experts 8 --top-k 2 --moe-intermediate 32 \
      --dtype bf16 --shards 1 [--tie] [--no-norm-topk-prob] --rope-theta 1e6 --seed 0

Library:
  spec = ModelSpec(arch="qwen3_moe", ...); write_model(spec, out_dir)
"""

import argparse
import dataclasses
import json
import os
import random
import struct
import sys
from typing import Dict, List, Optional, Tuple

import numpy as np

DTYPE_NAMES = {"bf16": "BF16", "f16": "F16", "f32": "F32"}
DTYPE_SIZES = {"BF16": 2, "F16": 2, "F32": 4}
TORCH_DTYPE = {"bf16": "bfloat16", "f16": "float16", "f32": "float32"}


@dataclasses.dataclass
class ModelSpec:
    arch: str = "qwen3_moe"            # "qwen3_moe" | "qwen2_moe" | "olmoe" | "mixtral"
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    head_dim: Optional[int] = None      # None -> hidden // heads
    vocab: int = 256
    experts: int = 8
    top_k: int = 2
    moe_intermediate: int = 32          # expert FFN width (Mixtral / OLMoE: intermediate_size)
    intermediate: Optional[int] = None  # qwen3/qwen2 dense-MLP width (config only unless dense layers)
    shared_intermediate: Optional[int] = None  # qwen2_moe shared expert width (None -> 2*moe_intermediate)
    tie_word_embeddings: bool = False
    dtype: str = "bf16"                 # bf16 | f16 | f32
    shards: int = 1
    norm_topk_prob: bool = True         # qwen3/qwen2/olmoe (Mixtral always renormalises)
    write_norm_topk_prob: bool = True   # False: leave the key out of config.json (HF default: False)
    rope_theta: float = 1e6
    rms_norm_eps: float = 1e-6
    max_position_embeddings: int = 4096
    mlp_only_layers: Tuple[int, ...] = ()  # qwen3_moe / qwen2_moe: layers using a dense MLP
    decoder_sparse_step: int = 1
    seed: int = 0
    weight_scale: float = 1.0           # multiplies all projection stds
    bias_std: float = 0.5               # qwen2_moe q/k/v_proj.bias ~ N(0, bias_std^2)
    write_head_dim: Optional[bool] = None  # None: qwen3 always, mixtral only if != hidden/heads

    def resolved_head_dim(self) -> int:
        return self.head_dim if self.head_dim else self.hidden // self.heads

    def is_sparse_layer(self, i: int) -> bool:
        if self.arch in ("mixtral", "olmoe"):
            return True
        return (i not in self.mlp_only_layers) and self.experts > 0 and (i + 1) % self.decoder_sparse_step == 0

    def resolved_shared_intermediate(self) -> int:
        return self.shared_intermediate or 2 * self.moe_intermediate


# ----------------------------------------------------------------------------
# dtype conversion
# ----------------------------------------------------------------------------

def f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round-to-nearest-even float32 -> bfloat16 bit pattern (uint16). No NaN inputs expected."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounding = ((u >> 16) & 1) + 0x7FFF
    return ((u + rounding) >> 16).astype(np.uint16)


def bf16_bits_to_f32(b: np.ndarray) -> np.ndarray:
    return (b.astype(np.uint32) << 16).view(np.float32)


def encode(x: np.ndarray, st_dtype: str) -> bytes:
    if st_dtype == "F32":
        return np.ascontiguousarray(x, dtype="<f4").tobytes()
    if st_dtype == "F16":
        return np.ascontiguousarray(x, dtype=np.float32).astype("<f2").tobytes()
    if st_dtype == "BF16":
        return f32_to_bf16_bits(x).astype("<u2").tobytes()
    raise ValueError(st_dtype)


# ----------------------------------------------------------------------------
# raw safetensors writing
# ----------------------------------------------------------------------------

def build_header_bytes(header: dict, align: int = 8) -> bytes:
    """JSON header padded with spaces to a multiple of `align` bytes (as the safetensors lib does)."""
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    if align:
        hb += b" " * ((-len(hb)) % align)
    return hb


def write_safetensors_raw(path: str, header_bytes: bytes, data: bytes,
                          header_len: Optional[int] = None) -> None:
    """Write a safetensors file from pre-built pieces; header_len overrides the u64 (for corruption tests)."""
    n = len(header_bytes) if header_len is None else header_len
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", n))
        f.write(header_bytes)
        f.write(data)


def write_safetensors(path: str, tensors: List[Tuple[str, str, Tuple[int, ...], bytes]],
                      metadata: Optional[dict] = None) -> int:
    """tensors: list of (name, st_dtype, shape, raw_bytes) in the desired on-disk order.
    Returns the number of data bytes written."""
    header: Dict[str, dict] = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    off = 0
    chunks = []
    for name, dt, shape, raw in tensors:
        expected = DTYPE_SIZES[dt] * int(np.prod(shape, dtype=np.int64))
        assert len(raw) == expected, (name, len(raw), expected)
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    write_safetensors_raw(path, build_header_bytes(header), b"".join(chunks))
    return off


def read_safetensors_raw(path: str) -> Tuple[dict, bytes]:
    """Parse a (well-formed) safetensors file: returns (header dict incl. __metadata__, data bytes)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    return header, blob[8 + n:]


def rewrite_safetensors(path: str, header: dict, data: bytes) -> None:
    write_safetensors_raw(path, build_header_bytes(header), data)


# ----------------------------------------------------------------------------
# model definition
# ----------------------------------------------------------------------------

def tensor_shapes(spec: ModelSpec) -> List[Tuple[str, Tuple[int, ...], str]]:
    """(name, shape, kind) for every tensor of the checkpoint, in canonical order.
    kind in {embed, norm, proj, router, lm_head} selects the init distribution."""
    H, D, V = spec.hidden, spec.resolved_head_dim(), spec.vocab
    nq, nkv, E, F = spec.heads, spec.kv_heads, spec.experts, spec.moe_intermediate
    if spec.arch == "olmoe" and D != H // nq:
        raise ValueError("olmoe: HF OlmoeAttention uses head_dim = hidden_size // num_attention_heads")
    if spec.arch == "qwen2_moe" and D * nq != H:
        raise ValueError("qwen2_moe: HF Qwen2MoeAttention requires head_dim * num_heads == hidden_size")
    out = [("model.embed_tokens.weight", (V, H), "embed")]
    for i in range(spec.layers):
        p = f"model.layers.{i}."
        out.append((p + "input_layernorm.weight", (H,), "norm"))
        out.append((p + "self_attn.q_proj.weight", (nq * D, H), "proj"))
        out.append((p + "self_attn.k_proj.weight", (nkv * D, H), "proj"))
        out.append((p + "self_attn.v_proj.weight", (nkv * D, H), "proj"))
        out.append((p + "self_attn.o_proj.weight", (H, nq * D), "proj"))
        if spec.arch == "qwen2_moe":   # qkv_bias (HF default True); o_proj has no bias
            out.append((p + "self_attn.q_proj.bias", (nq * D,), "bias"))
            out.append((p + "self_attn.k_proj.bias", (nkv * D,), "bias"))
            out.append((p + "self_attn.v_proj.bias", (nkv * D,), "bias"))
        if spec.arch == "qwen3_moe":
            out.append((p + "self_attn.q_norm.weight", (D,), "norm"))
            out.append((p + "self_attn.k_norm.weight", (D,), "norm"))
        if spec.arch == "olmoe":        # RMSNorm over the full projection width
            out.append((p + "self_attn.q_norm.weight", (nq * D,), "norm"))
            out.append((p + "self_attn.k_norm.weight", (nkv * D,), "norm"))
        out.append((p + "post_attention_layernorm.weight", (H,), "norm"))
        if spec.arch in ("qwen3_moe", "qwen2_moe", "olmoe"):
            if spec.is_sparse_layer(i):
                out.append((p + "mlp.gate.weight", (E, H), "router"))
                for e in range(E):
                    q = p + f"mlp.experts.{e}."
                    out.append((q + "gate_proj.weight", (F, H), "proj"))
                    out.append((q + "up_proj.weight", (F, H), "proj"))
                    out.append((q + "down_proj.weight", (H, F), "proj"))
                if spec.arch == "qwen2_moe":
                    S = spec.resolved_shared_intermediate()
                    q = p + "mlp.shared_expert."
                    out.append((q + "gate_proj.weight", (S, H), "proj"))
                    out.append((q + "up_proj.weight", (S, H), "proj"))
                    out.append((q + "down_proj.weight", (H, S), "proj"))
                    out.append((p + "mlp.shared_expert_gate.weight", (1, H), "shared_gate"))
            else:
                I = spec.intermediate or 2 * F
                out.append((p + "mlp.gate_proj.weight", (I, H), "proj"))
                out.append((p + "mlp.up_proj.weight", (I, H), "proj"))
                out.append((p + "mlp.down_proj.weight", (H, I), "proj"))
        elif spec.arch == "mixtral":
            out.append((p + "block_sparse_moe.gate.weight", (E, H), "router"))
            for e in range(E):
                q = p + f"block_sparse_moe.experts.{e}."
                out.append((q + "w1.weight", (F, H), "proj"))
                out.append((q + "w2.weight", (H, F), "proj"))
                out.append((q + "w3.weight", (F, H), "proj"))
        else:
            raise ValueError(f"unknown arch {spec.arch}")
    out.append(("model.norm.weight", (H,), "norm"))
    if not spec.tie_word_embeddings:
        out.append(("lm_head.weight", (V, H), "lm_head"))
    return out


def make_config(spec: ModelSpec) -> dict:
    H, D = spec.hidden, spec.resolved_head_dim()
    write_hd = spec.write_head_dim
    if write_hd is None:
        write_hd = spec.arch == "qwen3_moe" or D != H // spec.heads
    if spec.arch == "qwen3_moe":
        cfg = {
            "architectures": ["Qwen3MoeForCausalLM"],
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": 1,
            "decoder_sparse_step": spec.decoder_sparse_step,
            "eos_token_id": 2,
            "head_dim": D,
            "hidden_act": "silu",
            "hidden_size": H,
            "initializer_range": 0.02,
            "intermediate_size": spec.intermediate or 2 * spec.moe_intermediate,
            "max_position_embeddings": spec.max_position_embeddings,
            "max_window_layers": spec.layers,
            "mlp_only_layers": list(spec.mlp_only_layers),
            "model_type": "qwen3_moe",
            "moe_intermediate_size": spec.moe_intermediate,
            "norm_topk_prob": spec.norm_topk_prob,
            "num_attention_heads": spec.heads,
            "num_experts": spec.experts,
            "num_experts_per_tok": spec.top_k,
            "num_hidden_layers": spec.layers,
            "num_key_value_heads": spec.kv_heads,
            "output_router_logits": False,
            "rms_norm_eps": spec.rms_norm_eps,
            "rope_scaling": None,
            "rope_theta": spec.rope_theta,
            "router_aux_loss_coef": 0.001,
            "sliding_window": None,
            "tie_word_embeddings": spec.tie_word_embeddings,
            "torch_dtype": TORCH_DTYPE[spec.dtype],
            "transformers_version": "4.51.0",
            "use_cache": True,
            "use_sliding_window": False,
            "vocab_size": spec.vocab,
        }
        if not write_hd:
            del cfg["head_dim"]
        if not spec.write_norm_topk_prob:
            del cfg["norm_topk_prob"]
    elif spec.arch == "qwen2_moe":
        # Field set of the real Qwen/Qwen1.5-MoE-A2.7B config.json: no head_dim, no qkv_bias (HF default
        # True), no mlp_only_layers unless non-empty (HF default []).
        cfg = {
            "architectures": ["Qwen2MoeForCausalLM"],
            "attention_dropout": 0.0,
            "bos_token_id": 1,
            "decoder_sparse_step": spec.decoder_sparse_step,
            "eos_token_id": 2,
            "hidden_act": "silu",
            "hidden_size": H,
            "initializer_range": 0.02,
            "intermediate_size": spec.intermediate or 2 * spec.moe_intermediate,
            "max_position_embeddings": spec.max_position_embeddings,
            "max_window_layers": spec.layers,
            "model_type": "qwen2_moe",
            "moe_intermediate_size": spec.moe_intermediate,
            "norm_topk_prob": spec.norm_topk_prob,
            "num_attention_heads": spec.heads,
            "num_experts": spec.experts,
            "num_experts_per_tok": spec.top_k,
            "num_hidden_layers": spec.layers,
            "num_key_value_heads": spec.kv_heads,
            "output_router_logits": False,
            "rms_norm_eps": spec.rms_norm_eps,
            "rope_theta": spec.rope_theta,
            "router_aux_loss_coef": 0.001,
            "shared_expert_intermediate_size": spec.resolved_shared_intermediate(),
            "sliding_window": 32768,
            "tie_word_embeddings": spec.tie_word_embeddings,
            "torch_dtype": TORCH_DTYPE[spec.dtype],
            "transformers_version": "4.39.0.dev0",
            "use_cache": True,
            "use_sliding_window": False,
            "vocab_size": spec.vocab,
        }
        if spec.mlp_only_layers:
            cfg["mlp_only_layers"] = list(spec.mlp_only_layers)
        if not spec.write_norm_topk_prob:
            del cfg["norm_topk_prob"]
    elif spec.arch == "olmoe":
        # Field set of the real allenai/OLMoE-1B-7B-0924 config.json (intermediate_size is the expert
        # width, no head_dim, clip_qkv null, rope_scaling null).
        cfg = {
            "architectures": ["OlmoeForCausalLM"],
            "attention_bias": False,
            "attention_dropout": 0.0,
            "clip_qkv": None,
            "eos_token_id": 2,
            "hidden_act": "silu",
            "hidden_size": H,
            "initializer_range": 0.02,
            "intermediate_size": spec.moe_intermediate,
            "max_position_embeddings": spec.max_position_embeddings,
            "model_type": "olmoe",
            "norm_topk_prob": spec.norm_topk_prob,
            "num_attention_heads": spec.heads,
            "num_experts": spec.experts,
            "num_experts_per_tok": spec.top_k,
            "num_hidden_layers": spec.layers,
            "num_key_value_heads": spec.kv_heads,
            "output_router_logits": False,
            "pad_token_id": 1,
            "rms_norm_eps": spec.rms_norm_eps,
            "rope_scaling": None,
            "rope_theta": spec.rope_theta,
            "router_aux_loss_coef": 0.01,
            "tie_word_embeddings": spec.tie_word_embeddings,
            "torch_dtype": TORCH_DTYPE[spec.dtype],
            "transformers_version": "4.43.0.dev0",
            "use_cache": True,
            "vocab_size": spec.vocab,
        }
        if not spec.write_norm_topk_prob:
            del cfg["norm_topk_prob"]
    elif spec.arch == "mixtral":
        # Field set of the real mistralai/Mixtral-8x7B config.json (no moe_intermediate_size,
        # norm_topk_prob, decoder_sparse_step; head_dim only when it is not hidden/heads).
        cfg = {
            "architectures": ["MixtralForCausalLM"],
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "hidden_act": "silu",
            "hidden_size": H,
            "initializer_range": 0.02,
            "intermediate_size": spec.moe_intermediate,
            "max_position_embeddings": spec.max_position_embeddings,
            "model_type": "mixtral",
            "num_attention_heads": spec.heads,
            "num_experts_per_tok": spec.top_k,
            "num_hidden_layers": spec.layers,
            "num_key_value_heads": spec.kv_heads,
            "num_local_experts": spec.experts,
            "output_router_logits": False,
            "rms_norm_eps": spec.rms_norm_eps,
            "rope_scaling": None,
            "rope_theta": spec.rope_theta,
            "router_aux_loss_coef": 0.02,
            "router_jitter_noise": 0.0,
            "sliding_window": None,
            "tie_word_embeddings": spec.tie_word_embeddings,
            "torch_dtype": TORCH_DTYPE[spec.dtype],
            "transformers_version": "4.36.0",
            "use_cache": True,
            "vocab_size": spec.vocab,
        }
        if write_hd:
            cfg["head_dim"] = D
    else:
        raise ValueError(f"unknown arch {spec.arch}")
    return cfg


def generate_weights(spec: ModelSpec) -> Dict[str, np.ndarray]:
    """Deterministic float32 weights (before dtype rounding), keyed by HF name.

    Each tensor gets its own RNG stream derived from (seed, name), so the values do not depend
    on shard layout or tensor order.
    Distributions:
      norm weights  ~ 1 + 0.1 N(0,1)        (so q/k/final norms matter)
      projections   ~ N(0, (0.8*scale/sqrt(fan_in))^2)   (~0.1 at fan_in 64)
      router        ~ N(0, (2.0*scale/sqrt(H))^2)         (decisive routing, sizeable top-k margins)
      q/k/v bias    ~ N(0, bias_std^2)                    (qwen2_moe; large enough to matter)
      shared_expert_gate ~ N(0, (1.5/sqrt(H))^2)          (gate logits std ~1.5: sigmoid well inside (0,1))
      embed         ~ N(0, 0.5^2); when tied, std 1.5/sqrt(H) so logits have std ~1.5
      lm_head       ~ N(0, (1.5/sqrt(H))^2)               (logits std ~1.5)
    """
    import zlib
    out = {}
    H = spec.hidden
    for name, shape, kind in tensor_shapes(spec):
        rng = np.random.default_rng([spec.seed, zlib.crc32(name.encode())])
        if kind == "norm":
            w = 1.0 + 0.1 * rng.standard_normal(shape)
        elif kind == "proj":
            w = rng.standard_normal(shape) * (0.8 * spec.weight_scale / np.sqrt(shape[1]))
        elif kind == "router":
            w = rng.standard_normal(shape) * (2.0 * spec.weight_scale / np.sqrt(shape[1]))
        elif kind == "bias":
            w = rng.standard_normal(shape) * spec.bias_std
        elif kind == "shared_gate":
            w = rng.standard_normal(shape) * (1.5 / np.sqrt(H))
        elif kind == "embed":
            std = 1.5 / np.sqrt(H) if spec.tie_word_embeddings else 0.5
            w = rng.standard_normal(shape) * std
        elif kind == "lm_head":
            w = rng.standard_normal(shape) * (1.5 / np.sqrt(H))
        else:
            raise AssertionError(kind)
        out[name] = w.astype(np.float32)
    return out


def shard_file_name(i: int, n: int) -> str:
    return f"model-{i + 1:05d}-of-{n:05d}.safetensors"


def write_model(spec: ModelSpec, out_dir: str, shuffle_seed: Optional[int] = None) -> dict:
    """Write config.json + weights. Returns {"files": [...], "weight_map": {...} or None}."""
    os.makedirs(out_dir, exist_ok=True)
    for fn in os.listdir(out_dir):  # start from a clean directory
        if fn.endswith(".safetensors") or fn in ("config.json", "model.safetensors.index.json"):
            os.remove(os.path.join(out_dir, fn))
    cfg = make_config(spec)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")

    st_dtype = DTYPE_NAMES[spec.dtype]
    weights = generate_weights(spec)
    names = list(weights.keys())
    rnd = random.Random(spec.seed * 7919 + 17 if shuffle_seed is None else shuffle_seed)
    rnd.shuffle(names)  # on-disk tensor order is shuffled

    meta = {"format": "pt"}
    if spec.shards <= 1:
        items = [(n, st_dtype, weights[n].shape, encode(weights[n], st_dtype)) for n in names]
        write_safetensors(os.path.join(out_dir, "model.safetensors"), items, meta)
        return {"files": ["model.safetensors"], "weight_map": None}

    nshard = spec.shards
    assert len(names) >= nshard
    buckets: List[List[str]] = [[] for _ in range(nshard)]
    for i, n in enumerate(names):  # names already shuffled -> round-robin gives mixed shards
        buckets[i % nshard].append(n)
    weight_map = {}
    total = 0
    files = []
    for si, bucket in enumerate(buckets):
        fn = shard_file_name(si, nshard)
        items = [(n, st_dtype, weights[n].shape, encode(weights[n], st_dtype)) for n in bucket]
        total += write_safetensors(os.path.join(out_dir, fn), items, meta)
        for n in bucket:
            weight_map[n] = fn
        files.append(fn)
    index = {"metadata": {"total_size": total},
             "weight_map": {k: weight_map[k] for k in sorted(weight_map)}}
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    return {"files": files, "weight_map": weight_map}


def add_spec_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--arch", choices=["qwen3_moe", "qwen2_moe", "olmoe", "mixtral"], default="qwen3_moe")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=None)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--moe-intermediate", type=int, default=32)
    ap.add_argument("--intermediate", type=int, default=None)
    ap.add_argument("--shared-intermediate", type=int, default=None,
                    help="qwen2_moe: shared_expert_intermediate_size")
    ap.add_argument("--tie", action="store_true", help="tie_word_embeddings (no lm_head.weight)")
    ap.add_argument("--dtype", choices=["bf16", "f16", "f32"], default="bf16")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--no-norm-topk-prob", action="store_true")
    ap.add_argument("--rope-theta", type=float, default=1e6)
    ap.add_argument("--rms-norm-eps", type=float, default=1e-6)
    ap.add_argument("--mlp-only-layers", type=str, default="",
                    help="qwen3_moe/qwen2_moe: comma-separated layer ids with a dense MLP")
    ap.add_argument("--decoder-sparse-step", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)


def spec_from_args(a) -> ModelSpec:
    return ModelSpec(
        arch=a.arch, hidden=a.hidden, layers=a.layers, heads=a.heads, kv_heads=a.kv_heads,
        head_dim=a.head_dim, vocab=a.vocab, experts=a.experts, top_k=a.top_k,
        moe_intermediate=a.moe_intermediate, intermediate=a.intermediate,
        shared_intermediate=a.shared_intermediate, decoder_sparse_step=a.decoder_sparse_step,
        tie_word_embeddings=a.tie, dtype=a.dtype, shards=a.shards,
        norm_topk_prob=not a.no_norm_topk_prob, rope_theta=a.rope_theta,
        rms_norm_eps=a.rms_norm_eps,
        mlp_only_layers=tuple(int(x) for x in a.mlp_only_layers.split(",") if x.strip()),
        seed=a.seed)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    add_spec_args(ap)
    a = ap.parse_args(argv)
    spec = spec_from_args(a)
    info = write_model(spec, a.out)
    print(f"wrote {spec.arch} model to {a.out}: {', '.join(info['files'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
