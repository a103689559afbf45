// Correctness check: is the GGUF the same model as the moeserve directory it came from?
//
//   node llama_check.mjs --model M.gguf --tokens 5,17,... --moeserve-logits L.bin \
//        [--moeserve-greedy 90,296,...] [--gen N] [--threads 2] [--json FILE]
//
// L.bin is `moeserve logits --tokens ... --out L.bin` (float32 [T, V]). llama.cpp evaluates the
// same token ids and returns, at every position, the softmax over the whole vocabulary (greedy
// sampler: no top-k / top-p truncation); both sides are compared as log-probabilities
// (log-softmax removes the per-row constant, which probabilities cannot carry):
// top-1 agreement per position, max / mean |Δ log p|, and the same restricted to moeserve's
// top-10 tokens. With --moeserve-greedy, llama.cpp also generates --gen tokens greedily from
// the same prompt and the sequences are compared token by token.
import fs from "node:fs";
import {loadLlama, parseArgs} from "./common.mjs";

const o = parseArgs(process.argv.slice(2), {
    model: "", tokens: "", moeserveLogits: "", moeserveGreedy: "", gen: 0, threads: 2, json: "",
    verbose: false
});
const tokens = o.tokens.split(",").map(Number);
const T = tokens.length;
const {llama, info} = await loadLlama({threads: o.threads, verbose: o.verbose, debugLog: true});
const model = await llama.loadModel({modelPath: o.model});
const V = model.fileInfo.fullTensorInfo.find((t) => t.name === "token_embd.weight").dimensions[1];
const context = await model.createContext({
    sequences: 1, contextSize: T + Math.max(o.gen, 1) + 1, threads: {ideal: o.threads, min: o.threads}
});
const seq = context.getSequence();

// llama.cpp log-probabilities at every position.
const out = await seq.controlledEvaluate(tokens.map((t) => [t, {generateNext: {probabilities: true}}]));
const llamaLogp = out.map((r) => {
    const row = new Float64Array(V).fill(-Infinity);
    for (const [tok, p] of r.next.probabilities) row[tok] = Math.log(p);
    return row;
});

// moeserve logits -> log-softmax.
const buf = fs.readFileSync(o.moeserveLogits);
const logits = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
if (logits.length !== T * V) throw new Error(`moeserve logits: ${logits.length} values, expected ${T}x${V}`);
const argmax = (a) => a.reduce((bi, v, i) => (v > a[bi] ? i : bi), 0);
const positions = [];
let agree = 0, maxAbs = 0, sumAbs = 0, maxAbsTop = 0;
for (let t = 0; t < T; t++) {
    const row = logits.subarray(t * V, (t + 1) * V);
    let m = -Infinity;
    for (const v of row) m = Math.max(m, v);
    let s = 0;
    for (const v of row) s += Math.exp(v - m);
    const lse = m + Math.log(s);
    const ms = Array.from(row, (v) => v - lse);
    const ll = llamaLogp[t];
    const order = ms.map((v, i) => i).sort((a, b) => ms[b] - ms[a]);
    const mTop = order[0], lTop = argmax(ll);
    let rowMax = 0, rowSum = 0, rowMaxTop = 0;
    for (let i = 0; i < V; i++) {
        const d = Math.abs(ms[i] - ll[i]);
        rowMax = Math.max(rowMax, d);
        rowSum += d;
    }
    for (const i of order.slice(0, 10)) rowMaxTop = Math.max(rowMaxTop, Math.abs(ms[i] - ll[i]));
    agree += mTop === lTop;
    maxAbs = Math.max(maxAbs, rowMax);
    maxAbsTop = Math.max(maxAbsTop, rowMaxTop);
    sumAbs += rowSum;
    positions.push({
        position: t, input_token: tokens[t], moeserve_top1: mTop, llama_top1: lTop,
        moeserve_top1_margin: ms[order[0]] - ms[order[1]],
        moeserve_top1_logp: ms[mTop], llama_top1_logp: ll[lTop],
        max_abs_dlogp: rowMax, mean_abs_dlogp: rowSum / V, max_abs_dlogp_top10: rowMaxTop
    });
}
const result = {
    model: o.model,
    vocab: V,
    positions: T,
    top1_agreement: agree / T,
    top1_agree_count: agree,
    max_abs_dlogp: maxAbs,
    mean_abs_dlogp: sumAbs / (T * V),
    max_abs_dlogp_top10: maxAbsTop,
    per_position: positions,
    ...info
};

if (o.moeserveGreedy) {
    const ref = o.moeserveGreedy.split(",").map(Number);
    const n = o.gen || ref.length;
    await seq.clearHistory();
    const gen = [];
    // generate n tokens greedily: the prompt's last position gives the first
    let next = (await seq.controlledEvaluate([...tokens.slice(0, -1), [tokens[T - 1], {generateNext: {token: true}}]]))[T - 1].next.token;
    gen.push(next);
    while (gen.length < n) {
        next = (await seq.controlledEvaluate([[next, {generateNext: {token: true}}]]))[0].next.token;
        gen.push(next);
    }
    let prefix = 0;
    while (prefix < n && gen[prefix] === ref[prefix]) prefix++;
    result.greedy = {moeserve: ref.slice(0, n), llama: gen, matching_prefix: prefix, length: n,
        identical: prefix === n};
}

const text = JSON.stringify(result, null, 2);
if (o.json) fs.writeFileSync(o.json, text + "\n");
const summary = {...result};
delete summary.per_position;
console.log(JSON.stringify(summary, null, 2));
await context.dispose();
await model.dispose();
