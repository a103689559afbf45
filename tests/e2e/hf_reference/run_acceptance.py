#!/usr/bin/python3
"""End-to-end acceptance of moeserve's forward pass against the numpy HF reference.

  /usr/bin/python3 tests/e2e/hf_reference/run_acceptance.py --bin build/bin/moeserve [--workdir DIR]

Part 1 (logits): writes several random-weight HF checkpoints (hf_model_writer.py) of the
  architectures qwen3_moe (incl. dense mlp_only_layers / decoder_sparse_step layers), qwen2_moe
  (q/k/v bias, shared expert), olmoe (full-width q/k norm) and mixtral, runs
  `moeserve logits ... --activations f32` on prompts of 1, 7 and 40 tokens and compares with
  hf_forward.py (compare_logits.check: max|ours-ref|/max|ref| <= tol, argmax agreement).
  --only SUBSTR restricts Part 1 to checkpoints whose name contains SUBSTR (repeatable).
  --extra-args "..." appends arguments to every moeserve command (e.g. "--backend reference").
Part 2 (malformed): corrupts checkpoints in many ways and checks that moeserve exits with a
  positive status (no signal), says something on stderr, and names the offending file / tensor /
  config field.
Exit status 0 iff every case passes.
"""

import argparse
import json
import os
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare_logits  # noqa: E402
import hf_forward  # noqa: E402
import hf_model_writer as W  # noqa: E402

MIN_ROUTE_MARGIN = 1e-4   # seeds are chosen so no routing decision is closer than this
MIN_TOP2_GAP = 2e-3       # ... and no argmax is a near-tie (relative to max|logit|)


# ---------------------------------------------------------------------------------------------
# Part 1: logits
# ---------------------------------------------------------------------------------------------

