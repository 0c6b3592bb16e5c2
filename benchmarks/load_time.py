"""Time `load_model("demo")` in fresh processes, after the one-time GGUF conversion.

Usage: python benchmarks/load_time.py [--runs 5] [--json out.json]

Each run is a new Python process. It reports the time to import torch and transformers (paid once by any
transformers program) separately from `load_model("demo")` itself.
"""

import argparse
import json
import statistics
import subprocess
import sys

CODE = """
import time
t0 = time.perf_counter()
import langchain_steer, transformers.models.llama.modeling_llama
t1 = time.perf_counter()
langchain_steer.load_model("demo")
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    subprocess.run(
        [sys.executable, "-c", CODE], check=True, capture_output=True
    )  # warm-up + conversion
    imports, loads = [], []
    for _ in range(args.runs):
        out = subprocess.run(
            [sys.executable, "-c", CODE], check=True, capture_output=True, text=True
        )
        a, b = map(float, out.stdout.split()[-2:])
        imports.append(a)
        loads.append(b)
    result = {
        "runs": args.runs,
        "import_s": {
            "median": statistics.median(imports),
            "min": min(imports),
            "max": max(imports),
        },
        "load_model_s": {"median": statistics.median(loads), "min": min(loads), "max": max(loads)},
    }
    print("| step | median s | min s | max s |\n|---|---|---|---|")
    for key, label in (
        ("import_s", "import torch + transformers"),
        ("load_model_s", 'load_model("demo")'),
    ):
        r = result[key]
        print(f"| {label} | {r['median']:.2f} | {r['min']:.2f} | {r['max']:.2f} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
