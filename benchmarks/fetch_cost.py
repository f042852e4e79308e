"""The margin pass's fetching: item by item (a custom collate, one ``__getitem__`` per sample) against gathered rows
(`lightning_stability.callbacks.margin_loader.gather_rows`, one indexing per batch), over N = 20,000 MNIST-shaped
samples of a TensorDataset behind a Subset (as ``random_split`` gives), an MLP 784-256-256-10, batch 256, 2 threads;
7 interleaved repetitions, medians of wall and CPU time.

    python benchmarks/fetch_cost.py
"""

import statistics
import time

import torch
from torch import nn
from torch.utils.data import Subset, TensorDataset, default_collate

from lightning_stability.callbacks.forward_output import default_forward
from lightning_stability.callbacks.margin_loader import margin_dataloader
from lightning_stability.callbacks.margin_pass import MarginCollector, run_margin_pass

torch.manual_seed(0)
torch.set_num_threads(2)
N = 20000
data = Subset(TensorDataset(torch.rand(N + 2000, 784), torch.randint(0, 10, (N + 2000,))), list(range(N)))
model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))


def run(gather):
    collate = None if gather else (lambda items: default_collate(items))
    loader = margin_dataloader(data, 256, collate_fn=collate)
    start = time.perf_counter()
    cpu = time.process_time()
    run_margin_pass(model, loader, default_forward, MarginCollector())
    return time.perf_counter() - start, time.process_time() - cpu


times = {True: [], False: []}
for _ in range(7):
    for g in (False, True):
        times[g].append(run(g))
for g in (False, True):
    w = [t[0] for t in times[g]]
    c = [t[1] for t in times[g]]
    print(
        f"gather={g}: wall median {statistics.median(w):.3f} s (range {min(w):.3f}-{max(w):.3f}), cpu median {statistics.median(c):.3f} s"
    )
