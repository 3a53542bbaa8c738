"""Helpers of scripts/gpu_check.sh: one measured training run, and the single JSON of every figure.

    python scripts/gpu_check.py fit --config configs/paper.yaml --device cuda --run-dir DIR --json FIT.json \
        [--set KEY=VALUE ...]
    python scripts/gpu_check.py report --mode gpu --device cuda --work WORK --json OUT/gpu_check.json

``fit`` trains one run in this process with the library's own ``mcef.train.fit(mcef.config.load_config(...))``
and writes its wall time and peak memory (``torch.cuda.max_memory_allocated`` on CUDA, the process's peak RSS
``ru_maxrss`` on the CPU). ``report`` gathers what the steps of gpu_check.sh left in WORK (steps.tsv, tests.xml,
bench_<precision>.json, fit.json) into one JSON, with the device, torch version and date, and exits non-zero if a
step failed or a figure is missing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import statistics
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without `pip install -e .` (e.g. a bare GPU machine)
    sys.path.insert(0, str(REPO))

PRECISIONS = ("float32", "bfloat16")
BENCH_KEYS = ("config", "hidden", "packed", "precision", "hgr_mode", "bucket", "parameters", "train_epoch_s",
              "train_epoch_s_all", "eval_utterances_per_s", "peak_memory_mb", "memory_method")


def _peak_rss_mib() -> float:
    """This process's peak resident memory so far (ru_maxrss: KiB on Linux, bytes on macOS), in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def run_fit(args) -> int:
    import torch

    from mcef.config import load_config
    from mcef.device import describe_device, resolve_device
    from mcef.train import fit, read_metrics

    device = resolve_device(args.device)
    config = load_config(args.config, [*args.overrides, f"train.device={args.device}", "train.progress=false"])
    if device.type == "cuda":
        torch.cuda.init()
        torch.cuda.reset_peak_memory_stats(device)
    tick = time.perf_counter()
    summary = fit(config, run_dir=args.run_dir)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - tick
    if device.type == "cuda":
        memory = {"peak_memory_mib": torch.cuda.max_memory_allocated(device) / 2**20,
                  "peak_memory_reserved_mib": torch.cuda.max_memory_reserved(device) / 2**20,
                  "memory_method": "torch.cuda.max_memory_allocated over the whole fit (model, optimizer, data, "
                                   "checkpoints)"}
    else:
        memory = {"peak_memory_mib": _peak_rss_mib(),
                  "memory_method": f"peak RSS (ru_maxrss) of the whole process on {device.type}, imports included"}
    epoch_seconds = [line["epoch_seconds"] for line in read_metrics(args.run_dir)]
    result = {
        "config": str(args.config), "overrides": list(args.overrides), "name": summary["name"],
        "device": describe_device(device), "torch_version": torch.__version__,
        "epochs_asked": config.train.epochs, "epochs_run": summary["epochs_run"],
        "stopped_early": summary["stopped_early"], "hidden": config.model.hidden,
        "precision": config.model.precision, "parameters": summary["parameters"],
        "data": summary["data"], "wall_time_s": wall, "fit_wall_time_s": summary["wall_time_s"],
        "epoch_s_median": statistics.median(epoch_seconds) if epoch_seconds else None,
        "epoch_s_first": epoch_seconds[0] if epoch_seconds else None,
        **memory,
        "selected_epoch": summary["selected_epoch"],
        "test": {k: summary["test"][k] for k in ("accuracy", "weighted_f1", "macro_f1")},
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("device", "epochs_run", "wall_time_s", "epoch_s_median",
                                             "peak_memory_mib")}))
    return 0


# ------------------------------------------------------------------------------------------------------- report

