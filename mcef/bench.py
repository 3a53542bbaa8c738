"""Speed benchmark on IEMOCAP-shaped random data: train-epoch seconds, evaluation throughput, peak memory.

``bench(config)`` times our training step (the config's model, loss and loader) on 120 random dialogues with
IEMOCAP's real training dialogue lengths and feature dims. ``baseline="reference"`` also times, on the same
machine and data, an emulation of the reference's computation: the padded (non-packed) model, the reference's
Soft-HGR, random unsorted batches, fp32. The ratio of the two is the honest speed-up (timings on a shared
machine are noisy: run both side by side, never compare with figures from elsewhere).
"""

from __future__ import annotations

import multiprocessing
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mcef.config import ExperimentConfig, with_changes
from mcef.data.dataset import IEMOCAP_LABELS, Dialogue, DialogueDataset
from mcef.device import describe_device, resolve_device
from mcef.io import write_json_atomic

# Utterances per dialogue of IEMOCAP's 120 training dialogues (108 train + 12 valid of the COSMIC split, in that
# file order; 5,810 utterances), read once from /work/shared/data/iemocap_text.pkl (its label lists). Lengths only.
IEMOCAP_TRAIN_LENGTHS = (
    53, 27, 59, 8, 35, 46, 34, 66, 37, 44, 56, 44, 51, 63, 43, 74, 41, 39, 30, 35, 83, 58, 50, 94, 36, 37, 34, 42,
    42, 66, 62, 60, 44, 32, 26, 26, 47, 43, 53, 54, 51, 69, 51, 57, 53, 62, 40, 53, 60, 30, 47, 52, 51, 39, 38, 28,
    53, 69, 42, 35, 26, 47, 79, 57, 18, 61, 26, 27, 54, 69, 47, 61, 47, 26, 59, 53, 61, 54, 47, 38, 62, 45, 26, 34,
    20, 44, 52, 29, 54, 87, 45, 56, 31, 33, 74, 60, 46, 26, 46, 53, 40, 72, 37, 60, 77, 44, 50, 49, 50, 58, 32, 64,
    63, 44, 110, 18, 24, 43, 78, 63,
)
IEMOCAP_DIMS = {"text": 1024, "audio": 1582, "visual": 342}
REFERENCE_CPU_EPOCH_S = 15.5  # the reference's model + loss, one epoch on this project's 2-core CPU (SEED.md)


def bench_dataset(seed: int = 0, dims: dict[str, int] = IEMOCAP_DIMS, n_dialogues: int | None = None) -> DialogueDataset:
    """Random features, speakers and labels shaped like IEMOCAP's training set (every split = those dialogues);
    ``n_dialogues`` keeps the first that many of IEMOCAP's lengths (a quick check, not a benchmark)."""
    rng = np.random.default_rng(seed)
    dialogues = {}
    for i, n in enumerate(IEMOCAP_TRAIN_LENGTHS[:n_dialogues]):
        dialogues[f"d{i:03d}"] = Dialogue(
            id=f"d{i:03d}",
            features={m: rng.standard_normal((n, d), dtype=np.float32) for m, d in dims.items()},
            speakers=rng.integers(0, 2, n),
            labels=rng.integers(0, len(IEMOCAP_LABELS), n),
        )
    ids = list(dialogues)
    return DialogueDataset(name="bench", dialogues=dialogues, label_names=IEMOCAP_LABELS, speaker_names=("M", "F"),
                           splits={"train": ids}, source="random IEMOCAP-shaped dialogues (mcef.bench)")


