#!/usr/bin/python3
"""End-to-end check of `moeserve serve` with clients that share no code with the server.

1. Generates the `tiny` preset model and computes reference tokens with `moeserve run`
   (greedy, the C++ engine path without gRPC).
2. Starts `moeserve serve --model DIR` on a free port and polls the standard health service
   from process start (python3-grpcio, hand-serialised messages): it must end SERVING for "",
   "moeserve.v1.MoeServe" and "inference.GRPCInferenceService"; an unknown service name is
   NOT_FOUND. NOT_SERVING before the warm-up is reported when the poll catches it (the window
   is a few milliseconds on the tiny model).
3. Runs the Node.js client (@grpc/grpc-js): native Generate streaming and unary, KServe
   ModelStreamInfer (several requests on one stream) and ModelInfer must give the reference
   tokens.
4. Drain: with a long request in flight, SIGTERM turns health NOT_SERVING for every service
   name (and KServe ServerReady false); the in-flight request still completes; the server
   exits 0.

Exit codes: 0 passed, 1 failed, 77 skipped (node or its gRPC modules missing).
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import health_check  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))

CASES = [([5, 6, 7, 8], 12), ([9, 10], 16), ([11, 12, 13, 14, 15, 16], 10)]
HOLD_TOKENS = 2000


class Failed(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise Failed(message)
    print("ok   " + message, flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reference_tokens(args, model_dir, prompt, max_tokens):
    out = subprocess.run(
        [args.bin, "run", "--model", model_dir, "--backend", args.backend,
         "--prompt-tokens", ",".join(map(str, prompt)), "--max-tokens", str(max_tokens)],
        check=True, capture_output=True, text=True, timeout=300)
    line = out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""
    return [int(t) for t in line.split(",") if t]


def wait_serving(proc, channel, timeout_s):
    """Polls health "" from process start; returns the list of distinct statuses seen."""
    seen = []
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise Failed("the server exited early with code %d" % proc.returncode)
        code, status = health_check.check(channel, "", timeout=1.0)
        if code == grpc.StatusCode.OK:
            name = health_check.STATUS_NAMES.get(status, str(status))
            if not seen or seen[-1] != name:
                seen.append(name)
            if status == health_check.SERVING:
                return seen
        time.sleep(0.002)
    raise Failed("health did not turn SERVING within %d s (seen: %s)" % (timeout_s, seen))


def run(args):
    node = shutil.which(args.node)
    if node is None or not os.path.isdir(os.path.join(args.repo, "node_modules", "@grpc",
                                                      "grpc-js")):
        print("SKIP: node or node_modules/@grpc/grpc-js is missing (run the set-up script)")
        return 77
    os.makedirs(args.workdir, exist_ok=True)
    model_dir = os.path.join(args.workdir, "model-tiny")
    if not os.path.exists(os.path.join(model_dir, "config.json")):
        subprocess.run([args.bin, "generate-model", "--preset", "tiny", "--seed", "7",
                        "--out", model_dir], check=True, timeout=300)

    cases = []
    for prompt, max_tokens in CASES:
        expected = reference_tokens(args, model_dir, prompt, max_tokens)
        expect(len(expected) > 0, "moeserve run %s -> %d reference tokens" % (prompt, len(expected)))
        cases.append({"prompt": prompt, "max_tokens": max_tokens, "expected": expected})
    cases_file = os.path.join(args.workdir, "cases.json")
    with open(cases_file, "w") as f:
        json.dump(cases, f)

    port = free_port()
    address = "127.0.0.1:%d" % port
    log_path = os.path.join(args.workdir, "serve.log")
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [args.bin, "serve", "--model", model_dir, "--backend", args.backend,
         "--host", "127.0.0.1", "--port", str(port), "--drain-timeout", "60"],
        stdout=subprocess.PIPE, stderr=log, text=True)
    stdout_lines = []
    reader = threading.Thread(target=lambda: stdout_lines.extend(proc.stdout), daemon=True)
    reader.start()
    # Reconnect quickly while the server is still starting (the default backoff is 1 s, long
    # enough to miss the NOT_SERVING window before the warm-up completes).
    channel = grpc.insecure_channel(address, options=[
        ("grpc.initial_reconnect_backoff_ms", 5), ("grpc.min_reconnect_backoff_ms", 5),
        ("grpc.max_reconnect_backoff_ms", 20)])
    try:
        seen = wait_serving(proc, channel, timeout_s=180)
        print("info health \"\" during start-up: %s%s" % (
            " -> ".join(seen),
            "" if "NOT_SERVING" in seen else " (the NOT_SERVING window was too short to catch)"))
        expect(seen[-1] == "SERVING" and seen.count("SERVING") == 1 and
               all(s in ("NOT_SERVING", "SERVING") for s in seen),
               "health goes NOT_SERVING -> SERVING only")
        for name in health_check.SERVICE_NAMES:
            code, status = health_check.check(channel, name)
            expect(code == grpc.StatusCode.OK and status == health_check.SERVING,
                   "health %r SERVING" % name)
        code, _ = health_check.check(channel, "no.such.Service")
        expect(code == grpc.StatusCode.NOT_FOUND, "health of an unknown service is NOT_FOUND")
        code, ready = health_check.server_ready(channel)
        expect(code == grpc.StatusCode.OK and ready, "KServe ServerReady true")
        services = health_check.reflection_services(channel)
        expect(all(s in services for s in ("moeserve.v1.MoeServe", "inference.GRPCInferenceService",
                                           "grpc.health.v1.Health")),
               "server reflection lists the services (%s)" % ", ".join(services))

        client = subprocess.run(
            [node, os.path.join(HERE, "node_client.js"), "--address", address,
             "--proto-dir", os.path.join(args.repo, "proto"), "--cases", cases_file],
            capture_output=True, text=True, timeout=300, cwd=args.repo)
        sys.stdout.write(client.stdout)
        sys.stdout.write(client.stderr)
        expect(client.returncode == 0, "node client: native Generate and KServe tokens equal "
                                       "`moeserve run`")

        # Drain with a request in flight.
        hold = subprocess.Popen(
            [node, os.path.join(HERE, "node_client.js"), "--address", address,
             "--proto-dir", os.path.join(args.repo, "proto"), "--hold", str(HOLD_TOKENS)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=args.repo)
        first = hold.stdout.readline().strip()
        expect(first == "HOLDING", "a long Generate is streaming (%r)" % first)
        proc.send_signal(signal.SIGTERM)
        not_serving = False
        for _ in range(2500):
            code, status = health_check.check(channel, "", timeout=1.0)
            if code == grpc.StatusCode.OK and status == health_check.NOT_SERVING:
                not_serving = True
                break
            time.sleep(0.002)
        expect(not_serving, "after SIGTERM health \"\" is NOT_SERVING")
        for name in health_check.SERVICE_NAMES[1:]:
            code, status = health_check.check(channel, name)
            expect(code == grpc.StatusCode.OK and status == health_check.NOT_SERVING,
                   "draining: health %r NOT_SERVING" % name)
        code, ready = health_check.server_ready(channel)
        expect(code == grpc.StatusCode.OK and ready is False, "draining: KServe ServerReady false")
        rest = hold.communicate(timeout=120)[0]
        expect("HOLD-DONE %d LENGTH" % HOLD_TOKENS in rest,
               "the in-flight request completed during the drain (%s)" % rest.strip())
        code = proc.wait(timeout=120)
        expect(code == 0, "the server exited with code %d after SIGTERM" % code)
        reader.join(timeout=5)
        expect(any(("listening on %s" % address) in line for line in stdout_lines),
               "the server logged 'listening on %s'" % address)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="the moeserve binary")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--repo", default=REPO, help="source root (proto/, node_modules/)")
    parser.add_argument("--backend", default="auto", help="backend for both run and serve")
    parser.add_argument("--node", default="node")
    args = parser.parse_args()
    try:
        return run(args)
    except Failed as failure:
        print("FAIL " + str(failure), flush=True)
        log = os.path.join(args.workdir, "serve.log")
        if os.path.exists(log):
            print("--- serve.log (tail) ---")
            with open(log) as f:
                print("".join(f.readlines()[-30:]))
        return 1


if __name__ == "__main__":
    sys.exit(main())
