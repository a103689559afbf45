#!/usr/bin/env bash
# Side by side on this machine: moeserve (`moeserve bench latency`, CPU backend) and llama.cpp
# (the prebuilt CPU libraries node-llama-cpp ships, driven through llama.h by llama_tp_bench with
# a persistent threadpool, the way llama.cpp's own tools run) on the same weights: the `bench`
# preset written by `moeserve generate-model` and converted to GGUF by hf_to_gguf.py. The two
# engines alternate, workload by workload, round by round, so a noisy neighbour hits both.
#
#   bench/llamacpp/run.sh RESULTS_DIR [ROUNDS]      (default 2 rounds; PRESET=tiny for a dry run)
#
# Needs build/bin/moeserve (scripts/setup.sh), npm, g++, python3-numpy, git; about 8 GB of disk
# in $WORK_DIR (default /tmp/moeserve-llamacpp). Writes RESULTS_DIR/{check.json, <engine>_<workload>
# _r<round>.json, summary.md, env.txt}.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${1:?usage: run.sh RESULTS_DIR [ROUNDS]}"
rounds="${2:-2}"
work="${WORK_DIR:-/tmp/moeserve-llamacpp}"
moeserve="$repo/build/bin/moeserve"
threads=2
mkdir -p "$out" "$work"
out="$(cd "$out" && pwd)"

[ -x "$moeserve" ] || { echo "build moeserve first (scripts/setup.sh, cmake --build build)" >&2; exit 1; }
[ -d "$here/node_modules/node-llama-cpp" ] || npm ci --prefix "$here" --no-audit --no-fund
bins="$here/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64"

# llama_tp_bench: headers from the llama.cpp release bundled with node-llama-cpp (the release of
# the prebuilt libraries), linked against those libraries.
if [ ! -x "$work/llama_tp_bench" ]; then
  rm -rf "$work/llama.cpp"
  git clone -q "$here/node_modules/node-llama-cpp/llama/gitRelease.bundle" "$work/llama.cpp"
  g++ -O2 -std=c++17 -I "$work/llama.cpp/include" -I "$work/llama.cpp/ggml/include" \
    "$here/llama_tp_bench.cpp" -o "$work/llama_tp_bench" -L"$bins" -l:libllama.v0.4.0.so \
    -l:libggml.v0.4.0.so -l:libggml-base.so -Wl,-rpath,"$bins"
fi

preset="${PRESET:-bench}"  # PRESET=tiny checks the script in seconds
model="$work/$preset"
gguf="$work/$preset.gguf"
[ -f "$model/config.json" ] || "$moeserve" generate-model --preset "$preset" --seed 0 --out "$model"
[ -f "$gguf" ] || /usr/bin/python3 "$here/hf_to_gguf.py" "$model" "$gguf"

# Same model? moeserve's f32 reference logits vs llama.cpp on 24 token ids.
tokens="5,17,300,42,99,7,250,128,64,33,400,12,100,207,319,8,77,150,3,409,51,9,60,21"
"$moeserve" logits --model "$model" --backend cpu --activations f32 --tokens "$tokens" \
  --out "$work/logits.bin" >/dev/null 2>&1
node "$here/llama_check.mjs" --model "$gguf" --tokens "$tokens" \
  --moeserve-logits "$work/logits.bin" --threads "$threads" --json "$out/check.json" >/dev/null

{
  echo "date: $(date -u)"
  echo "commit: $(git -C "$repo" rev-parse HEAD)"
  lscpu | grep -E "^(CPU\(s\)|Model name)"
  echo "llama.cpp: $(cat "$here/node_modules/node-llama-cpp/llama/llama.cpp.info.json" | tr -d '\n ')"
  echo "load before: $(cat /proc/loadavg)"
} > "$out/env.txt"

# workload: batch input output iterations
workloads=("decode_b1 1 32 64 3" "decode_b32 32 32 32 2" "prefill512 1 512 1 3")
for round in $(seq 1 "$rounds"); do
  for w in "${workloads[@]}"; do
    read -r name b i o n <<<"$w"
    echo "round $round: $name" >&2
    "$moeserve" bench latency --model "$model" --backend cpu --threads "$threads" \
      --batch-size "$b" --input-len "$i" --output-len "$o" --num-iters "$n" --num-iters-warmup 1 \
      --no-roofline --json "$out/moeserve_${name}_r${round}.json" >/dev/null 2>&1
    "$work/llama_tp_bench" --model "$gguf" --threads "$threads" --batch-size "$b" \
      --input-len "$i" --output-len "$o" --num-iters "$n" --num-iters-warmup 1 \
      --backend-dir "$bins" --json "$out/llamacpp_${name}_r${round}.json" >/dev/null 2>&1
  done
done
echo "load after: $(cat /proc/loadavg)" >> "$out/env.txt"
/usr/bin/python3 "$here/summarize.py" "$out" | tee "$out/summary.md"
