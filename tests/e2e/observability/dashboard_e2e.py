#!/usr/bin/python3
"""`moeserve dashboard` renders in headless Chromium with no console errors and drawn charts.

1. Serves the `tiny` MoE preset on the reference backend with --log-file (routing collected, so
   engine_stats carries the expert-load matrix) and drives it with `moeserve bench serve`: a
   two-point rate sweep (--json, --raw) and one unbounded run.
2. `moeserve dashboard --log ... --bench ... --raw ... --out report.html`.
3. The HTML is self-contained: no external scripts, styles, images or URLs.
4. Headless Chromium (no network: every host resolves to nothing) loads it: the DOM reports the
   charts rendered and no script error; the console shows the page's own "rendered" line and no
   error; a screenshot is not blank and shows the chart colours.

Exit codes: 0 passed, 1 failed, 77 skipped (chromium not installed).
"""

import argparse
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import SKIP, Failed, Server, bench, expect, read_events  # noqa: E402

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--host-resolver-rules=MAP * ~NOTFOUND"]


def decode_png(path):
    """Returns (width, height, rows of RGB tuples) of an 8-bit RGB/RGBA PNG."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise Failed("%s is not a PNG" % path)
    pos = 8
    idat = b""
    width = height = 0
    channels = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            if depth != 8 or color not in (2, 6):
                raise Failed("unsupported PNG format depth=%d color=%d" % (depth, color))
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = width * channels
    rows = []
    prev = bytearray(stride)
    at = 0
    for _ in range(height):
        f = raw[at]
        line = bytearray(raw[at + 1:at + 1 + stride])
        at += 1 + stride
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + ((a + b) >> 1)) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, channels, rows


def chromium(binary, workdir, url, mode_args, name):
    profile = os.path.join(workdir, "chrome-profile-" + name)
    shutil.rmtree(profile, ignore_errors=True)
    cmd = [binary] + CHROMIUM_FLAGS + ["--user-data-dir=" + profile, "--enable-logging=stderr",
                                       "--v=0", "--window-size=1400,5200",
                                       "--virtual-time-budget=10000"] + mode_args + [url]
    print("run  " + " ".join(cmd), flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    with open(os.path.join(workdir, name + ".chrome.log"), "w") as f:
        f.write(out.stderr)
    if out.returncode != 0:
        raise Failed("chromium failed (%d): %s" % (out.returncode, out.stderr[-2000:]))
    return out


def console_lines(stderr):
    return [l for l in stderr.splitlines() if ":CONSOLE" in l or "Uncaught" in l]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args()
    if not os.access(args.chromium, os.X_OK):
        print("SKIP: chromium is not installed (Debian package `chromium`)")
        return SKIP
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    log_path = os.path.join(args.workdir, "requests.jsonl")
    server = Server(args.bin, args.workdir,
                    ["--backend", "reference", "--preset", "tiny", "--max-context", "256",
                     "--log-file", log_path, "--engine-stats-interval", "0.5"])
    try:
        server.wait_ready()
        sweep_json, sweep_raw = bench(
            args.bin, server.port, args.workdir, "sweep",
            ["--num-prompts", "24", "--random-input-len", "32", "--random-output-len", "12",
             "--ignore-eos", "--sweep-rates", "20,60", "--goodput", "ttft:2000", "tpot:500"])
        burst_json, burst_raw = bench(
            args.bin, server.port, args.workdir, "burst",
            ["--api", "kserve", "--num-prompts", "16", "--random-input-len", "24",
             "--random-output-len", "8", "--ignore-eos"])
        code = server.stop()
        expect(code == 0, "the server exits 0 on SIGTERM")
        requests = read_events(log_path, "request_finished")
        stats = read_events(log_path, "engine_stats")
        expect(len(requests) == 24 * 2 + 16, "%d request_finished events" % len(requests))
        expect(any("expert_tokens" in s for s in stats), "engine_stats carry the expert-load matrix")

        report = os.path.join(args.workdir, "report.html")
        out = subprocess.run([args.bin, "dashboard", "--log", log_path, "--bench", sweep_json,
                              "--bench", burst_json, "--raw", sweep_raw, "--raw", burst_raw,
                              "--out", report, "--title", "observability e2e"],
                             capture_output=True, text=True, timeout=120)
        expect(out.returncode == 0, "moeserve dashboard writes %s (%s)" % (report,
                                                                           out.stderr.strip()))
        html = open(report).read()
        expect(not re.search(r"<(script|link|img|iframe)[^>]*(src|href)\s*=", html, re.I),
               "no external scripts, styles or images")
        expect(not re.search(r"https?://", html), "no URLs at all in the report")

        url = "file://" + report
        dom = chromium(args.chromium, args.workdir, url, ["--dump-dom"], "dom").stdout
        m = re.search(r'data-rendered="(\d+)"', dom)
        expect(m is not None and int(m.group(1)) >= 19,
               "the page reports its charts rendered (%s)" % (m.group(1) if m else None))
        errors = re.search(r'<div id="errors">(.*?)</div>', dom, re.S)
        expect(errors is not None and errors.group(1).strip() == "",
               "no script error caught by the page")
        shot = os.path.join(args.workdir, "report.png")
        run = chromium(args.chromium, args.workdir, url, ["--screenshot=" + shot], "screenshot")
        console = console_lines(run.stderr)
        expect(any("moeserve dashboard: rendered" in l for l in console),
               "the console shows the page's own log line (console capture works)")
        bad = [l for l in console if "moeserve dashboard: rendered" not in l]
        expect(not bad, "no other console output (errors): %s" % bad[:3])

        width, height, channels, rows = decode_png(shot)
        expect(width >= 1000 and height >= 2000, "screenshot %dx%d" % (width, height))
        colors = {}
        background = {(0xf4, 0xf5, 0xf7), (0xff, 0xff, 0xff)}
        drawn = 0
        for y in range(0, height, 2):
            row = rows[y]
            for x in range(0, width, 2):
                px = tuple(row[x * channels:x * channels + 3])
                colors[px] = colors.get(px, 0) + 1
                if px not in background:
                    drawn += 1
        total = ((height + 1) // 2) * ((width + 1) // 2)

        def near(rgb, tol=40):
            return sum(n for px, n in colors.items()
                       if all(abs(px[i] - rgb[i]) <= tol for i in range(3)))

        expect(drawn / total > 0.03, "the screenshot is not blank (%.1f%% drawn pixels, %d colours)"
               % (100.0 * drawn / total, len(colors)))
        expect(len(colors) > 100, "charts give many colours (%d)" % len(colors))
        expect(near((0x25, 0x63, 0xeb)) > 200, "blue series lines are drawn")
        expect(near((0xdc, 0x26, 0x26)) > 100, "red series lines are drawn")
        return 0
    except Failed as e:
        print("FAIL " + str(e), flush=True)
        return 1
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
