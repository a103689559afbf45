// An independent gRPC client (Node.js: @grpc/grpc-js + @grpc/proto-loader, no code shared with
// the C++ server) that drives a running `moeserve serve`:
//   - native moeserve.v1.MoeServe/Generate, streaming and unary;
//   - KServe v2 / Triton inference.GRPCInferenceService: ServerLive / ServerReady / ModelReady /
//     ModelConfig, ModelStreamInfer with every case on one stream (ids echoed,
//     triton_final_response on every response, empty final responses) and unary ModelInfer;
// and checks that every path gives the reference tokens (greedy, from `moeserve run`).
//
// Usage:
//   node node_client.js --address 127.0.0.1:PORT --proto-dir DIR --cases FILE.json
//       cases: [{"prompt": [ids], "max_tokens": N, "expected": [ids]}, ...]
//   node node_client.js --address ... --proto-dir DIR --hold N
//       one streaming Generate of N tokens (ignore_eos); prints "HOLDING" after the first chunk
//       and "HOLD-DONE <tokens> <finish_reason>" at the end (used to test draining).
// Exit code 0 when every check passes; failures are printed one per line.
'use strict';

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

function parseArgs(argv) {
  const args = {};
  for (let i = 2; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
  return args;
}

const args = parseArgs(process.argv);
const definition = protoLoader.loadSync(
    ['moeserve/v1/moeserve.proto', 'inference/grpc_service.proto'], {
      includeDirs: [path.resolve(args['proto-dir'])],
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
const loaded = grpc.loadPackageDefinition(definition);
const native = new loaded.moeserve.v1.MoeServe(args.address, grpc.credentials.createInsecure());
const kserve =
    new loaded.inference.GRPCInferenceService(args.address, grpc.credentials.createInsecure());

const failures = [];
function check(condition, message) {
  if (!condition) failures.push(message);
  return condition;
}
function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}
function deadline(seconds) {
  return new Date(Date.now() + seconds * 1000);
}
function unary(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, {deadline: deadline(60)}, (err, response) => {
      if (err) reject(err); else resolve(response);
    });
  });
}

// --- native Generate ---------------------------------------------------------------------------

function generate(prompt, maxTokens, stream, extra = {}) {
  return new Promise((resolve, reject) => {
    const request = {
      request_id: extra.request_id || '',
      input_ids: prompt,
      sampling: Object.assign({temperature: 0, max_tokens: maxTokens}, extra.sampling || {}),
      stream,
    };
    const call = native.Generate(request, {deadline: deadline(120)});
    const messages = [];
    call.on('data', (m) => {
      messages.push(m);
      if (extra.onData) extra.onData(m);
    });
    call.on('error', reject);
    call.on('end', () => resolve(messages));
  });
}

function tokensOf(messages) {
  const out = [];
  for (const m of messages) {
    const ids = m.response === 'chunk' ? m.chunk.token_ids : m.complete.output_ids;
    for (const t of ids) out.push(Number(t));
  }
  return out;
}

async function checkNative(c, i) {
  const streamed = await generate(c.prompt, c.max_tokens, true, {request_id: `n-${i}`});
  check(streamed.length >= 1 && streamed[streamed.length - 1].response === 'complete',
        `native stream ${i}: the last message is the complete`);
  check(streamed.slice(0, -1).every((m) => m.response === 'chunk'),
        `native stream ${i}: chunks before the complete`);
  check(streamed.every((m) => m.request_id === `n-${i}`), `native stream ${i}: request_id echoed`);
  check(same(tokensOf(streamed), c.expected),
        `native stream ${i}: tokens ${tokensOf(streamed)} != expected ${c.expected}`);
  const whole = await generate(c.prompt, c.max_tokens, false);
  check(whole.length === 1 && whole[0].response === 'complete',
        `native unary ${i}: exactly one complete message`);
  check(same(tokensOf(whole), c.expected),
        `native unary ${i}: tokens ${tokensOf(whole)} != expected ${c.expected}`);
}

// --- KServe ------------------------------------------------------------------------------------

function int32Raw(values) {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeInt32LE(v, i * 4));
  return b;
}
function boolRaw(value) {
  return Buffer.from([value ? 1 : 0]);
}
function int32Of(buffer) {
  const out = [];
  for (let i = 0; i + 4 <= buffer.length; i += 4) out.push(buffer.readInt32LE(i));
  return out;
}

// A TRT-LLM style request in raw form (tritonclient's default encoding).
function tokenRequest(id, prompt, maxTokens, streaming, extra = {}) {
  const inputs = [
    ['input_ids', 'INT32', [1, prompt.length], int32Raw(prompt)],
    ['input_lengths', 'INT32', [1, 1], int32Raw([prompt.length])],
    ['request_output_len', 'INT32', [1, 1], int32Raw([maxTokens])],
    ['streaming', 'BOOL', [1, 1], boolRaw(streaming)],
  ];
  if (extra.exclude_input) inputs.push(['exclude_input_in_output', 'BOOL', [1, 1], boolRaw(true)]);
  const parameters = {};
  if (extra.empty_final) parameters.triton_enable_empty_final_response = {bool_param: true};
  return {
    model_name: 'tensorrt_llm',
    id,
    parameters,
    inputs: inputs.map(([name, datatype, shape]) => ({name, datatype, shape})),
    raw_input_contents: inputs.map((x) => x[3]),
  };
}

