#!/usr/bin/python3
"""Standalone checks of the numpy reference and the checkpoint writer (no moeserve needed).

  /usr/bin/python3 tests/e2e/hf_reference/selftest.py
"""

import json
import math
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_forward as F  # noqa: E402
import hf_model_writer as W  # noqa: E402

FAILS = []


def check(name, cond, detail=""):
    print(f"[{'ok' if cond else 'FAIL'}] {name}{(': ' + detail) if detail else ''}")
    if not cond:
        FAILS.append(name)


def rel(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))) /
                 max(np.max(np.abs(np.asarray(b, np.float64))), 1e-300))


# ---------------------------------------------------------------------------------------------
# A deliberately naive, loop-based second implementation (scalar loops over positions, heads,
# experts; explicit pairwise RoPE; python sorted() routing). Shares nothing with hf_forward
# except the weight dictionary.
# ---------------------------------------------------------------------------------------------

def naive_forward(cfg, w, tokens):
    H = cfg["hidden_size"]; nq = cfg["num_attention_heads"]; nkv = cfg["num_key_value_heads"]
    D = cfg.get("head_dim") or H // nq
    eps = cfg["rms_norm_eps"]; theta = cfg["rope_theta"]; k_top = cfg["num_experts_per_tok"]
    arch = cfg["model_type"]
    if arch == "olmoe":
        D = H // nq
    E = cfg["num_local_experts"] if arch == "mixtral" else cfg["num_experts"]
    renorm = True if arch == "mixtral" else cfg.get("norm_topk_prob", False)
    has_bias = arch == "qwen2_moe" and cfg.get("qkv_bias", True)
    mlp_only = list(cfg.get("mlp_only_layers") or [])
    step = cfg.get("decoder_sparse_step") or 1
    g = {k: v.astype(np.float64) for k, v in w.items()}

    def layer_is_moe(li):
        if arch in ("mixtral", "olmoe"):
            return True
        if li in mlp_only:
            return False
        return E > 0 and (li + 1) % step == 0

    def swiglu(pre, x):
        a = g[pre + "gate_proj.weight"] @ x
        b = g[pre + "up_proj.weight"] @ x
        act = np.array([silu(a[j]) * b[j] for j in range(len(a))])
        return g[pre + "down_proj.weight"] @ act

    def norm(vec, wt):
        ms = sum(float(t) * float(t) for t in vec) / len(vec)
        return np.array([vec[j] / math.sqrt(ms + eps) * wt[j] for j in range(len(vec))])

    def rope(vec, pos):
        out = np.zeros(D)
        for j in range(D // 2):
            ang = pos * (1.0 / theta ** ((2 * j) / D))
            c, s = math.cos(ang), math.sin(ang)
            out[j] = vec[j] * c - vec[j + D // 2] * s
            out[j + D // 2] = vec[j + D // 2] * c + vec[j] * s
        return out

    def silu(t):
        return t / (1.0 + math.exp(-t))

    T = len(tokens)
    hs = [g["model.embed_tokens.weight"][t].copy() for t in tokens]
    for li in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{li}."
        xs = [norm(h, g[p + "input_layernorm.weight"]) for h in hs]
        Q, K, Vv = [], [], []
        for t in range(T):
            q = g[p + "self_attn.q_proj.weight"] @ xs[t]
            k = g[p + "self_attn.k_proj.weight"] @ xs[t]
            v = g[p + "self_attn.v_proj.weight"] @ xs[t]
            if has_bias:
                q = np.array([q[j] + g[p + "self_attn.q_proj.bias"][j] for j in range(len(q))])
                k = np.array([k[j] + g[p + "self_attn.k_proj.bias"][j] for j in range(len(k))])
                v = np.array([v[j] + g[p + "self_attn.v_proj.bias"][j] for j in range(len(v))])
            if arch == "olmoe":  # one norm over the whole q (resp. k) vector, before splitting heads
                q = norm(q, g[p + "self_attn.q_norm.weight"])
                k = norm(k, g[p + "self_attn.k_norm.weight"])
            qh = [q[h * D:(h + 1) * D] for h in range(nq)]
            kh = [k[h * D:(h + 1) * D] for h in range(nkv)]
            vh = [v[h * D:(h + 1) * D] for h in range(nkv)]
            if arch == "qwen3_moe":
                qh = [norm(a, g[p + "self_attn.q_norm.weight"]) for a in qh]
                kh = [norm(a, g[p + "self_attn.k_norm.weight"]) for a in kh]
            Q.append([rope(a, t) for a in qh]); K.append([rope(a, t) for a in kh]); Vv.append(vh)
        rep = nq // nkv
        new_hs = []
        for t in range(T):
            heads_out = []
            for h in range(nq):
                kvh = h // rep
                sc = [float(np.dot(Q[t][h], K[s][kvh])) / math.sqrt(D) for s in range(t + 1)]
                m = max(sc)
                ex = [math.exp(a - m) for a in sc]
                z = sum(ex)
                o = sum((ex[s] / z) * Vv[s][kvh] for s in range(t + 1))
                heads_out.append(o)
            attn = g[p + "self_attn.o_proj.weight"] @ np.concatenate(heads_out)
            new_hs.append(hs[t] + attn)
        hs = new_hs
        for t in range(T):
            x = norm(hs[t], g[p + "post_attention_layernorm.weight"])
            if not layer_is_moe(li):
                hs[t] = hs[t] + swiglu(p + "mlp.", x)
                continue
            if arch == "mixtral":
                pre = p + "block_sparse_moe."
                names = ("w1", "w3", "w2")
            else:
                pre = p + "mlp."
                names = ("gate_proj", "up_proj", "down_proj")
            lg = g[pre + "gate.weight"] @ x
            m = max(lg)
            pr = [math.exp(a - m) for a in lg]
            z = sum(pr)
            pr = [a / z for a in pr]
            chosen = sorted(range(E), key=lambda e: (-pr[e], e))[:k_top]
            ws = [pr[e] for e in chosen]
            if renorm:
                s = sum(ws)
                ws = [a / s for a in ws]
            out = np.zeros(H)
            for e, we in zip(chosen, ws):
                a = g[pre + f"experts.{e}.{names[0]}.weight"] @ x
                b = g[pre + f"experts.{e}.{names[1]}.weight"] @ x
                act = np.array([silu(a[j]) * b[j] for j in range(len(a))])
                out += we * (g[pre + f"experts.{e}.{names[2]}.weight"] @ act)
            if arch == "qwen2_moe":
                zg = float(np.dot(g[pre + "shared_expert_gate.weight"][0], x))
                out += (1.0 / (1.0 + math.exp(-zg))) * swiglu(pre + "shared_expert.", x)
            hs[t] = hs[t] + out
    head = g["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else g["lm_head.weight"]
    return np.stack([head @ norm(h, g["model.norm.weight"]) for h in hs])


def main():
    td = tempfile.mkdtemp(prefix="hfref_selftest_")
    tokens = [3, 250, 17, 128, 99, 5, 201]

    # ---------------- RoPE ----------------
    cos, sin = F.rope_cos_sin(np.arange(8), 32, 1e6)
    x = np.random.default_rng(0).standard_normal((1, 4, 32))
    check("rope at position 0 is identity", np.array_equal(F.apply_rope(x, cos[:1], sin[:1]), x))
    rng = np.random.default_rng(1)
    q = rng.standard_normal((1, 1, 32)); k = rng.standard_normal((1, 1, 32))
    cos, sin = F.rope_cos_sin(np.arange(40), 32, 10000.0)

    def dot_at(m, n):
        return float(np.sum(F.apply_rope(q, cos[m:m + 1], sin[m:m + 1]) *
                            F.apply_rope(k, cos[n:n + 1], sin[n:n + 1])))
    check("rope scores depend only on relative position",
          abs(dot_at(7, 3) - dot_at(30, 26)) < 1e-12 and abs(dot_at(7, 3) - dot_at(7, 4)) > 1e-6)
    check("rope preserves norm", abs(np.linalg.norm(F.apply_rope(q, cos[9:10], sin[9:10])) -
                                     np.linalg.norm(q)) < 1e-12)

    # ---------------- dtype encode / decode ----------------
    v = np.array([1.0, -2.5, 3.14159, 1e-3, 65504.0, 0.1], np.float32)
    bits = W.f32_to_bf16_bits(v)
    back = W.bf16_bits_to_f32(bits)
    check("bf16 round trip within 2^-8 relative", np.all(np.abs(back - v) <= np.abs(v) * 2 ** -8))
    check("bf16 round-to-nearest-even", W.bf16_bits_to_f32(W.f32_to_bf16_bits(
        np.array([1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8], np.float32))).tolist() == [1.0, 1.0 + 2 ** -6])

    # ---------------- writer / reader round trip ----------------
    specs = {
        "qwen_bf16": W.ModelSpec(arch="qwen3_moe", hidden=64, layers=2, heads=4, kv_heads=2, head_dim=32,
                                 vocab=256, experts=8, top_k=2, moe_intermediate=32, dtype="bf16", seed=11),
        "qwen_f16_noNorm": W.ModelSpec(arch="qwen3_moe", hidden=64, layers=2, heads=4, kv_heads=1,
                                       vocab=256, experts=4, top_k=2, moe_intermediate=48, dtype="f16",
                                       norm_topk_prob=False, rope_theta=10000.0, seed=12),
        "mixtral": W.ModelSpec(arch="mixtral", hidden=64, layers=2, heads=4, kv_heads=2, vocab=256,
                               experts=4, top_k=2, moe_intermediate=48, dtype="bf16", seed=13,
                               rms_norm_eps=1e-5),
        "qwen3_mlp_only_1": W.ModelSpec(arch="qwen3_moe", hidden=64, layers=3, heads=4, kv_heads=2,
                                        head_dim=16, vocab=256, experts=4, top_k=2, moe_intermediate=32,
                                        intermediate=80, dtype="bf16", mlp_only_layers=(1,), seed=14),
        "qwen3_sparse_step2": W.ModelSpec(arch="qwen3_moe", hidden=64, layers=4, heads=4, kv_heads=2,
                                          head_dim=16, vocab=256, experts=4, top_k=2, moe_intermediate=32,
                                          intermediate=72, dtype="f32", decoder_sparse_step=2, seed=15),
        "qwen2moe_bf16": W.ModelSpec(arch="qwen2_moe", hidden=64, layers=2, heads=4, kv_heads=4, vocab=256,
                                     experts=8, top_k=4, moe_intermediate=16, shared_intermediate=48,
                                     dtype="bf16", norm_topk_prob=False, write_norm_topk_prob=False,
                                     seed=16),
        "qwen2moe_gqa_tied_mlp_only3": W.ModelSpec(arch="qwen2_moe", hidden=64, layers=4, heads=4, kv_heads=2,
                                                  vocab=256, experts=6, top_k=2, moe_intermediate=24,
                                                  intermediate=56, shared_intermediate=40, dtype="f16",
                                                  mlp_only_layers=(3,), decoder_sparse_step=1,
                                                  tie_word_embeddings=True, seed=17),
        "olmoe_bf16": W.ModelSpec(arch="olmoe", hidden=64, layers=2, heads=4, kv_heads=4, vocab=256,
                                  experts=8, top_k=2, moe_intermediate=32, dtype="bf16",
                                  norm_topk_prob=False, rms_norm_eps=1e-5, rope_theta=10000.0, seed=18),
        "olmoe_gqa_f32": W.ModelSpec(arch="olmoe", hidden=64, layers=2, heads=4, kv_heads=2, vocab=256,
                                     experts=6, top_k=3, moe_intermediate=24, dtype="f32",
                                     norm_topk_prob=True, rms_norm_eps=1e-5, seed=19),
    }
    for name, spec in specs.items():
        d = os.path.join(td, name)
        W.write_model(spec, d)
        gen = W.generate_weights(spec)
        got = F.load_weights(d)
        same_keys = set(gen) == set(got)
        if spec.dtype == "bf16":
            exp = {k: W.bf16_bits_to_f32(W.f32_to_bf16_bits(a)) for k, a in gen.items()}
        elif spec.dtype == "f16":
            exp = {k: a.astype(np.float16).astype(np.float32) for k, a in gen.items()}
        else:
            exp = gen
        exact = same_keys and all(np.array_equal(exp[k], got[k]) for k in gen)
        check(f"{name}: reader returns exactly the written ({spec.dtype}) weights", exact)
        cfg = json.load(open(os.path.join(d, "config.json")))
        ref = F.HFReference(d)
        lg = ref.logits(tokens)
        nv = naive_forward(cfg, got, tokens)
        check(f"{name}: vectorised forward == naive loop forward", rel(lg, nv) < 1e-6,
              f"rel {rel(lg, nv):.2e}, logits std {lg.std():.2f}, argmax {lg.argmax(-1).tolist()}, "
              f"min route margin {ref.stats['min_route_margin']:.2e}")
        lg32 = F.HFReference(d, np.float32).logits(tokens)
        check(f"{name}: float32 compute within 1e-5 of float64 compute", rel(lg32, lg) < 1e-5,
              f"rel {rel(lg32, lg):.2e}")
        pre = ref.logits(tokens[:4])
        check(f"{name}: causal prefix consistency", rel(pre, lg[:4]) < 1e-6, f"rel {rel(pre, lg[:4]):.2e}")
        check(f"{name}: logits vary meaningfully across positions/vocab",
              lg.std() > 0.3 and len(set(lg.argmax(-1).tolist())) > 1)

    # ---------------- 1-token attention == o_proj(v) ----------------
    d = os.path.join(td, "qwen_bf16")
    ref = F.HFReference(d)
    x = np.random.default_rng(5).standard_normal((1, 64))
    cos, sin = F.rope_cos_sin(np.arange(1), ref.D, ref.theta)
    att = ref.attention(0, x, cos, sin)
    p = "model.layers.0.self_attn."
    vv = (x @ ref.W(p + "v_proj.weight").T).reshape(1, ref.nkv, ref.D)
    vrep = np.repeat(vv, ref.nq // ref.nkv, axis=1).reshape(1, -1)
    check("1-token attention == o_proj(repeat_kv(v_proj(x)))",
          rel(att, vrep @ ref.W(p + "o_proj.weight").T) < 1e-12)

    # ---------------- sharded == single file ----------------
    for dt in ("bf16", "f32"):
        s1 = W.ModelSpec(arch="qwen3_moe", hidden=64, layers=2, heads=4, kv_heads=2, head_dim=24,
                         vocab=300, experts=6, top_k=2, dtype=dt, tie_word_embeddings=True, seed=21)
        s3 = W.ModelSpec(**{**s1.__dict__, "shards": 3})
        W.write_model(s1, os.path.join(td, f"single_{dt}"))
        info = W.write_model(s3, os.path.join(td, f"sharded_{dt}"))
        idx = json.load(open(os.path.join(td, f"sharded_{dt}", "model.safetensors.index.json")))
        sizes = sum(os.path.getsize(os.path.join(td, f"sharded_{dt}", fn)) for fn in info["files"])
        total_ok = idx["metadata"]["total_size"] < sizes and len(set(idx["weight_map"].values())) == 3
        a = F.reference_logits(os.path.join(td, f"single_{dt}"), tokens)
        b = F.reference_logits(os.path.join(td, f"sharded_{dt}"), tokens)
        check(f"{dt}: 3-shard and single-file checkpoints give bit-identical logits",
              np.array_equal(a, b) and total_ok)

    # ---------------- tied vs untied ----------------
    dtied = os.path.join(td, "single_f32")
    hdr, _ = W.read_safetensors_raw(os.path.join(dtied, "model.safetensors"))
    check("tied checkpoint has no lm_head.weight", "lm_head.weight" not in hdr)
    rt = F.HFReference(dtied)
    lt = rt.logits(tokens)
    cfg_u = dict(rt.cfg, tie_word_embeddings=False)
    wu = dict(rt.w, **{"lm_head.weight": rt.w["model.embed_tokens.weight"].copy()})
    lu = F.HFReference(None, config=cfg_u, weights=wu).logits(tokens)
    check("tied logits == untied logits with lm_head := embed_tokens", np.array_equal(lt, lu))
    wu2 = dict(wu, **{"lm_head.weight": wu["lm_head.weight"] * 2})
    lu2 = F.HFReference(None, config=cfg_u, weights=wu2).logits(tokens)
    check("untied model really uses lm_head.weight", rel(lu2, 2 * lt) < 1e-6)
    check("tied/head_dim!=hidden/heads: naive forward agrees",
          rel(lt, naive_forward(rt.cfg, rt.w, tokens)) < 1e-6)

    # ---------------- expert permutation invariance ----------------
    d = os.path.join(td, "qwen_bf16")
    r0 = F.HFReference(d)
    l0 = r0.logits(tokens)
    perm = np.random.default_rng(3).permutation(r0.E)
    wp = dict(r0.w)
    for li in range(r0.L):
        pre = f"model.layers.{li}.mlp."
        wp[pre + "gate.weight"] = r0.w[pre + "gate.weight"][perm]
        for new_e, old_e in enumerate(perm):
            for n in ("gate_proj", "up_proj", "down_proj"):
                wp[pre + f"experts.{new_e}.{n}.weight"] = r0.w[pre + f"experts.{old_e}.{n}.weight"]
    lp = F.HFReference(None, config=r0.cfg, weights=wp).logits(tokens)
    check("permuting experts (with router rows) leaves logits unchanged", rel(lp, l0) < 1e-12)

    # ---------------- flags actually matter ----------------
    def variant(**cfg_over):
        return F.HFReference(None, config=dict(r0.cfg, **cfg_over), weights=r0.w).logits(tokens)
    check("norm_topk_prob changes logits", rel(variant(norm_topk_prob=False), l0) > 1e-3)
    check("rope_theta changes logits", rel(variant(rope_theta=10000.0), l0) > 1e-3)
    wq = dict(r0.w); wq["model.layers.0.self_attn.q_norm.weight"] = np.ones(r0.D, np.float32)
    check("q_norm weight changes logits",
          rel(F.HFReference(None, config=r0.cfg, weights=wq).logits(tokens), l0) > 1e-3)
    check("top_k changes logits", rel(variant(num_experts_per_tok=3), l0) > 1e-3)

    # ---------------- dense (mlp_only / decoder_sparse_step) layers ----------------
    def layer_keys(d):
        return set(F.load_weights(os.path.join(td, d)))
    k1 = layer_keys("qwen3_mlp_only_1")
    check("qwen3 mlp_only_layers=[1]: layer 1 has mlp.{gate,up,down}_proj [intermediate] and no experts",
          {"model.layers.1.mlp.gate_proj.weight", "model.layers.1.mlp.up_proj.weight",
           "model.layers.1.mlp.down_proj.weight"} <= k1
          and not any(k.startswith("model.layers.1.mlp.experts.") or k == "model.layers.1.mlp.gate.weight"
                      for k in k1)
          and "model.layers.0.mlp.gate.weight" in k1 and "model.layers.2.mlp.gate.weight" in k1
          and F.load_weights(os.path.join(td, "qwen3_mlp_only_1"))["model.layers.1.mlp.gate_proj.weight"].shape
          == (80, 64))
    k2 = layer_keys("qwen3_sparse_step2")
    check("qwen3 decoder_sparse_step=2: layers 1,3 MoE, layers 0,2 dense ((i+1) % step == 0)",
          all(f"model.layers.{i}.mlp.gate.weight" in k2 for i in (1, 3))
          and all(f"model.layers.{i}.mlp.gate_proj.weight" in k2 for i in (0, 2))
          and not any(f"model.layers.{i}.mlp.gate.weight" in k2 for i in (0, 2)))
    rd = F.HFReference(os.path.join(td, "qwen3_mlp_only_1"))
    ld = rd.logits(tokens)
    wd = dict(rd.w, **{"model.layers.1.mlp.down_proj.weight": rd.w["model.layers.1.mlp.down_proj.weight"] * 0})
    check("dense-layer weights really used (zeroing layer-1 down_proj changes logits)",
          rel(F.HFReference(None, config=rd.cfg, weights=wd).logits(tokens), ld) > 1e-3)

    # ---------------- qwen2_moe: bias, shared expert, defaults ----------------
    dq2 = os.path.join(td, "qwen2moe_bf16")
    r2 = F.HFReference(dq2)
    l2 = r2.logits(tokens)
    cfg2 = json.load(open(os.path.join(dq2, "config.json")))
    check("qwen2_moe config like Qwen1.5-MoE: no norm_topk_prob/qkv_bias/head_dim/mlp_only_layers keys -> "
          "oracle uses norm_topk_prob=False, qkv_bias=True",
          not any(k in cfg2 for k in ("norm_topk_prob", "qkv_bias", "head_dim", "mlp_only_layers"))
          and r2.renorm is False and r2.qkv_bias is True)
    hdr2 = set(F.load_weights(dq2))
    check("qwen2_moe: q/k/v_proj.bias present, o_proj.bias absent, shared_expert(+_gate) present",
          all(f"model.layers.0.self_attn.{n}_proj.bias" in hdr2 for n in "qkv")
          and "model.layers.0.self_attn.o_proj.bias" not in hdr2
          and "model.layers.1.mlp.shared_expert_gate.weight" in hdr2
          and "model.layers.1.mlp.shared_expert.down_proj.weight" in hdr2
          and r2.w["model.layers.1.mlp.shared_expert_gate.weight"].shape == (1, 64)
          and r2.w["model.layers.1.mlp.shared_expert.gate_proj.weight"].shape == (48, 64))

    def with_w(ref, **repl):
        return F.HFReference(None, config=ref.cfg, weights=dict(ref.w, **repl)).logits(tokens)
    for n in "qkv":
        nm = f"model.layers.0.self_attn.{n}_proj.bias"
        check(f"qwen2_moe: {n}_proj.bias really used (zeroing it changes logits)",
              rel(with_w(r2, **{nm: r2.w[nm] * 0}), l2) > 1e-3)
    zb = {f"model.layers.{i}.self_attn.{n}_proj.bias": r2.w[f"model.layers.{i}.self_attn.{n}_proj.bias"] * 0
          for i in range(r2.L) for n in "qkv"}
    nob = F.HFReference(None, config=dict(r2.cfg, qkv_bias=False), weights=r2.w).logits(tokens)
    check("qwen2_moe: qkv_bias=false ignores biases (== all biases zeroed)", rel(nob, with_w(r2, **zb)) < 1e-12)
    check("qwen2_moe: naive loop forward agrees with zeroed biases",
          rel(with_w(r2, **zb), naive_forward(r2.cfg, dict(r2.w, **zb), tokens)) < 1e-6)
    # 1-token attention with bias: softmax over one key == 1 -> o_proj(repeat_kv(v_proj(x) + b_v))
    x1 = np.random.default_rng(6).standard_normal((1, 64))
    c1, s1 = F.rope_cos_sin(np.arange(1), r2.D, r2.theta)
    pa = "model.layers.0.self_attn."
    vb = (x1 @ r2.W(pa + "v_proj.weight").T + r2.W(pa + "v_proj.bias")).reshape(1, r2.nkv, r2.D)
    vb = np.repeat(vb, r2.nq // r2.nkv, axis=1).reshape(1, -1)
    check("qwen2_moe: 1-token attention == o_proj(v_proj(x) + v_bias), no o_proj bias",
          rel(r2.attention(0, x1, c1, s1), vb @ r2.W(pa + "o_proj.weight").T) < 1e-12)

    # shared expert gate: block-level, x > 0 so gate weight -1e6*ones gives logit ~ -inf
    xp = np.abs(np.random.default_rng(7).standard_normal((5, 64))) + 0.1
    pm = "model.layers.0.mlp."
    ex = [(r2.W(pm + f"experts.{e}.gate_proj.weight"), r2.W(pm + f"experts.{e}.up_proj.weight"),
           r2.W(pm + f"experts.{e}.down_proj.weight")) for e in range(r2.E)]
    routed = F.moe_block(xp, r2.W(pm + "gate.weight"), ex, r2.top_k, False)
    sh = F.dense_mlp(xp, r2.W(pm + "shared_expert.gate_proj.weight"), r2.W(pm + "shared_expert.up_proj.weight"),
                     r2.W(pm + "shared_expert.down_proj.weight"))

    def block(gw):
        rr = F.HFReference(None, config=r2.cfg,
                           weights=dict(r2.w, **{pm + "shared_expert_gate.weight": np.asarray(gw, np.float32)}))
        return rr.mlp(0, xp)
    neg = block(np.full((1, 64), -1e6))
    check("qwen2_moe: shared_expert_gate logit -inf => routed-only output (exact)", np.array_equal(neg, routed)
          and rel(routed, block(np.zeros((1, 64)))) > 1e-3)
    check("qwen2_moe: shared_expert_gate logit +inf => routed + shared expert",
          rel(block(np.full((1, 64), 1e6)), routed + sh) < 1e-12)
    check("qwen2_moe: shared_expert_gate logit 0 => routed + 0.5 * shared expert",
          rel(block(np.zeros((1, 64))), routed + 0.5 * sh) < 1e-12)
    check("qwen2_moe: shared expert really used (zeroing shared_expert.down_proj changes logits)",
          rel(with_w(r2, **{f"model.layers.{i}.mlp.shared_expert.down_proj.weight":
                            r2.w[f"model.layers.{i}.mlp.shared_expert.down_proj.weight"] * 0 for i in range(r2.L)}),
              l2) > 1e-3)
    check("qwen2_moe: routing is top-k of softmax without renormalisation (norm_topk_prob=True differs)",
          rel(F.HFReference(None, config=dict(r2.cfg, norm_topk_prob=True), weights=r2.w).logits(tokens), l2)
          > 1e-3)
    # expert permutation (shared expert untouched)
    perm = np.random.default_rng(4).permutation(r2.E)
    wp = dict(r2.w)
    for li in range(r2.L):
        pre = f"model.layers.{li}.mlp."
        wp[pre + "gate.weight"] = r2.w[pre + "gate.weight"][perm]
        for new_e, old_e in enumerate(perm):
            for n in ("gate_proj", "up_proj", "down_proj"):
                wp[pre + f"experts.{new_e}.{n}.weight"] = r2.w[pre + f"experts.{old_e}.{n}.weight"]
    check("qwen2_moe: permuting routed experts leaves logits unchanged",
          rel(F.HFReference(None, config=r2.cfg, weights=wp).logits(tokens), l2) < 1e-12)
    k3 = layer_keys("qwen2moe_gqa_tied_mlp_only3")
    check("qwen2_moe mlp_only_layers=[3]: layer 3 dense (no shared expert / router), layers 0-2 MoE",
          "model.layers.3.mlp.gate_proj.weight" in k3
          and not any(k.startswith("model.layers.3.mlp.shared_expert") for k in k3)
          and all(f"model.layers.{i}.mlp.shared_expert_gate.weight" in k3 for i in range(3)))

    # ---------------- olmoe: full-width q/k norm ----------------
    do = os.path.join(td, "olmoe_gqa_f32")
    ro = F.HFReference(do)
    lo = ro.logits(tokens)
    wo = F.load_weights(do)
    check("olmoe: q_norm [heads*head_dim], k_norm [kv_heads*head_dim], no biases",
          wo["model.layers.0.self_attn.q_norm.weight"].shape == (64,)
          and wo["model.layers.0.self_attn.k_norm.weight"].shape == (32,)
          and not any(k.endswith(".bias") for k in wo))
    for n in ("q_norm", "k_norm"):
        nm = f"model.layers.0.self_attn.{n}.weight"
        check(f"olmoe: {n} weight really used", rel(with_w(ro, **{nm: np.ones_like(ro.w[nm])}), lo) > 1e-3)
    # full-width vs per-head normalisation are distinguishable (so a per-head engine would fail)
    xo = np.random.default_rng(8).standard_normal((3, 64))
    co, so = F.rope_cos_sin(np.arange(3), ro.D, ro.theta)
    pa = "model.layers.0.self_attn."
    qf = F.rms_norm(xo @ ro.W(pa + "q_proj.weight").T, ro.W(pa + "q_norm.weight"), ro.eps).reshape(3, ro.nq, ro.D)
    qh = F.rms_norm((xo @ ro.W(pa + "q_proj.weight").T).reshape(3, ro.nq, ro.D),
                    ro.W(pa + "q_norm.weight").reshape(ro.nq, ro.D), ro.eps)
    check("olmoe: full-width q_norm differs from per-head q_norm", rel(qh, qf) > 1e-3)
    check("olmoe: norm_topk_prob key absent => no renormalisation",
          F.HFReference(None, config={k: v for k, v in ro.cfg.items() if k != "norm_topk_prob"},
                        weights=ro.w).renorm is False
          and rel(F.HFReference(None, config=dict(ro.cfg, norm_topk_prob=False), weights=ro.w).logits(tokens), lo)
          > 1e-3)
    check("olmoe: clip_qkv (if set) clamps", rel(F.HFReference(None, config=dict(ro.cfg, clip_qkv=0.5),
                                                              weights=ro.w).logits(tokens), lo) > 1e-3)

    # ---------------- routing tie order ----------------
    idx, wts, _ = F.route(np.array([[1.0, 2.0, 2.0, 0.5]]), 2, True)
    check("top-k ties resolve to lower expert id, sorted descending", idx.tolist() == [[1, 2]]
          and np.allclose(wts, 0.5))

    print()
    if FAILS:
        print(f"{len(FAILS)} self-test(s) FAILED: {FAILS}")
        return 1
    print("all self-tests passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
