"""Time per aggregation of every aggregation rule's maths on synthetic updates, side by side.

    python benchmarks/aggregation.py [--clients 10 100 1000] [--dim 1000000] [--device auto|cpu|cuda] [--rules ...]

For each n in --clients it stacks n random updates of --dim parameters (float32; 20% of them shifted,
as colluders would be) and times one call of each rule's pure function (the maths fl_sim's
strategies run each round: FedAvg's weighted mean, Flower's coordinate-wise median and trimmed mean
re-done in torch, Krum / Multi-Krum scores, and the tensor defenses of strategies/). It prints
seconds per aggregation and `ratio` = time / FedAvg's time at the same n. ``quant_aware`` is not in
this table: its cost is model forward passes (n x (2 + B) passes over the server set), not
update maths. Rules whose n x n distance or similarity matrix or float64 copy of the stack would
not fit in memory (the defenses work on float64 copies: about 28 n d bytes) are reported as
skipped with the reason. The first call of each rule is a warm-up at n=10.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import torch

from strategies.centered_clipping import centered_clipping
from strategies.dnc import dnc
from strategies.flame import flame
from strategies.fltrust import fltrust
from strategies.foolsgold import foolsgold
from strategies.krum import multikrum_select
from strategies.norm_clipping import norm_clipping
from strategies.rfa import geometric_median

Rule = Callable[[torch.Tensor, torch.Tensor, torch.Generator], object]


def _trimmed_mean(u: torch.Tensor, beta: float = 0.2) -> torch.Tensor:
    k = int(beta * u.shape[0])
    s = torch.sort(u, dim=0).values
    return s[k : u.shape[0] - k].mean(0)


RULES: dict[str, Rule] = {
    "fedavg": lambda u, w, g: (w[:, None] * u).sum(0) / w.sum(),
    "fedmedian": lambda u, w, g: u.median(dim=0).values,
    "fedtrimmedavg": lambda u, w, g: _trimmed_mean(u),
    "krum": lambda u, w, g: multikrum_select(u, max(1, u.shape[0] // 5), 1),
    "multikrum": lambda u, w, g: u[multikrum_select(u, max(1, u.shape[0] // 5), u.shape[0] - u.shape[0] // 5)].mean(0),
    "norm_clipping": lambda u, w, g: norm_clipping(u, w, None, noise_std=0.001, generator=g),
    "fltrust": lambda u, w, g: fltrust(u, u[-1] * 0.9),
    "flame": lambda u, w, g: flame(u, w, generator=g),
    "foolsgold": lambda u, w, g: foolsgold(u, u),
    "rfa": lambda u, w, g: geometric_median(u, w),
    "centered_clipping": lambda u, w, g: centered_clipping(u, w, None, float(u.norm(dim=1).median())),
    "dnc": lambda u, w, g: dnc(u, w, max(1, u.shape[0] // 5), g),
}


def _updates(n: int, d: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(n, d, generator=g) * 1e-3
    u[: max(1, n // 5)] += 5e-3  # the colluders' shift
    w = torch.randint(50, 150, (n,), generator=g).double()
    return u.to(device), w.to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


_FLOAT32_RULES = {"fedavg", "fedmedian", "fedtrimmedavg"}  # Flower's rules re-done in torch on the float32 stack


def _fits(name: str, n: int, d: int) -> str | None:
    """Why the rule is skipped at this size, or None. The defenses work on float64 copies of the
    stack (a copy plus about two working arrays: 24 n d bytes besides the 4 n d of the input);
    measured here, n = 1000 x d = 1M was killed for memory on a 24 GiB machine."""
    need = 4 * n * d + (0 if name in _FLOAT32_RULES else 24 * n * d)
    avail = int(0.8 * _memory_bytes())
    if need > avail:
        return f"needs ~{need / 2**30:.0f} GiB of {avail / 2**30:.0f}"
    return None


def _memory_bytes() -> int:
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def time_rule(rule: Rule, u: torch.Tensor, w: torch.Tensor, device: torch.device) -> float:
    gen = torch.Generator().manual_seed(1)
    _sync(device)
    t0 = time.perf_counter()
    rule(u, w, gen)
    _sync(device)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--dim", type=int, default=1_000_000)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    args = ap.parse_args()
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu")
    print(f"device {device}, d = {args.dim:,}, torch threads {torch.get_num_threads()}")
    warm_u, warm_w = _updates(10, 1000, device)
    for name in args.rules:
        time_rule(RULES[name], warm_u, warm_w, device)
    print(f"{'rule':<18}" + "".join(f"{f'n={n} s':>14}{'ratio':>8}" for n in args.clients))
    results: dict[str, list[str]] = {name: [] for name in args.rules}
    for n in args.clients:
        u, w = _updates(n, args.dim, device)
        base = time_rule(RULES["fedavg"], u, w, device)
        for name in args.rules:
            why = _fits(name, n, args.dim)
            if why:
                results[name].append(f"{'skipped':>14}{'':>8}")
                continue
            t = base if name == "fedavg" else time_rule(RULES[name], u, w, device)
            results[name].append(f"{t:>14.4f}{t / base:>8.1f}")
            print(f"  measured {name} at n={n}: {t:.4f} s", file=sys.stderr, flush=True)
        del u, w
    for name in args.rules:
        print(f"{name:<18}" + "".join(results[name]))


if __name__ == "__main__":
    main()
