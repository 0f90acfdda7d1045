"""The two templates of the kaapana-task-example processing container.

Only Kaapana's Task API contract is used: channels are folders at the mounted paths of
/processing-container.json, settings come as environment variables.
"""
import json
import os
import random
import sys
import time

NUMBERS = "/home/kaapana/numbers"
SUMMARY = "/home/kaapana/summary"


def work(seconds):
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        n = (n * 31 + 7) % 1000003
    return n


def generate():
    count, seconds, seed = int(os.environ["COUNT"]), int(os.environ.get("WORK_SECONDS", "0")), int(os.environ.get("SEED", "1"))
    if seconds > 0:
        work(seconds)
    rng = random.Random(seed)
    for i in range(count):
        item = os.path.join(NUMBERS, f"item-{i + 1}")
        os.makedirs(item, exist_ok=True)
        values = [rng.randint(1, 100) for _ in range(5 + i)]
        with open(os.path.join(item, "numbers.txt"), "w") as f:
            f.write("\n".join(map(str, values)) + "\n")
        print(f"generate: {os.path.basename(item)}: {len(values)} numbers")
    print(f"generate: {count} items written")


def summarize():
    statistic = os.environ.get("STATISTIC", "sum")
    items = sorted(d for d in os.listdir(NUMBERS) if os.path.isdir(os.path.join(NUMBERS, d))) if os.path.isdir(NUMBERS) else []
    if not items:
        print("summarize: no items in the input channel: skipped")
        sys.exit(126)
    for item in items:
        with open(os.path.join(NUMBERS, item, "numbers.txt")) as f:
            values = [int(line) for line in f if line.strip()]
        result = {"sum": sum(values), "mean": sum(values) / len(values), "max": max(values)}[statistic]
        os.makedirs(os.path.join(SUMMARY, item), exist_ok=True)
        with open(os.path.join(SUMMARY, item, "summary.json"), "w") as f:
            json.dump({"item": item, "statistic": statistic, "value": result, "count": len(values)}, f)
        print(f"summarize: {item}: {statistic} = {result}")


if __name__ == "__main__":
    {"generate": generate, "summarize": summarize}[sys.argv[1]]()
