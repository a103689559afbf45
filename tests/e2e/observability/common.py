"""Shared helpers of the observability end-to-end checks: a `moeserve serve` process with its
ports read from stdout, a load run with `moeserve bench serve`, and request-log parsing."""

import json
import os
import signal
import socket
import subprocess
import threading
import time

SKIP = 77


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


class Server:
    """`moeserve serve` on a free gRPC port; stdout announces the ports."""

    def __init__(self, binary, workdir, extra_args, name="serve"):
        self.stdout_lines = []
        self.port = None
        self.metrics_port = None
        self.stderr_path = os.path.join(workdir, name + ".stderr")
        cmd = [binary, "serve", "--port", "0", "--models-dir", os.path.join(workdir, "models")]
        cmd += extra_args
        print("run  " + " ".join(cmd), flush=True)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(self.stderr_path, "w"),
                                     text=True)
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.strip()
            self.stdout_lines.append(line)
            if line.startswith("metrics on "):
                self.metrics_port = int(line.rsplit(":", 1)[1])
            if line.startswith("listening on "):
                self.port = int(line.rsplit(":", 1)[1])
                self._ready.set()

    def wait_ready(self, timeout_s=300):
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self._ready.wait(0.2):
                return
            if self.proc.poll() is not None:
                raise Failed("the server exited early (%d): %s" % (self.proc.returncode,
                                                                  open(self.stderr_path).read()[-2000:]))
        raise Failed("the server did not start within %d s" % timeout_s)

    def stop(self):
        """SIGTERM; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def bench(binary, port, workdir, name, extra_args):
    """Runs `moeserve bench serve`; returns (result JSON path, raw JSONL path)."""
    json_path = os.path.join(workdir, name + ".json")
    raw_path = os.path.join(workdir, name + ".raw.jsonl")
    cmd = [binary, "bench", "serve", "--port", str(port), "--json", json_path, "--raw", raw_path,
           "--no-progress", "--seed", "1"] + extra_args
    print("run  " + " ".join(cmd), flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise Failed("bench serve failed (%d): %s%s" % (out.returncode, out.stdout[-2000:],
                                                        out.stderr[-2000:]))
    return json_path, raw_path


def read_events(path, event):
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            try:
                j = json.loads(line)
            except json.JSONDecodeError as e:
                raise Failed("%s:%d is not valid JSON (%s): %r" % (path, n, e, line[:200]))
            if j.get("event") == event:
                out.append(j)
    return out
