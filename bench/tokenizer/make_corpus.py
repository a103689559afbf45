#!/usr/bin/env python3
"""Builds the tokenizer benchmark corpus from text every Debian machine of this project has:
English prose (/usr/share/common-licenses and package copyright files), Python source (the
standard library), and translated messages in twelve languages (gettext catalogs under
/usr/share/locale). Writes one JSON string per line, each a chunk of 1-4 KB cut at line ends,
interleaving the sources.

    make_corpus.py OUT.jsonl [--megabytes 4]
"""
import argparse
import gettext
import glob
import json
import os

LANGUAGES = ["zh_CN", "ja", "ko", "ru", "de", "fr", "es", "ar", "hi", "vi", "th", "uk"]
CODE_DIRS = ["json", "email", "http", "asyncio", "logging", "importlib", "unittest", "xml"]


def prose():
    paths = sorted(glob.glob("/usr/share/common-licenses/*"))
    paths += sorted(glob.glob("/usr/share/doc/*/copyright"))
    for path in paths:
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                yield f.read()


def code():
    root = sorted(glob.glob("/usr/lib/python3.*"))[-1]
    for d in CODE_DIRS:
        for path in sorted(glob.glob(os.path.join(root, d, "**", "*.py"), recursive=True)):
            with open(path, encoding="utf-8", errors="replace") as f:
                yield f.read()


def translations(lang):
    for path in sorted(glob.glob(f"/usr/share/locale/{lang}/LC_MESSAGES/*.mo")):
        try:
            with open(path, "rb") as f:
                catalog = gettext.GNUTranslations(f)._catalog
        except Exception:
            continue
        texts = [v for k, v in sorted(catalog.items(), key=lambda kv: str(kv[0])) if k and v]
        yield "\n".join(texts)


def chunks(stream, target):
    buf = []
    size = 0
    for doc in stream:
        for line in doc.splitlines(keepends=True):
            buf.append(line)
            size += len(line.encode("utf-8"))
            if size >= target:
                yield "".join(buf)
                buf, size = [], 0
    if buf:
        yield "".join(buf)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--megabytes", type=float, default=4.0)
    args = ap.parse_args()
    budget = int(args.megabytes * 1e6)
    # Shares of the corpus: 30% prose, 35% code, 35% other languages.
    sources = [(chunks(prose(), 2000), 0.30), (chunks(code(), 3000), 0.35)]
    sources += [(chunks(translations(l), 1500), 0.35 / len(LANGUAGES)) for l in LANGUAGES]
    taken = [0] * len(sources)
    out = []
    active = True
    while active:
        active = False
        for i, (gen, share) in enumerate(sources):
            if taken[i] >= share * budget:
                continue
            text = next(gen, None)
            if text is None:
                continue
            active = True
            taken[i] += len(text.encode("utf-8"))
            out.append(text)
    with open(args.out, "w", encoding="utf-8") as f:
        for text in out:
            f.write(json.dumps(text, ensure_ascii=False) + "\n")
    total = sum(len(t.encode("utf-8")) for t in out)
    print(f"corpus: {len(out)} texts, {total / 1e6:.2f} MB -> {args.out}")


if __name__ == "__main__":
    main()
