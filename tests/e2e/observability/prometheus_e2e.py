#!/usr/bin/python3
"""A real Prometheus server scrapes `moeserve serve --metrics-port`.

1. Starts `moeserve serve --backend null` with --metrics-port and --log-file.
2. Starts Debian's `prometheus` on 127.0.0.1 with a generated config scraping that port every
   second (its first scrape lands a few seconds after start).
3. Sends N requests with `moeserve bench serve` (native Generate and KServe ModelStreamInfer).
4. Polls Prometheus's HTTP API until sum(moeserve_request_success_total) = N and
   sum(moeserve_time_to_first_token_seconds_count) = N; checks a few more series, that no label
   carries a request id, and that the request log has N request_finished lines that add up.
5. Every PromQL query of serving/dashboards/grafana.json runs on that Prometheus without error,
   and the latency / throughput panels return data.
6. SIGTERM: the server exits 0.

Exit codes: 0 passed, 1 failed, 77 skipped (prometheus not installed).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import SKIP, Failed, Server, bench, expect, free_port, read_events  # noqa: E402

NATIVE = 24
KSERVE = 8
REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))


def query(base, promql):
    url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.loads(r.read().decode())
    if body.get("status") != "success":
        raise Failed("query %s: %s" % (promql, body))
    return body["data"]["result"]


def scalar(base, promql):
    result = query(base, promql)
    return float(result[0]["value"][1]) if result else None


def wait_value(base, promql, want, timeout_s=90):
    deadline = time.time() + timeout_s
    last = None
    while time.time() < deadline:
        try:
            last = scalar(base, promql)
        except (OSError, Failed):
            last = None
        if last == want:
            return last
        time.sleep(0.5)
    raise Failed("%s stayed %r, want %r" % (promql, last, want))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "/usr/bin/prometheus")
    args = ap.parse_args()
    if not os.access(args.prometheus, os.X_OK):
        print("SKIP: prometheus is not installed (Debian package `prometheus`)")
        return SKIP
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)

    metrics_port = free_port()
    log_path = os.path.join(args.workdir, "requests.jsonl")
    server = Server(args.bin, args.workdir,
                    ["--backend", "null", "--preset", "tiny", "--metrics-port", str(metrics_port),
                     "--log-file", log_path, "--engine-stats-interval", "1"])
    prom = None
    try:
        server.wait_ready()
        expect(server.metrics_port == metrics_port, "metrics announced on port %d" % metrics_port)

        prom_port = free_port()
        config = os.path.join(args.workdir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: moeserve\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % metrics_port)
        prom_log = open(os.path.join(args.workdir, "prometheus.log"), "w")
        prom = subprocess.Popen(
            [args.prometheus, "--config.file=" + config,
             "--storage.tsdb.path=" + os.path.join(args.workdir, "tsdb"),
             "--web.listen-address=127.0.0.1:%d" % prom_port, "--log.level=warn"],
            stdout=prom_log, stderr=subprocess.STDOUT)
        base = "http://127.0.0.1:%d" % prom_port

        bench(args.bin, server.port, args.workdir, "native",
              ["--api", "native", "--num-prompts", str(NATIVE), "--random-input-len", "24",
               "--random-output-len", "12", "--ignore-eos", "--max-concurrency", "8"])
        bench(args.bin, server.port, args.workdir, "kserve",
              ["--api", "kserve", "--num-prompts", str(KSERVE), "--random-input-len", "16",
               "--random-output-len", "6", "--ignore-eos"])
        n = NATIVE + KSERVE

        wait_value(base, 'up{job="moeserve"}', 1.0)
        expect(True, "prometheus scrapes the metrics port")
        wait_value(base, "sum(moeserve_request_success_total)", float(n))
        expect(True, "sum(moeserve_request_success_total) = %d" % n)
        wait_value(base, "sum(moeserve_time_to_first_token_seconds_count)", float(n))
        expect(True, "sum(moeserve_time_to_first_token_seconds_count) = %d" % n)
        expect(scalar(base, 'sum(moeserve_request_success_total{api="native"})') == NATIVE,
               "native requests counted under api=native")
        expect(scalar(base, 'sum(moeserve_request_success_total{api="kserve"})') == KSERVE,
               "KServe requests counted under api=kserve")
        expect(scalar(base, "sum(moeserve_e2e_request_latency_seconds_count)") == n,
               "e2e latency histogram count = %d" % n)
        itl = NATIVE * 11 + KSERVE * 5
        expect(scalar(base, "sum(moeserve_inter_token_latency_seconds_count)") == itl,
               "inter-token latency count = %d (one per token after the first)" % itl)
        expect(scalar(base, "moeserve_engine_ready") == 1, "moeserve_engine_ready = 1")
        expect(scalar(base, "sum(moeserve_grpc_streams_open)") == 0, "no gRPC stream left open")
        p99 = scalar(base, "histogram_quantile(0.99, sum by (le) "
                           "(moeserve_time_to_first_token_seconds_bucket))")
        expect(p99 is not None and 0 < p99 < 1.0,
               "histogram_quantile over the TTFT buckets: p99 %s s" % p99)
        series = query(base, '{__name__=~"moeserve_.*"}')
        labels = set()
        for s in series:
            labels.update(k for k in s["metric"] if k not in ("__name__", "job", "instance"))
        expect(labels <= {"model_name", "api", "finished_reason", "code", "phase", "rpc", "le",
                          "layer", "expert"},
               "labels are bounded (%s); no request ids" % sorted(labels))
        for s in series:
            for v in s["metric"].values():
                if v.startswith("bench-"):
                    raise Failed("a label carries a request id: %s" % s["metric"])

        # Rates need two samples in their window.
        deadline = time.time() + 30
        while time.time() < deadline and (scalar(base, 'count_over_time(up{job="moeserve"}[5m])')
                                          or 0) < 3:
            time.sleep(0.5)
        grafana = json.load(open(os.path.join(REPO, "serving", "dashboards", "grafana.json")))
        exprs = [(p["title"], t["expr"]) for p in grafana["panels"] for t in p.get("targets", [])]
        with_data = 0
        for title, expr in exprs:
            promql = expr.replace("$model_name", ".*").replace("$__rate_interval", "5m")
            if query(base, promql):
                with_data += 1
        expect(len(exprs) >= 20, "grafana.json has %d queries; all run on Prometheus" % len(exprs))
        expect(with_data >= len(exprs) // 2, "%d of them return data" % with_data)
        lines = []
        for _ in range(50):
            lines = read_events(log_path, "request_finished")
            if len(lines) >= n:
                break
            time.sleep(0.1)
        expect(len(lines) == n, "%d request_finished lines in the log" % n)
        for j in lines:
            total = j["queue_ms"] + j["prefill_ms"] + j["decode_ms"]
            if abs(total - j["e2e_ms"]) > 1.0:
                raise Failed("durations do not add up: %s" % j)
        expect(True, "queue + prefill + decode = e2e within 1 ms on every line")
        expect(len(read_events(log_path, "engine_stats")) >= 1, "engine_stats events are logged")
        code = server.stop()
        expect(code == 0, "the server exits 0 on SIGTERM")
        return 0
    except Failed as e:
        print("FAIL " + str(e), flush=True)
        return 1
    finally:
        server.stop()
        if prom is not None and prom.poll() is None:
            prom.terminate()
            try:
                prom.wait(timeout=30)
            except subprocess.TimeoutExpired:
                prom.kill()


if __name__ == "__main__":
    sys.exit(main())
