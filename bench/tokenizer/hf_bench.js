#!/usr/bin/env node
// Hugging Face tokenizers (the Rust crate, native build from npm @anush008/tokenizers) on the
// benchmark corpus: encode and decode MB/s, measured like `moeserve tokenize --bench` (one
// warm-up pass, then whole passes for at least SECONDS each). Both the per-text API (one
// encode() per text) and the batch API (encodeBatch over 64 texts; single-threaded when
// RAYON_NUM_THREADS=1 / TOKENIZERS_PARALLELISM=false) are measured and the faster is reported,
// so the comparison is against HF's best on one core. Prints one JSON object.
//
//   node hf_bench.js --model DIR --jsonl CORPUS [--seconds 5]
'use strict';
const fs = require('fs');
const path = require('path');
const {createRequire} = require('module');

const repoRoot = path.resolve(__dirname, '..', '..');
const {Tokenizer} = createRequire(path.join(repoRoot, 'package.json'))('@anush008/tokenizers');

function parseArgs() {
  const args = {seconds: 5};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
  args.seconds = Number(args.seconds);
  return args;
}

// Runs `pass` (async, returns bytes processed) once to warm up, then until `seconds` elapse.
async function measure(pass, seconds) {
  await pass();
  let bytes = 0;
  let passes = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  do {
    bytes += await pass();
    ++passes;
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  } while (elapsed < seconds);
  return {mb_per_s: bytes / elapsed / 1e6, passes};
}

function batches(items, size) {
  const out = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

async function main() {
  const args = parseArgs();
  const tok = Tokenizer.fromFile(path.join(args.model, 'tokenizer.json'));
  const texts = fs.readFileSync(args.jsonl, 'utf8').split('\n').filter((l) => l.length > 0)
      .map((l) => JSON.parse(l));
  const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t, 'utf8'), 0);
  const options = {addSpecialTokens: true};

  const ids = [];
  for (const t of texts) ids.push((await tok.encode(t, null, options)).getIds());
  const tokens = ids.reduce((n, v) => n + v.length, 0);

  const encodeSingle = await measure(async () => {
    for (const t of texts) (await tok.encode(t, null, options)).getIds();
    return bytes;
  }, args.seconds);
  const textBatches = batches(texts, 64);
  const encodeBatch = await measure(async () => {
    for (const b of textBatches) {
      for (const e of await tok.encodeBatch(b, options)) e.getIds();
    }
    return bytes;
  }, args.seconds);

  const decodeSingle = await measure(async () => {
    let n = 0;
    for (const v of ids) n += Buffer.byteLength(await tok.decode(v, false), 'utf8');
    return n;
  }, args.seconds);
  const idBatches = batches(ids, 64);
  const decodeBatch = await measure(async () => {
    let n = 0;
    for (const b of idBatches) {
      for (const s of await tok.decodeBatch(b, false)) n += Buffer.byteLength(s, 'utf8');
    }
    return n;
  }, args.seconds);

  console.log(JSON.stringify({
    implementation: 'huggingface-tokenizers (@anush008/tokenizers native)',
    texts: texts.length,
    bytes,
    tokens,
    encode_mb_per_s: Math.max(encodeSingle.mb_per_s, encodeBatch.mb_per_s),
    decode_mb_per_s: Math.max(decodeSingle.mb_per_s, decodeBatch.mb_per_s),
    encode_single_mb_per_s: encodeSingle.mb_per_s,
    encode_batch_mb_per_s: encodeBatch.mb_per_s,
    decode_single_mb_per_s: decodeSingle.mb_per_s,
    decode_batch_mb_per_s: decodeBatch.mb_per_s,
  }));
}

main().catch((e) => {
  console.error(e.stack || e);
  process.exit(1);
});
