#!/usr/bin/python3
"""Summarises a bench/llamacpp/run.sh results directory as a Markdown table: per workload and
round, moeserve's and llama.cpp's tokens/s (prefill for prefill512, decode otherwise) and their
ratio, then the median ratio over rounds. Standard library only.

    summarize.py RESULTS_DIR
"""
import glob
import json
import os
import statistics
import sys

out = sys.argv[1]
metric = {"decode_b1": "decode_tokens_per_second", "decode_b32": "decode_tokens_per_second",
          "prefill512": "prefill_tokens_per_second"}
check = json.load(open(os.path.join(out, "check.json")))
print(f"Same model: top-1 agreement {check['top1_agree_count']}/{check['positions']} positions, "
      f"max |d log p| {check['max_abs_dlogp']:.4f} (moeserve f32 reference vs llama.cpp)\n")
print("| workload | round | moeserve tok/s | llama.cpp tok/s | moeserve / llama.cpp |")
print("|---|---|---|---|---|")
for name, key in metric.items():
    ratios = []
    for path in sorted(glob.glob(os.path.join(out, f"moeserve_{name}_r*.json"))):
        rnd = path.rsplit("_r", 1)[1].split(".")[0]
        lpath = os.path.join(out, f"llamacpp_{name}_r{rnd}.json")
        if not os.path.exists(lpath):
            continue
        ours = json.load(open(path))[key]
        theirs = json.load(open(lpath))[key]
        ratios.append(ours / theirs)
        print(f"| {name} | {rnd} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f} |")
    if ratios:
        print(f"| {name} | median | | | **{statistics.median(ratios):.2f}** |")