def logit_checkpoints():
    return {
        # qwen3_moe tiny single-file bf16 untied, head_dim == hidden/heads
        "qwen3_tiny_bf16": W.ModelSpec(
            arch="qwen3_moe", hidden=64, layers=2, heads=4, kv_heads=2, head_dim=16, vocab=256,
            experts=8, top_k=2, moe_intermediate=32, dtype="bf16", rope_theta=1e6),
        # qwen3_moe, 3 shards, f32 weights, tied embeddings, head_dim (32) != hidden/heads (24)
        "qwen3_sharded3_f32_tied_hd32": W.ModelSpec(
            arch="qwen3_moe", hidden=96, layers=3, heads=4, kv_heads=2, head_dim=32, vocab=384,
            experts=6, top_k=2, moe_intermediate=48, dtype="f32", shards=3,
            tie_word_embeddings=True, rope_theta=10000.0),
        # qwen3_moe, norm_topk_prob false, f16 weights, MQA (1 kv head), head_dim 32 != 64/4
        "qwen3_f16_no_norm_topk_mqa": W.ModelSpec(
            arch="qwen3_moe", hidden=64, layers=2, heads=4, kv_heads=1, head_dim=32, vocab=512,
            experts=4, top_k=2, moe_intermediate=40, dtype="f16", norm_topk_prob=False,
            rope_theta=1e6),
        # qwen3_moe, top-4 of 8, 2 shards bf16, eps 1e-5
        "qwen3_top4_sharded2_bf16": W.ModelSpec(
            arch="qwen3_moe", hidden=128, layers=2, heads=8, kv_heads=4, head_dim=16, vocab=300,
            experts=8, top_k=4, moe_intermediate=24, dtype="bf16", shards=2, rms_norm_eps=1e-5,
            rope_theta=1e6),
        # mixtral small bf16 (config without head_dim, like the real Mixtral config)
        "mixtral_small_bf16": W.ModelSpec(
            arch="mixtral", hidden=128, layers=2, heads=8, kv_heads=2, vocab=320, experts=8,
            top_k=2, moe_intermediate=64, dtype="bf16", rms_norm_eps=1e-5, rope_theta=1e6),
        # mixtral, f32, 2 shards, rope_theta 1e4, top-1
        "mixtral_top1_sharded2_f32": W.ModelSpec(
            arch="mixtral", hidden=64, layers=3, heads=4, kv_heads=4, vocab=256, experts=4,
            top_k=1, moe_intermediate=48, dtype="f32", shards=2, rms_norm_eps=1e-5,
            rope_theta=10000.0),
        # qwen3_moe with a dense-MLP layer in the middle (mlp_only_layers = [1]), bf16 single file
        "qwen3_mlp_only1_bf16": W.ModelSpec(
            arch="qwen3_moe", hidden=64, layers=3, heads=4, kv_heads=2, head_dim=16, vocab=256,
            experts=8, top_k=2, moe_intermediate=32, intermediate=96, dtype="bf16",
            mlp_only_layers=(1,), rope_theta=1e6),
        # qwen3_moe decoder_sparse_step 2 (layers 1,3 MoE; 0,2 dense), f32, 2 shards, no renorm
        "qwen3_sparse_step2_sharded2_f32": W.ModelSpec(
            arch="qwen3_moe", hidden=64, layers=4, heads=4, kv_heads=2, head_dim=32, vocab=320,
            experts=6, top_k=2, moe_intermediate=24, intermediate=80, dtype="f32", shards=2,
            decoder_sparse_step=2, norm_topk_prob=False, rope_theta=10000.0),
        # qwen2_moe like Qwen1.5-MoE-A2.7B: kv_heads == heads, top-4, no renorm (key absent from
        # config.json -> HF default False), shared expert wider than experts; bf16 single file
        "qwen2moe_tiny_bf16": W.ModelSpec(
            arch="qwen2_moe", hidden=64, layers=2, heads=4, kv_heads=4, vocab=256, experts=8,
            top_k=4, moe_intermediate=16, intermediate=128, shared_intermediate=64, dtype="bf16",
            norm_topk_prob=False, write_norm_topk_prob=False, rope_theta=1e6),
        # qwen2_moe, GQA, 3 shards, f32, tied, norm_topk_prob true, mlp_only_layers = [1]
        "qwen2moe_sharded3_f32_tied_mlp_only1": W.ModelSpec(
            arch="qwen2_moe", hidden=96, layers=3, heads=4, kv_heads=2, vocab=384, experts=6,
            top_k=2, moe_intermediate=32, intermediate=80, shared_intermediate=48, dtype="f32",
            shards=3, tie_word_embeddings=True, norm_topk_prob=True, mlp_only_layers=(1,),
            rope_theta=10000.0),
        # qwen2_moe decoder_sparse_step 2 (layers 1,3 MoE), bf16, 2 shards, eps 1e-5
        "qwen2moe_sparse_step2_sharded2_bf16": W.ModelSpec(
            arch="qwen2_moe", hidden=64, layers=4, heads=8, kv_heads=2, vocab=300, experts=4,
            top_k=2, moe_intermediate=32, intermediate=64, shared_intermediate=32, dtype="bf16",
            shards=2, decoder_sparse_step=2, norm_topk_prob=False, rms_norm_eps=1e-5,
            rope_theta=1e6),
        # olmoe like OLMoE-1B-7B: kv_heads == heads, eps 1e-5, theta 1e4, no renorm; bf16 single file
        "olmoe_tiny_bf16": W.ModelSpec(
            arch="olmoe", hidden=64, layers=2, heads=4, kv_heads=4, vocab=256, experts=8, top_k=2,
            moe_intermediate=32, dtype="bf16", norm_topk_prob=False, rms_norm_eps=1e-5,
            rope_theta=10000.0),
        # olmoe, GQA (k_norm width kv_heads*head_dim != hidden), top-4 of 12, renorm, f32, 2 shards
        "olmoe_gqa_sharded2_f32": W.ModelSpec(
            arch="olmoe", hidden=128, layers=2, heads=8, kv_heads=2, vocab=320, experts=12, top_k=4,
            moe_intermediate=24, dtype="f32", shards=2, norm_topk_prob=True, rms_norm_eps=1e-5,
            rope_theta=10000.0),
        # olmoe, f16, 3 shards, tied, MQA
        "olmoe_mqa_sharded3_f16_tied": W.ModelSpec(
            arch="olmoe", hidden=64, layers=3, heads=4, kv_heads=1, vocab=256, experts=6, top_k=2,
            moe_intermediate=40, dtype="f16", shards=3, tie_word_embeddings=True,
            norm_topk_prob=False, rms_norm_eps=1e-5, rope_theta=1e6),
    }