def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _tests(path: Path) -> dict | None:
    """Counts of a pytest --junitxml file."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    counts = {key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")}
    failed = [f"{case.get('classname')}::{case.get('name')}" for s in suites for case in s.iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None]
    return {"collected": counts["tests"], "passed": counts["tests"] - counts["failures"] - counts["errors"]
            - counts["skipped"], "failed": counts["failures"], "errors": counts["errors"],
            "skipped": counts["skipped"], "seconds": sum(float(s.get("time", 0)) for s in suites),
            "failed_tests": failed}


def _bench(result: dict | None) -> dict | None:
    if result is None:
        return None
    short = {key: {k: result[key].get(k) for k in BENCH_KEYS} for key in ("ours", "baseline") if key in result}
    return {**short, "speedup": result.get("speedup"),
            "ratio_ours_over_baseline": result.get("ratio_ours_over_baseline"), "device": result.get("device"), "data": result.get("data"), "method": result.get("method"), "raw": result}


def _partial_fit(run_dir: Path) -> dict | None:
    """What an unfinished fit left: its epochs so far (metrics.jsonl), when fit.json is missing."""
    from mcef.train import read_metrics

    try:
        lines = read_metrics(run_dir)
    except (OSError, ValueError):
        return None
    if not lines:
        return None
    seconds = [line["epoch_seconds"] for line in lines]
    return {"epochs_done": len(lines), "epoch_seconds_sum": sum(seconds), "epoch_s_median": statistics.median(seconds),
            "note": "fit did not finish; figures of the epochs it wrote to metrics.jsonl"}


def _device_facts(name: str) -> dict:
    import torch

    facts = {"asked": name, "torch_version": torch.__version__, "torch_cuda": torch.version.cuda,
             "cuda_available": torch.cuda.is_available(), "python": platform.python_version(),
             "host": platform.node(), "cpu_threads": torch.get_num_threads()}
    if name.startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        facts.update(name=torch.cuda.get_device_name(0), memory_mib=props.total_memory / 2**20,
                     capability=f"{props.major}.{props.minor}")
    else:
        facts["name"] = platform.processor() or platform.machine()
    return facts


def _git_commit() -> str | None:
    try:
        from mcef.train import git_commit
    except ImportError:
        return None
    return git_commit()


def run_report(args) -> int:
    work = Path(args.work)
    steps = []
    steps_file = work / "steps.tsv"
    if steps_file.is_file():
        for line in steps_file.read_text().splitlines():
            name, rc, seconds, limit, command = line.split("\t", 4)
            steps.append({"name": name, "rc": int(rc), "seconds": float(seconds), "limit_s": int(limit),
                          "timed_out": int(rc) in (124, 137), "command": command})
    fit = _read_json(work / "fit.json")
    report = {
        "mode": args.mode,
        "ok": None,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "device": _device_facts(args.device),
        "steps": steps,
        "total_s": sum(s["seconds"] for s in steps),
        "tests": _tests(work / "tests.xml"),
        "bench": {p: _bench(_read_json(work / f"bench_{p}.json")) for p in PRECISIONS},
        "fit": fit if fit is not None else {"missing": True, "partial": _partial_fit(work / "runs" / "fit")},
    }
    problems = [f"step {s['name']} exited {s['rc']}" + (" (timed out)" if s["timed_out"] else "")
                for s in steps if s["rc"] != 0]
    if report["tests"] is None:
        problems.append("no test results")
    elif report["tests"]["collected"] == 0:
        problems.append("no device test was collected")
    problems += [f"no bench figures for {p}" for p, b in report["bench"].items() if b is None]
    if fit is None:
        problems.append("no fit figures")
    report["problems"], report["ok"] = problems, not problems
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(out)
    print(summary_lines(report))
    return 0 if report["ok"] else 1


def summary_lines(report: dict) -> str:
    lines = [f"gpu_check ({report['mode']}) on {report['device']['name']}, torch {report['device']['torch_version']}, "
             f"{report['date']}: {'ok' if report['ok'] else 'FAILED'}"]
    for s in report["steps"]:
        lines.append(f"  {s['name']:16s} rc={s['rc']:<3d} {s['seconds']:7.1f} s (limit {s['limit_s']} s)")
    t = report["tests"]
    if t:
        lines.append(f"  tests: {t['passed']} passed, {t['failed']} failed, {t['errors']} errors, "
                     f"{t['skipped']} skipped")
    for p, b in report["bench"].items():
        if b and "ours" in b:
            base = b.get("baseline") or {}
            lines.append(f"  bench {p}: ours {b['ours']['train_epoch_s']:.3f} s/epoch, reference emulation "
                         f"{base.get('train_epoch_s', float('nan')):.3f} s/epoch, speed-up {b['speedup'] or 0:.2f}x, "
                         f"peak {b['ours']['peak_memory_mb'] or 0:.0f} MiB")
    f = report["fit"]
    if "wall_time_s" in f:
        lines.append(f"  fit: {f['epochs_run']} epochs in {f['wall_time_s']:.1f} s "
                     f"(median {f['epoch_s_median']:.3f} s/epoch), peak {f['peak_memory_mib']:.0f} MiB")
    lines += [f"  problem: {p}" for p in report["problems"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fit", help="one measured mcef.train.fit run")
    p.add_argument("--config", required=True, help="experiment config file")
    p.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    p.add_argument("--device", required=True, help="cpu | cuda | ...")
    p.add_argument("--run-dir", required=True, help="run directory (a temporary one, never the repository's runs/)")
    p.add_argument("--json", required=True, help="where to write the figures")
    p.set_defaults(func=run_fit)
    p = sub.add_parser("report", help="gather the steps' figures into one JSON")
    p.add_argument("--mode", required=True, choices=["gpu", "dry"])
    p.add_argument("--device", required=True)
    p.add_argument("--work", required=True, help="the folder the steps wrote to")
    p.add_argument("--json", required=True, help="the JSON to write")
    p.set_defaults(func=run_report)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