def reference_emulation(config: ExperimentConfig) -> ExperimentConfig:
    """``config`` computed the reference's way: padded model, reference Soft-HGR, unsorted batches, fp32."""
    return with_changes(config, name=f"{config.name}-reference", model={"packed": False, "precision": "float32"},
                        loss={"hgr_mode": "reference"}, train={"bucket": False})


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _proc_status_mb(field: str) -> float:
    """A memory field of /proc/self/status (Linux), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 2**10  # kB
    raise KeyError(field)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class _Variant:
    """One configuration's model, objective, optimizer and loader on the benchmark data, ready to time."""

    def __init__(self, config: ExperimentConfig, dataset: DialogueDataset, device: torch.device):
        from mcef.data import DialogueLoader
        from mcef.model import MCEF
        from mcef.train import class_weights, make_objective, model_config, seed_everything

        seed_everything(config.train.seed)
        self.config, self.dataset, self.device = config, dataset, device
        mcfg = model_config(config, dataset)
        self.model = MCEF(mcfg).to(device)
        self.objective = make_objective(config, class_weights(config, dataset), device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.train.lr,
                                          weight_decay=config.train.weight_decay)
        self.loader = DialogueLoader(dataset, "train", batch_size=config.train.batch_size, shuffle=True,
                                     bucket=config.train.bucket, modalities=tuple(mcfg.modalities), device=device,
                                     seed=config.train.seed)
        self.train_seconds: list[float] = []
        self.eval_seconds: list[float] = []

    def epoch(self, train: bool) -> float:
        """Seconds of one training (or evaluation) pass over the data, device work included."""
        from mcef.train import run_epoch

        _synchronize(self.device)
        tick = time.perf_counter()
        run_epoch(self.model, self.loader, self.objective, self.dataset.n_classes,
                  optimizer=self.optimizer if train else None)
        _synchronize(self.device)
        return time.perf_counter() - tick

    def figures(self, memory: dict) -> dict:
        from mcef.model import count_parameters

        c = self.config
        n_utterances = sum(len(d) for d in self.dataset.split("train"))
        return {
            "config": c.name, "hidden": c.model.hidden, "packed": c.model.packed, "precision": c.model.precision,
            "hgr_mode": c.loss.hgr_mode,
            "bucket": c.train.bucket,
            "parameters": count_parameters(self.model),
            "train_epoch_s": statistics.median(self.train_seconds), "train_epoch_s_all": self.train_seconds,
            "eval_utterances_per_s": n_utterances / statistics.median(self.eval_seconds),
            "eval_s_all": self.eval_seconds, **memory,
        }


def _memory(config: ExperimentConfig, dataset: DialogueDataset, device: torch.device) -> dict:
    """Peak memory above the starting point over building ``config``'s model and one training epoch."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        _Variant(config, dataset, device).epoch(train=True)
        return {"peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20,
                "memory_method": "torch.cuda.max_memory_allocated over one training epoch (model included)"}
    if device.type != "cpu":
        return {"peak_memory_mb": None, "memory_method": f"not measured on {device.type}"}
    # Inside one process the allocator keeps what earlier variants freed, so a second variant's peak reads
    # near zero: each variant is measured in a fresh interpreter instead.
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        peak, method = pool.apply(_cpu_peak_memory_mb, (config, dataset))
    return {"peak_memory_mb": peak, "memory_method": method}


def _cpu_peak_memory_mb(config: ExperimentConfig, dataset: DialogueDataset) -> tuple[float, str]:
    """In a fresh process: peak memory over building ``config``'s model and one training epoch, above the start."""
    device = torch.device("cpu")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: reset the peak RSS (VmHWM) to the current RSS
        before = _proc_status_mb("VmRSS")
        _Variant(config, dataset, device).epoch(train=True)
        return (_proc_status_mb("VmHWM") - before, "peak RSS (VmHWM, reset first) minus RSS before building the "
                "model and its data loader and training one epoch, in a fresh process")
    except (OSError, KeyError):
        before = _peak_rss_mb()
        _Variant(config, dataset, device).epoch(train=True)
        return (_peak_rss_mb() - before, "increase of the peak RSS (ru_maxrss) over building the model and training "
                "one epoch, in a fresh process: a lower bound when loading the data peaked higher")


def _check_bench_args(epochs, warmup, n_dialogues, dims) -> None:
    """A ValueError naming the argument (and its command-line flag) for the first bad one."""
    def integer(x) -> bool:
        return isinstance(x, (int, np.integer)) and not isinstance(x, bool)

    if not integer(epochs) or epochs < 1:
        raise ValueError(f"bench: epochs (--epochs) must be at least 1, the number of timed epochs; got {epochs!r}")
    if not integer(warmup) or warmup < 0:
        raise ValueError(f"bench: warmup (--warmup) must be 0 or more untimed epochs; got {warmup!r}")
    if n_dialogues is not None and (not integer(n_dialogues) or not 1 <= n_dialogues <= len(IEMOCAP_TRAIN_LENGTHS)):
        raise ValueError(f"bench: n_dialogues (--dialogues) must be in 1..{len(IEMOCAP_TRAIN_LENGTHS)} (IEMOCAP's "
                         f"training dialogues); got {n_dialogues!r}")
    if dims is not None:
        bad = {m: d for m, d in dims.items() if m not in IEMOCAP_DIMS or not integer(d) or d < 1}
        if bad or not dims:
            raise ValueError(f"bench: dims (--dims TEXT AUDIO VISUAL) must be positive feature dims of modalities "
                             f"{tuple(IEMOCAP_DIMS)}; got {dims!r}")


