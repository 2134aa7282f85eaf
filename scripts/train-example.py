#!/usr/bin/python3
"""Train the bundled example model: a small CNN on Fashion-MNIST, exported to ONNX.

Developer-side only: edgetune never runs Python. The trained model is committed under
examples/fashion-mnist/ so the quickstart needs no training.

Set-up on Debian 12 (bookworm):
    apt-get install dataset-fashion-mnist python3-torch
Run from the repository root (about 15 minutes on one CPU core):
    /usr/bin/python3 scripts/train-example.py

What it does:
  * trains on the official Fashion-MNIST *training* set only; 5,000 of its 60,000 images are held out (fixed
    seed) as a validation set that picks the best epoch;
  * evaluates that epoch once on the official t10k *test* set and prints the accuracy;
  * exports ONNX (opset 13) with input `input` float32 [N,1,28,28] and output `logits` [N,10];
  * copies the t10k IDX files next to the model (byte for byte) as edgetune's held-out evaluation set;
  * writes meta.json with the measured accuracies.

Normalisation: pixel bytes 0..255 are multiplied by 1/255, nothing else (no mean/std shift), so a runtime only
needs the `scale` from meta.json.
"""

import argparse
import gzip
import json
import os
import shutil
import struct
import sys
import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SCALE = 1.0 / 255.0
VALIDATION = 5000
SUBSET = 2000  # the first N test images; edgetune's test re-measures this figure with onnxruntime-node
OPSET = 13


def read_idx(path):
    """IDX file (gzipped) -> uint8 array with the file's dims."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        sys.exit(f"{path}: not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        sys.exit(f"{path}: expected {int(np.prod(dims))} bytes of data for dims {dims}, found {data.size}")
    return data.reshape(dims)


class Net(nn.Module):
    """Conv-Relu-Pool x2 -> Flatten -> Linear(1568,256) -> Relu -> Linear(256,10).

    The convs give static quantization and channel pruning something to work on; the two Linear layers export as
    Gemm, which int8 dynamic quantization targets.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 7 * 7, 256)
        self.fc2 = nn.Linear(256, 10)
        self.drop = nn.Dropout(0.3)  # training only; absent from the exported graph

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = self.drop(F.relu(self.fc1(x)))
        return self.fc2(x)


def augment(x, gen):
    """Random horizontal flip and a shift of up to 2 pixels: cheap, and worth about a point of test accuracy."""
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (2, 2, 2, 2))
    dx = torch.randint(0, 5, (n,), generator=gen)
    dy = torch.randint(0, 5, (n,), generator=gen)
    out = torch.empty_like(x)
    # per-sample crop; 128 small slices per batch is negligible next to the convolutions
    for i in range(n):
        out[i] = padded[i, :, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28]
    return out


@torch.no_grad()
def accuracy(model, images, labels, batch=1000):
    model.eval()
    correct = 0
    for i in range(0, images.shape[0], batch):
        pred = model(images[i:i + batch]).argmax(1)
        correct += int((pred == labels[i:i + batch]).sum())
    return correct / images.shape[0]


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                    help="folder with the four Fashion-MNIST IDX .gz files (Debian: dataset-fashion-mnist)")
    ap.add_argument("--out", default=os.path.join(root, "examples", "fashion-mnist"))
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=20240501)
    ap.add_argument("--threads", type=int, default=1,
                    help="1 keeps runs reproducible and was fastest on a shared 2-core machine")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)

    def load(prefix):
        x = read_idx(os.path.join(args.data, f"{prefix}-images-idx3-ubyte.gz"))
        y = read_idx(os.path.join(args.data, f"{prefix}-labels-idx1-ubyte.gz"))
        return torch.from_numpy(x.astype(np.float32) * SCALE)[:, None], torch.from_numpy(y.astype(np.int64))

    train_x, train_y = load("train")
    test_x, test_y = load("t10k")

    gen = torch.Generator().manual_seed(args.seed)
    perm = torch.randperm(train_x.shape[0], generator=gen)
    val_idx, fit_idx = perm[:VALIDATION], perm[VALIDATION:]
    val_x, val_y = train_x[val_idx], train_y[val_idx]
    fit_x, fit_y = train_x[fit_idx], train_y[fit_idx]
    print(f"train {fit_x.shape[0]}  validation {val_x.shape[0]}  test {test_x.shape[0]}", flush=True)

    model = Net()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * ((fit_x.shape[0] + args.batch - 1) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps)

    best_val, best_epoch, best_state = -1.0, 0, None
    started = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(fit_x.shape[0], generator=gen)
        total = 0.0
        for i in range(0, order.shape[0], args.batch):
            idx = order[i:i + args.batch]
            x = augment(fit_x[idx], gen)
            loss = F.cross_entropy(model(x), fit_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * idx.shape[0]
        val = accuracy(model, val_x, val_y)
        if val > best_val:
            best_val, best_epoch = val, epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        print(f"epoch {epoch:2d}  loss {total / fit_x.shape[0]:.4f}  val {val:.4f}  "
              f"{time.time() - started:.0f}s", flush=True)

    model.load_state_dict(best_state)
    model.eval()
    # The test set is looked at once, after the epoch was chosen on validation data.
    test_acc = accuracy(model, test_x, test_y)
    subset_acc = accuracy(model, test_x[:SUBSET], test_y[:SUBSET])
    print(f"best epoch {best_epoch}  validation accuracy {best_val:.4f}")
    print(f"test accuracy (t10k, 10000 images): {test_acc:.4f}")
    print(f"test accuracy (first {SUBSET} t10k images): {subset_acc:.4f}")

    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, "model.onnx")
    torch.onnx.export(model, torch.zeros(1, 1, 28, 28), onnx_path,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                      opset_version=OPSET, do_constant_folding=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copyfile(os.path.join(args.data, name), os.path.join(args.out, name))

    meta = {
        "v": 1,
        "input": "input",
        "output": "logits",
        "inputShape": [1, 28, 28],
        "scale": SCALE,
        "classes": CLASSES,
        "testAccuracy": round(test_acc, 4),
        "testImages": int(test_x.shape[0]),
        "subsetAccuracy": {"first": SUBSET, "accuracy": round(subset_acc, 4)},
        "validationAccuracy": round(best_val, 4),
        "evalSet": {"images": "t10k-images-idx3-ubyte.gz", "labels": "t10k-labels-idx1-ubyte.gz"},
        "trainedWith": (f"/usr/bin/python3 scripts/train-example.py --epochs {args.epochs} --batch {args.batch} "
                        f"--lr {args.lr} --seed {args.seed} --threads {args.threads} "
                        f"(torch {torch.__version__}, Debian python3-torch; best epoch {best_epoch})"),
        "opset": OPSET,
    }
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(f"wrote {onnx_path} and meta.json")


if __name__ == "__main__":
    main()
