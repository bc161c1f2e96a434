"""Whole-app figures: RSS with every default model loaded in one process, and cold start to the
first rendered page (server start -> health -> Home drawn in headless Chromium).

Baselines in the same run: a bare Python process that only imports torch (the floor under any
model), and a bare Streamlit "hello" script's cold start (the floor under any Streamlit app).

    python -m bench.bench_app      # prints a table, writes bench/results/app.json
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LOAD_ALL = r"""
import json, resource, time
t0 = time.perf_counter()
from lucid.domains.finance.service import FinanceService
from lucid.domains.nlp.service import NLPService
from lucid.domains.vision.service import VisionService
from lucid.domains.medical.service import MedicalService
from lucid.domains.recommend.service import RecommendService
loaded = []
fin = FinanceService()
for name in fin.model_names():
    if fin.is_built(name):
        fin.load(name); loaded.append("finance/" + name)
nlp = NLPService()
if nlp.is_built("review_sentiment"):
    nlp.load(); loaded.append("nlp/review_sentiment")
VisionService().load("efficientnet_lite0"); loaded.append("vision/efficientnet_lite0")
med = MedicalService()
for name in med.model_names():
    try:
        med.load(name); loaded.append("medical/" + name)
    except Exception as exc:
        pass
rec = RecommendService()
rec.load(); loaded.append("recommend/movielens-100k")
rss = int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"loaded": loaded, "rss_mb": rss, "peak_mb": peak, "seconds": time.perf_counter() - t0}))
"""

TORCH_ONLY = r"""
import json, torch
rss = int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024
print(json.dumps({"rss_mb": rss}))
"""


def _json_of(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cold_start(starter, marker: str) -> dict:
    """Seconds from launching the server to health, and to ``marker`` drawn in Chromium."""
    from playwright.sync_api import sync_playwright

    from tests.load.harness import CHROMIUM, CHROMIUM_ARGS

    start = time.perf_counter()
    proc, url = starter()
    healthy = time.perf_counter() - start
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_text(marker).wait_for(timeout=120_000)
            rendered = time.perf_counter() - start
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    return {"healthy_s": healthy, "first_page_s": rendered}


def main() -> None:
    from tests.live_app import start_app

    results: dict[str, object] = {}
    results["memory_all_defaults"] = _json_of(LOAD_ALL)
    results["memory_torch_only"] = _json_of(TORCH_ONLY)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "hello.py").write_text("import streamlit as st\nst.title('hello world')\n")
        hello = Path(tmp) / "hello.py"
        results["cold_start_plain_streamlit"] = _cold_start(lambda: start_app(script=hello), "hello world")
    results["cold_start_lucid"] = _cold_start(start_app, "Start here")
    mem = results["memory_all_defaults"]
    print(f"{'figure':45s} {'ours':>10s} {'baseline':>10s} {'ratio':>7s}")
    base = results["memory_torch_only"]["rss_mb"]
    rss = mem["rss_mb"]
    print(f"{'RSS, all default models loaded (MB)':45s} {rss:10.0f} {base:10.0f} {rss / base:7.2f}")
    print(f"{'peak RSS while loading (MB)':45s} {mem['peak_mb']:10.0f}")
    ours, plain = results["cold_start_lucid"], results["cold_start_plain_streamlit"]
    print(
        f"{'cold start to health (s)':45s} {ours['healthy_s']:10.2f} {plain['healthy_s']:10.2f} "
        f"{ours['healthy_s'] / plain['healthy_s']:7.2f}"
    )
    first, bare = ours["first_page_s"], plain["first_page_s"]
    print(f"{'cold start to first rendered page (s)':45s} {first:10.2f} {bare:10.2f} {first / bare:7.2f}")
    print("models loaded:", ", ".join(mem["loaded"]))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "app.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