function outputInt32(response, name) {
  const index = response.outputs.findIndex((o) => o.name === name);
  if (index < 0) return null;
  return int32Of(response.raw_output_contents[index]);
}

function finalFlag(response) {
  const p = response.parameters && response.parameters.triton_final_response;
  return p ? p.bool_param : undefined;
}

function streamInfer(requests) {
  return new Promise((resolve, reject) => {
    const call = kserve.ModelStreamInfer({deadline: deadline(120)});
    const byId = {};
    call.on('data', (r) => {
      const id = r.infer_response ? r.infer_response.id : '';
      (byId[id] = byId[id] || []).push(r);
    });
    call.on('error', reject);
    call.on('end', () => resolve(byId));
    for (const r of requests) call.write(r);
    call.end();
  });
}

async function checkKServe(cases) {
  const live = await unary(kserve, 'ServerLive', {});
  check(live.live === true, 'ServerLive: live');
  const ready = await unary(kserve, 'ServerReady', {});
  check(ready.ready === true, 'ServerReady: ready');
  const modelReady = await unary(kserve, 'ModelReady', {name: 'tensorrt_llm'});
  check(modelReady.ready === true, 'ModelReady(tensorrt_llm): ready');
  const config = await unary(kserve, 'ModelConfig', {name: 'tensorrt_llm'});
  check(config.config.model_transaction_policy.decoupled === true, 'ModelConfig: decoupled');
  check(config.config.max_batch_size > 0, 'ModelConfig: max_batch_size > 0');
  try {
    await unary(kserve, 'ModelReady', {name: 'no-such-model'});
    check(false, 'ModelReady(unknown): NOT_FOUND expected');
  } catch (err) {
    check(err.code === grpc.status.NOT_FOUND, `ModelReady(unknown): code ${err.code}`);
  }

  // Every case on one stream, streaming, with the empty-final opt-in perf_analyzer sends.
  const requests = cases.map(
      (c, i) => tokenRequest(`k-${i}`, c.prompt, c.max_tokens, true,
                             {exclude_input: true, empty_final: true}));
  const byId = await streamInfer(requests);
  cases.forEach((c, i) => {
    const responses = byId[`k-${i}`] || [];
    if (!check(responses.length > 0, `stream k-${i}: no responses`)) return;
    responses.forEach((r, j) => {
      check(r.error_message === '', `stream k-${i}: error ${r.error_message}`);
      const last = j === responses.length - 1;
      check(finalFlag(r.infer_response) === last,
            `stream k-${i}: response ${j} triton_final_response=${finalFlag(r.infer_response)}`);
    });
    const tokens = [];
    for (const r of responses) {
      const ids = outputInt32(r.infer_response, 'output_ids');
      if (ids) tokens.push(...ids);
    }
    check(same(tokens, c.expected), `stream k-${i}: tokens ${tokens} != expected ${c.expected}`);
  });
  check(Object.keys(byId).length === cases.length, `stream: ids ${Object.keys(byId)}`);

  // Unary ModelInfer: the whole output once, the prompt echoed first (TRT-LLM default).
  const c = cases[0];
  const response = await unary(kserve, 'ModelInfer', tokenRequest('u-0', c.prompt, c.max_tokens,
                                                                  false));
  check(response.id === 'u-0', 'ModelInfer: id echoed');
  const ids = outputInt32(response, 'output_ids');
  check(same(ids, c.prompt.concat(c.expected)),
        `ModelInfer: output_ids ${ids} != prompt + expected`);
}

async function hold(tokens) {
  let announced = false;
  const messages = await generate([3, 4, 5], tokens, true, {
    sampling: {ignore_eos: true},
    onData: () => {
      if (!announced) {
        announced = true;
        console.log('HOLDING');
      }
    },
  });
  const last = messages[messages.length - 1];
  console.log(`HOLD-DONE ${tokensOf(messages).length} ${last.complete.finish_reason}`);
}

async function main() {
  if (args.hold) {
    await hold(Number(args.hold));
    return;
  }
  const cases = JSON.parse(fs.readFileSync(args.cases, 'utf8'));
  for (let i = 0; i < cases.length; ++i) await checkNative(cases[i], i);
  await checkKServe(cases);
  for (const f of failures) console.log(`FAIL ${f}`);
  console.log(failures.length === 0 ? `node client: all checks passed (${cases.length} cases)`
                                    : `node client: ${failures.length} checks failed`);
  if (failures.length > 0) process.exitCode = 1;
}

main().catch((err) => {
  console.log(`FAIL ${err.stack || err}`);
  process.exitCode = 1;
});