def bench(config: ExperimentConfig, *, device: str = "auto", epochs: int = 3, warmup: int = 1,
          baseline: str | None = None, json_path: str | Path | None = None, seed: int = 0,
          memory: bool = True, dataset: DialogueDataset | None = None, n_dialogues: int | None = None,
          dims: dict[str, int] | None = None) -> dict:
    """Benchmark ``config`` (and, with ``baseline="reference"``, the reference emulation) on IEMOCAP-shaped data.

    The variants' epochs are timed alternately (ours, baseline, ours, ...) so that both see the same machine
    load. Returns (and optionally writes as JSON) the figures; the speed-up is baseline seconds / our seconds.
    ``dataset`` replaces the IEMOCAP-shaped data (its training split is timed; for tests); ``memory=False`` skips
    the peak-memory measurement (one more training epoch per variant, each with a fresh model). ``n_dialogues`` and
    ``dims`` shrink the IEMOCAP-shaped data (a quick check of the command, e.g. ``scripts/gpu_check.sh --dry``).
    """
    custom = dataset
    if baseline not in (None, "reference"):
        raise ValueError(f"bench: unknown baseline {baseline!r}; expected 'reference' or none")
    _check_bench_args(epochs, warmup, n_dialogues, dims)
    resolved = resolve_device(device)
    dataset = custom or bench_dataset(seed, dims or IEMOCAP_DIMS, n_dialogues)
    configs = {"ours": config}
    if baseline == "reference":
        configs["baseline"] = reference_emulation(config)
    variants = {key: _Variant(c, dataset, resolved) for key, c in configs.items()}
    for train, times in ((True, "train_seconds"), (False, "eval_seconds")):
        for step in range(warmup + epochs):
            for variant in variants.values():
                seconds = variant.epoch(train)
                if step >= warmup:
                    getattr(variant, times).append(seconds)
    result = {
        "device": describe_device(resolved),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "data": (f"{len(dataset.dialogues)} random dialogues, IEMOCAP training lengths "
                 f"({sum(len(d) for d in dataset.dialogues.values())} utterances), dims {dataset.dims}, "
                 f"batch {config.train.batch_size}"
                 if custom is None else f"{dataset.source or dataset.name}, training split, batch "
                 f"{config.train.batch_size}"),
        "method": f"median of {epochs} epochs after {warmup} warm-up epoch(s), variants alternating epoch by epoch; "
                  "evaluation = the same dialogues in eval mode without gradients",
    }
    for key, variant in variants.items():
        result[key] = variant.figures(_memory(configs[key], dataset, resolved) if memory else
                                      {"peak_memory_mb": None, "memory_method": "not measured"})
    if "baseline" in result:
        result["ratio_ours_over_baseline"] = result["ours"]["train_epoch_s"] / result["baseline"]["train_epoch_s"]
        result["speedup"] = result["baseline"]["train_epoch_s"] / result["ours"]["train_epoch_s"]
    if resolved.type == "cpu" and custom is None and n_dialogues is None and dims is None and config.model.hidden == 512:  # the reference's measured size
        result["speedup_vs_published_reference_cpu_epoch"] = REFERENCE_CPU_EPOCH_S / result["ours"]["train_epoch_s"]
    if json_path is not None:
        write_json_atomic(json_path, result)
    return result


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} MiB"


def format_bench(result: dict) -> str:
    """The figures of :func:`bench` as a few readable lines."""
    lines = [f"device: {result['device']} ({result['torch_threads']} threads), torch {result['torch_version']}",
             f"data: {result['data']}", f"method: {result['method']}"]
    for key in ("ours", "baseline"):
        if key in result:
            r = result[key]
            lines.append(f"{key:9s} {r['config']}: H={r['hidden']} packed={r['packed']} hgr={r['hgr_mode']} "
                         f"precision={r['precision']} | train epoch {r['train_epoch_s']:.3f} s | evaluation "
                         f"{r['eval_utterances_per_s']:.0f} utt/s | peak memory {_mib(r['peak_memory_mb'])} | "
                         f"{r['parameters']:,} parameters")
    if "speedup" in result:
        lines.append(f"ours/baseline epoch time: {result['ratio_ours_over_baseline']:.3f} "
                     f"(speed-up {result['speedup']:.2f}x, side by side)")
    if "speedup_vs_published_reference_cpu_epoch" in result:
        lines.append(f"speed-up vs the reference's {REFERENCE_CPU_EPOCH_S} s CPU epoch (SEED.md, not side by side): "
                     f"{result['speedup_vs_published_reference_cpu_epoch']:.2f}x")
    return "\n".join(lines)
