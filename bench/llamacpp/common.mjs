// Shared helpers: load llama.cpp through node-llama-cpp's prebuilt CPU binary.
import fs from "node:fs";
import path from "node:path";
import {fileURLToPath} from "node:url";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

export const here = path.dirname(fileURLToPath(import.meta.url));

export function parseArgs(argv, defaults) {
    const out = {...defaults};
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (!a.startsWith("--")) throw new Error(`unexpected argument ${a}`);
        const key = a.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
        if (!(key in defaults)) throw new Error(`unknown option ${a}`);
        if (typeof defaults[key] === "boolean") out[key] = true;
        else {
            const v = argv[++i];
            out[key] = typeof defaults[key] === "number" ? Number(v) : v;
        }
    }
    return out;
}

export function packageVersion(name) {
    const p = path.join(here, "node_modules", ...name.split("/"), "package.json");
    return JSON.parse(fs.readFileSync(p, "utf8")).version;
}

// Which ggml CPU variant the prebuilt binary loaded (it picks one per CPU: zen4, icelake, ...),
// caught from llama.cpp's own log line.
export async function loadLlama({threads, verbose = false, debugLog = false}) {
    const info = {cpu_backend: null};
    const llama = await getLlama({
        gpu: false,
        build: "never",          // the prebuilt @node-llama-cpp/linux-x64 binary, never a local build
        maxThreads: threads,
        logLevel: verbose || debugLog ? LlamaLogLevel.debug : LlamaLogLevel.warn,
        logger(level, message) {
            const m = /loaded CPU backend from (.*)/.exec(message);
            if (m) info.cpu_backend = path.basename(m[1].trim());
            if (verbose || level === LlamaLogLevel.error || level === LlamaLogLevel.fatal ||
                (!debugLog && level === LlamaLogLevel.warn)) {
                process.stderr.write(`[llama.cpp] ${message}\n`);
            }
        }
    });
    info.node_llama_cpp = packageVersion("node-llama-cpp");
    info.prebuilt_binary = `@node-llama-cpp/linux-x64@${packageVersion("@node-llama-cpp/linux-x64")}`;
    info.llama_cpp_release = llama.llamaCppRelease;
    info.build_type = llama.buildType;
    info.system_info = llama.systemInfo;
    info.cpu_math_cores = llama.cpuMathCores;
    return {llama, info};
}

// Deterministic prompts: token ids uniform in [3, vocab - 1] (as `moeserve bench latency` draws
// them; the generator differs, mulberry32 here vs std::mt19937 there).
export function randomPrompts(count, len, vocab, seed = 0) {
    let s = seed >>> 0;
    const next = () => {
        s = (s + 0x6D2B79F5) >>> 0;
        let t = s;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const lo = 3, hi = Math.max(3, vocab - 1);
    return Array.from({length: count}, () =>
        Array.from({length: len}, () => lo + Math.floor(next() * (hi - lo + 1))));
}
