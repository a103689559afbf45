// llama.cpp side of the side-by-side benchmark, shaped like `moeserve bench latency`:
// a static batch of B prompts of I random token ids is prefilled (each sequence's last prompt
// position yields the first output token), then the B sequences decode O - 1 more steps together,
// greedily, one token per sequence per step (all B tokens of a step go into one llama_decode).
//
//   node llama_bench.mjs --model M.gguf --batch-size B --input-len I --output-len O \
//        [--threads 2] [--num-iters 3] [--num-iters-warmup 1] [--json FILE]
//
// prefill_tokens_per_second = B * I / prefill seconds; decode_tokens_per_second =
// B * (O - 1) / decode seconds (aggregate over the batch) — the same definitions as moeserve.
import fs from "node:fs";
import {performance} from "node:perf_hooks";
import {loadLlama, parseArgs, randomPrompts} from "./common.mjs";

const o = parseArgs(process.argv.slice(2), {
    model: "", batchSize: 1, inputLen: 32, outputLen: 64, threads: 2, numIters: 3,
    numItersWarmup: 1, json: "", seed: 0, mmap: "auto", verbose: false
});
if (!o.model) throw new Error("--model is required");

const {llama, info} = await loadLlama({threads: o.threads, verbose: o.verbose});
const t0 = performance.now();
const model = await llama.loadModel({
    modelPath: o.model,
    useMmap: o.mmap === "auto" ? undefined : o.mmap === "on"
});
const loadSeconds = (performance.now() - t0) / 1e3;
const vocab = model.fileInfo.fullTensorInfo.find((t) => t.name === "token_embd.weight").dimensions[1];

const B = o.batchSize, I = o.inputLen, O = o.outputLen;
const context = await model.createContext({
    sequences: B,
    contextSize: I + O,                 // per sequence (node-llama-cpp pads it up)
    batchSize: Math.max(512, B),        // n_batch = n_ubatch: a 512-token prompt is one ubatch
    threads: {ideal: o.threads, min: o.threads}
});
const seqs = Array.from({length: B}, () => context.getSequence());
const prompts = randomPrompts(B, I, vocab, o.seed);
const greedy = {generateNext: {token: true}};   // temperature 0 (default) = greedy sampler

async function iteration() {
    await Promise.all(seqs.map((s) => s.clearHistory()));
    const next = new Array(B);
    const p0 = performance.now();
    const first = await Promise.all(seqs.map((s, i) =>
        s.controlledEvaluate([...prompts[i].slice(0, -1), [prompts[i][I - 1], greedy]])));
    for (let i = 0; i < B; i++) next[i] = first[i][I - 1].next.token;
    const p1 = performance.now();
    let steps = 0;
    for (let step = 1; step < O; step++) {
        // All B evaluations are queued in the same tick, so node-llama-cpp dispatches them as one
        // batch of B tokens (dispatchSchedule "nextCycle", strategy "maximumParallelism").
        const res = await Promise.all(seqs.map((s, i) => s.controlledEvaluate([[next[i], greedy]])));
        for (let i = 0; i < B; i++) next[i] = res[i][0].next.token;
        steps++;
    }
    const p2 = performance.now();
    return {prefill_seconds: (p1 - p0) / 1e3, decode_seconds: (p2 - p1) / 1e3, decode_steps: steps};
}

for (let i = 0; i < o.numItersWarmup; i++) {
    await iteration();
    process.stderr.write(`warm-up iteration ${i + 1}/${o.numItersWarmup} done\n`);
}
const results = [];
for (let i = 0; i < o.numIters; i++) {
    const r = await iteration();
    process.stderr.write(`iteration ${i + 1}/${o.numIters}: prefill ${r.prefill_seconds.toFixed(6)} s, ` +
        `decode ${r.decode_seconds.toFixed(6)} s\n`);
    results.push(r);
}
const sum = (k) => results.reduce((a, r) => a + r[k], 0);
const prefillS = sum("prefill_seconds"), decodeS = sum("decode_seconds"), steps = sum("decode_steps");
const out = {
    engine: "llama.cpp",
    prefill_tokens_per_second: B * I * results.length / prefillS,
    decode_tokens_per_second: decodeS > 0 ? B * steps / decodeS : 0,
    avg_latency_seconds: (prefillS + decodeS) / results.length,
    batch_size: B,
    input_len: I,
    output_len: O,
    threads: context.currentThreads ?? o.threads,
    num_iters: results.length,
    latencies_seconds: results.map((r) => r.prefill_seconds + r.decode_seconds),
    prefill_tokens_per_second_best_iter: Math.max(...results.map((r) => B * I / r.prefill_seconds)),
    decode_tokens_per_second_best_iter: decodeS > 0
        ? Math.max(...results.map((r) => B * r.decode_steps / r.decode_seconds)) : 0,
    prefill_seconds_avg: prefillS / results.length,
    decode_seconds_avg: decodeS / results.length,
    decode_step_seconds_avg: steps > 0 ? decodeS / steps : 0,
    iterations: results,
    model: o.model,
    model_load_seconds: loadSeconds,
    context_size: context.contextSize,
    batch_size_llama: context.batchSize,
    flash_attention: context.flashAttention,
    use_mmap: model.useMmap,
    ...info
};
const text = JSON.stringify(out, null, 2);
console.log(text);
if (o.json) fs.writeFileSync(o.json, text + "\n");
await context.dispose();
await model.dispose();
