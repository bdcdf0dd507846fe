#!/usr/bin/env python3
"""torch_peer.py — the PyTorch baseline for bench_train: the same models,
batch sizes, optimizer (SGD with momentum) and data shapes, on one thread.

Prints one JSON line per (model, batch):
  {"peer": "pytorch", "model": "mlp:784-256-10", "batch": 64,
   "samples_per_s": ..., "samples_per_cpu_s": ..., "steps": ...}
or the single line "peer: PyTorch absent" when torch cannot be imported.

Each step is what a PyTorch user writes: zero_grad, forward, cross-entropy,
backward, optimizer step, on consecutive slices (views, no copy) of a tensor
shaped like Fashion-MNIST (uniform in [0, 1), random labels).
"""
import argparse
import json
import os
import sys
import time

# One thread everywhere: torch.set_num_threads(1) below covers OpenMP and oneDNN, but
# the Debian build of PyTorch does its matrix products in OpenBLAS, whose own thread
# pool only these variables (read when the library loads) keep to one thread.
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"

try:
    import torch
except ImportError:
    # The distribution's python3-torch lives in the system interpreter; a
    # python3 from elsewhere (pyenv, a venv) first on PATH does not see it.
    ALT = "/usr/bin/python3"
    if (not os.environ.get("COVEY_PEER_REEXEC") and os.path.exists(ALT)
            and os.path.realpath(sys.executable) != os.path.realpath(ALT)):
        os.environ["COVEY_PEER_REEXEC"] = "1"
        os.execv(ALT, [ALT] + sys.argv)
    print("peer: PyTorch absent", flush=True)
    sys.exit(0)


def build(spec):
    kind, dims = spec.split(":")
    dims = [int(d) for d in dims.split("-")]
    layers = []
    for i in range(len(dims) - 1):
        if i:
            layers.append(torch.nn.ReLU())
        layers.append(torch.nn.Linear(dims[i], dims[i + 1]))
    return torch.nn.Sequential(*layers), dims[0], dims[-1]


def bench(spec, batch, x_all, y_all, seconds, lr, momentum):
    torch.manual_seed(1)
    model, _, _ = build(spec)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    loss_fn = torch.nn.CrossEntropyLoss()
    nb = x_all.shape[0] // batch

    def step(b):
        xb = x_all[b * batch:(b + 1) * batch]
        yb = y_all[b * batch:(b + 1) * batch]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()

    b = 0
    for _ in range(100):  # warm-up
        step(b)
        b = (b + 1) % nb
    steps = 0
    t0, c0 = time.perf_counter(), time.process_time()
    while True:
        for _ in range(16):
            step(b)
            b = (b + 1) % nb
        steps += 16
        t1 = time.perf_counter()
        if t1 - t0 >= seconds:
            break
    c1 = time.process_time()
    return {"peer": "pytorch", "model": spec, "batch": batch,
            "samples_per_s": steps * batch / (t1 - t0),
            "samples_per_cpu_s": steps * batch / (c1 - c0), "steps": steps}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="softmax:784-10,mlp:784-256-10")
    ap.add_argument("--batches", default="32,64")
    ap.add_argument("--samples", type=int, default=60000)
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--momentum", type=float, default=0.9)
    args = ap.parse_args()

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    specs = args.models.split(",")
    dim = build(specs[0])[1]
    classes = build(specs[0])[2]
    gen = torch.Generator().manual_seed(2024)
    x_all = torch.rand(args.samples, dim, generator=gen)
    y_all = torch.randint(0, classes, (args.samples,), generator=gen)
    print("peer: PyTorch %s, %d thread(s)" % (torch.__version__, torch.get_num_threads()),
          flush=True)
    for spec in specs:
        for batch in [int(b) for b in args.batches.split(",")]:
            print(json.dumps(bench(spec, batch, x_all, y_all, args.seconds, args.lr,
                                   args.momentum)), flush=True)


if __name__ == "__main__":
    main()