def prompts_for(vocab):
    p1 = [vocab // 2 + 7]
    p7 = [(3 + i * (vocab // 7)) % vocab for i in range(7)]
    p40 = [(13 + i * 97) % vocab for i in range(40)]
    p40[0] = vocab - 1   # cover both ends of the vocabulary
    p40[5] = 0
    return {"len1": p1, "len7": p7, "len40": p40}


def robust(spec, model_dir, prompts):
    """True if no routing decision / argmax of the reference is numerically fragile."""
    ref = hf_forward.HFReference(model_dir)
    for toks in prompts.values():
        lg = ref.logits(toks).astype(np.float64)
        if ref.stats.get("min_route_margin", np.inf) < MIN_ROUTE_MARGIN:
            return False
        s = np.sort(lg, axis=-1)
        if np.min(s[:, -1] - s[:, -2]) / np.max(np.abs(lg)) < MIN_TOP2_GAP:
            return False
    return True


def write_robust_model(spec, model_dir, prompts, base_seed):
    for attempt in range(64):
        spec.seed = base_seed + attempt
        W.write_model(spec, model_dir)
        if robust(spec, model_dir, prompts):
            return spec.seed
    raise RuntimeError(f"could not find a numerically robust seed for {model_dir}")


def run_logits_suite(binary, workdir, tol, extra=(), only=()):
    results = []
    for ci, (name, spec) in enumerate(logit_checkpoints().items()):
        if only and not any(o in name for o in only):
            continue
        d = os.path.join(workdir, "logits", name)
        prompts = prompts_for(spec.vocab)
        seed = write_robust_model(spec, d, prompts, base_seed=1000 * (ci + 1))
        dense = [i for i in range(spec.layers) if not spec.is_sparse_layer(i)]
        print(f"-- {name} (seed {seed}, {spec.arch}, {spec.dtype}, shards={spec.shards}, "
              f"tied={spec.tie_word_embeddings}, head_dim={spec.resolved_head_dim()}, "
              f"theta={spec.rope_theta:g}{', dense layers ' + str(dense) if dense else ''}) -> {d}")
        for pname, toks in prompts.items():
            label = f"{name}/{pname}"
            try:
                ok, _ = compare_logits.check(binary, d, toks, tol, verbose=True, label=label, extra=extra)
            except subprocess.TimeoutExpired:
                print(f"[FAIL] {label} moeserve timed out")
                ok = False
            results.append((label, ok))
    return results


# ---------------------------------------------------------------------------------------------
# Part 2: malformed checkpoints
# ---------------------------------------------------------------------------------------------

BASE_MALFORMED = dict(arch="qwen3_moe", hidden=64, layers=2, heads=4, kv_heads=2, head_dim=16,
                      vocab=256, experts=4, top_k=2, moe_intermediate=32, dtype="bf16", seed=7)
ST = "model.safetensors"


def _st(d):
    return os.path.join(d, ST)


def _edit_header(d, fn):
    """Load model.safetensors, let fn(header, data) mutate and return (header, data), rewrite."""
    hdr, data = W.read_safetensors_raw(_st(d))
    hdr, data = fn(hdr, data)
    W.rewrite_safetensors(_st(d), hdr, data)


def _drop_tensor(hdr, data, name):
    """Remove a tensor and compact the data section (all other offsets stay consistent)."""
    b, e = hdr[name]["data_offsets"]
    del hdr[name]
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        vb, ve = v["data_offsets"]
        if vb >= e:
            v["data_offsets"] = [vb - (e - b), ve - (e - b)]
    return hdr, data[:b] + data[e:]


def _append_tensor(hdr, data, name, dtype, shape, raw):
    hdr[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [len(data), len(data) + len(raw)]}
    return hdr, data + raw


def m_truncated(d):
    size = os.path.getsize(_st(d))
    with open(_st(d), "r+b") as f:
        f.truncate(int(size * 0.6))


def m_empty_file(d):
    with open(_st(d), "wb") as f:
        f.write(b"\x05\x00\x00")


def m_header_len_past_end(d):
    size = os.path.getsize(_st(d))
    with open(_st(d), "r+b") as f:
        f.write(struct.pack("<Q", size + 4096))


def m_bad_json(d):
    with open(_st(d), "r+b") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        hb = f.read(n)
    bad = b'{"model.embed_tokens.weight": {"dtype": "BF16", "shape": [256, 64], "data_offs'
    bad = (bad + b"\x00" * n)[:n]           # same length, not JSON
    with open(_st(d), "r+b") as f:
        f.seek(8)
        f.write(bad)


def m_offsets_out_of_range(d):
    t = "model.layers.1.self_attn.o_proj.weight"

    def fn(h, data):
        b, e = h[t]["data_offsets"]
        h[t]["data_offsets"] = [len(data) + 64, len(data) + 64 + (e - b)]
        return h, data
    _edit_header(d, fn)
    return [t]


def m_overlapping(d):
    a, b_ = "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.o_proj.weight"

    def fn(h, data):
        assert h[a]["shape"] == h[b_]["shape"]  # same byte size: only the overlap is wrong
        h[b_]["data_offsets"] = list(h[a]["data_offsets"])
        return h, data
    _edit_header(d, fn)
    return [a, b_]


def m_dtype_size_mismatch(d):
    t = "model.layers.0.mlp.experts.1.down_proj.weight"

    def fn(h, data):
        h[t]["dtype"] = "F32"  # BF16 bytes declared as F32: byte size no longer matches
        return h, data
    _edit_header(d, fn)
    return [t]


def m_shape_size_mismatch(d):
    t = "model.layers.1.mlp.experts.0.gate_proj.weight"

    def fn(h, data):
        h[t]["shape"] = [h[t]["shape"][0], h[t]["shape"][1] + 1]  # bytes for F*H, shape F*(H+1)
        return h, data
    _edit_header(d, fn)
    return [t]


def m_missing_tensor(d):
    t = "model.layers.1.mlp.experts.2.up_proj.weight"
    _edit_header(d, lambda h, data: _drop_tensor(h, data, t))
    return [t]


def m_extra_tensor(d):
    t = "model.layers.7.self_attn.q_proj.weight"  # layer index beyond num_hidden_layers = 2
    raw = W.encode(np.ones((64, 64), np.float32), "BF16")
    _edit_header(d, lambda h, data: _append_tensor(h, data, t, "BF16", (64, 64), raw))
    return [t]


def m_shape_vs_config(d):
    t = "model.layers.0.self_attn.q_proj.weight"  # config says [heads*head_dim=64, 64]

    def fn(h, data):
        h, data = _drop_tensor(h, data, t)
        raw = W.encode(np.ones((48, 64), np.float32), "BF16")
        return _append_tensor(h, data, t, "BF16", (48, 64), raw)
    _edit_header(d, fn)
    return [t]


def m_q_norm_wrong_len(d):
    t = "model.layers.1.self_attn.k_norm.weight"  # must be [head_dim=16]

    def fn(h, data):
        h, data = _drop_tensor(h, data, t)
        raw = W.encode(np.ones((64,), np.float32), "BF16")
        return _append_tensor(h, data, t, "BF16", (64,), raw)
    _edit_header(d, fn)
    return [t]


def m_config_missing_field(d):
    p = os.path.join(d, "config.json")
    cfg = json.load(open(p))
    del cfg["hidden_size"]
    json.dump(cfg, open(p, "w"), indent=2)
    return ["hidden_size"]


def m_config_not_json(d):
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write('{"model_type": "qwen3_moe", "hidden_size": 64,,, this is not json\n')


def m_config_missing(d):
    os.remove(os.path.join(d, "config.json"))


# sharded variants ------------------------------------------------------------------------------

def m_index_missing_shard(d):
    os.remove(os.path.join(d, W.shard_file_name(1, 3)))


def m_index_not_json(d):
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        f.write('{"metadata": {"total_size": 12}, "weight_map": {"model.norm.weight": ')


def m_index_names_absent_tensor(d):
    p = os.path.join(d, "model.safetensors.index.json")
    idx = json.load(open(p))
    t = "model.layers.0.mlp.experts.3.down_proj.weight"
    shard = idx["weight_map"][t]
    sp = os.path.join(d, shard)
    hdr, data = W.read_safetensors_raw(sp)
    hdr, data = _drop_tensor(hdr, data, t)
    W.rewrite_safetensors(sp, hdr, data)
    return [t]


# (name, sharded?, mutate, always-acceptable mentions)
MALFORMED = [
    ("truncated_safetensors", False, m_truncated, [ST]),
    ("file_shorter_than_8_bytes", False, m_empty_file, [ST]),
    ("header_length_past_end", False, m_header_len_past_end, [ST]),
    ("bad_json_header", False, m_bad_json, [ST]),
    ("data_offsets_out_of_range", False, m_offsets_out_of_range, [ST]),
    ("overlapping_offsets", False, m_overlapping, [ST]),
    ("dtype_vs_byte_size_mismatch", False, m_dtype_size_mismatch, [ST]),
    ("shape_vs_byte_size_mismatch", False, m_shape_size_mismatch, [ST]),
    ("missing_expert_tensor", False, m_missing_tensor, []),
    ("unexpected_extra_tensor", False, m_extra_tensor, [ST]),
    ("q_proj_rows_vs_config", False, m_shape_vs_config, [ST]),
    ("k_norm_len_vs_head_dim", False, m_q_norm_wrong_len, [ST]),
    ("config_missing_hidden_size", False, m_config_missing_field, ["config.json"]),
    ("config_not_json", False, m_config_not_json, ["config.json"]),
    ("config_json_absent", False, m_config_missing, ["config.json"]),
    ("index_names_missing_shard", True, m_index_missing_shard, [W.shard_file_name(1, 3)]),
    ("index_not_json", True, m_index_not_json, ["model.safetensors.index.json"]),
    ("index_lists_tensor_absent_from_shard", True, m_index_names_absent_tensor, []),
]


def run_malformed_suite(binary, workdir, extra=()):
    results = []
    base1 = os.path.join(workdir, "malformed", "_base_single")
    base3 = os.path.join(workdir, "malformed", "_base_sharded")
    W.write_model(W.ModelSpec(**BASE_MALFORMED), base1)
    W.write_model(W.ModelSpec(**dict(BASE_MALFORMED, shards=3)), base3)
    # Sanity: the unmodified bases must load and run (otherwise the failures below prove nothing).
    for base in (base1, base3):
        ok, info = compare_logits.check(binary, base, [1, 2], 1e-4, verbose=False, extra=extra)
        print(f"[{'PASS' if ok else 'FAIL'}] malformed/baseline{os.path.basename(base)}: loads and matches "
              f"reference (rc={info.get('returncode')}, rel_err={info.get('rel_err', float('nan')):.2e})")
        results.append((f"malformed/baseline{os.path.basename(base)}", ok))
    for name, sharded, mutate, mentions in MALFORMED:
        d = os.path.join(workdir, "malformed", name)
        if os.path.exists(d):
            shutil.rmtree(d)
        shutil.copytree(base3 if sharded else base1, d)
        extra = mutate(d) or []
        accept = list(mentions) + list(extra)
        out = os.path.join(d, "out.f32")
        cmd = [binary, "logits", "--model", d, "--tokens", "1,2", "--out", out, *extra]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            rc, err = p.returncode, p.stderr.strip()
        except subprocess.TimeoutExpired:
            rc, err = None, "<timed out>"
        problems = []
        if rc is None:
            problems.append("timed out")
        elif rc < 0:
            problems.append(f"killed by signal {-rc}")
        elif rc == 0:
            problems.append("exit status 0")
        if not err:
            problems.append("empty stderr")
        elif accept and not any(a.lower() in err.lower() for a in accept):
            problems.append(f"stderr names none of {accept}")
        ok = not problems
        shown = err.replace("\n", " | ")[:400]
        print(f"[{'PASS' if ok else 'FAIL'}] malformed/{name}: rc={rc} "
              f"{'(' + '; '.join(problems) + ') ' if problems else ''}stderr: {shown!r}")
        results.append((f"malformed/{name}", ok))
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="path to the moeserve binary")
    ap.add_argument("--workdir", help="where checkpoints are written (default: a temp dir, removed)")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--skip-logits", action="store_true")
    ap.add_argument("--skip-malformed", action="store_true")
    ap.add_argument("--extra-args", default="",
                    help='extra arguments appended to every moeserve command, e.g. "--backend reference"')
    ap.add_argument("--only", action="append", default=[],
                    help="run only the logits checkpoints whose name contains this (repeatable)")
    a = ap.parse_args(argv)
    extra = shlex.split(a.extra_args)

    binary = os.path.abspath(a.bin)
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        print(f"moeserve binary not found or not executable: {binary}")
        return 2
    tmp = None
    workdir = a.workdir
    if not workdir:
        tmp = tempfile.mkdtemp(prefix="moeserve_hfref_")
        workdir = tmp
    os.makedirs(workdir, exist_ok=True)
    t0 = time.time()
    results = []
    try:
        if not a.skip_logits:
            print(f"== logits vs numpy HF reference (moeserve extra args: {extra or 'none'}) ==")
            results += run_logits_suite(binary, workdir, a.tol, extra, a.only)
        if not a.skip_malformed:
            print("== malformed checkpoints ==")
            results += run_malformed_suite(binary, workdir, extra)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    failed = [n for n, ok in results if not ok]
    print(f"\n== summary: {len(results) - len(failed)}/{len(results)} passed in {time.time() - t0:.1f}s ==")
    for n in failed:
        print(f"  FAILED: {n}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
