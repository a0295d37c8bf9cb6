"""CompressAI's factorized-prior codec (Balle et al. 2017: compressai.models.FactorizedPrior) trained
and measured for bench/lossy.py, in bench/.venv-compressai (bash bench/setup_compressai.sh).

    bench/.venv-compressai/bin/python bench/compressai_worker.py --data D.npz --lmbda 0.01 --seconds 300 --out OUT

D.npz holds uint8 images "train" and "test" (N, 1, H, W). Trains with CompressAI's own recipe
(examples/train.py: Adam 1e-4, the auxiliary quantile loss with Adam 1e-3, batch 16, gradients
clipped at 1, its RateDistortionLoss) for --seconds of wall-clock time, then compresses every test
image with its entropy coder and decodes it again. The model takes 1 channel in and out instead of
3, and images are padded (edge values) to a multiple of 16, its downsampling; decoded images are
cropped back. Writes OUT.json (bytes of all the bitstreams, steps, times) and OUT.npy (the decoded
uint8 images).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types

import numpy as np

# CompressAI imports torchvision only to list its data transforms; PyPI's torchvision wheels are CUDA
# builds whose compiled ops do not load against the CPU torch. An empty module stands in for it.
_tv = types.ModuleType("torchvision")
_tv.transforms = types.ModuleType("torchvision.transforms")
sys.modules.update({"torchvision": _tv, "torchvision.transforms": _tv.transforms})

import compressai  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from compressai.losses import RateDistortionLoss  # noqa: E402
from compressai.models import FactorizedPrior  # noqa: E402
from compressai.models.utils import conv, deconv  # noqa: E402

STRIDE = 16  # four stride-2 layers


def grey_model(n: int, m: int) -> FactorizedPrior:
    net = FactorizedPrior(n, m)
    net.g_a[0] = conv(1, n)
    net.g_s[-1] = deconv(n, 1)
    return net


def pad(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % STRIDE, 0, -h % STRIDE), mode="replicate")


def train(net, images: np.ndarray, lmbda: float, seconds: float, seed: int) -> dict:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    main = [p for n, p in net.named_parameters() if not n.endswith(".quantiles")]
    aux = [p for n, p in net.named_parameters() if n.endswith(".quantiles")]
    optimizer, aux_optimizer = torch.optim.Adam(main, lr=1e-4), torch.optim.Adam(aux, lr=1e-3)
    criterion = RateDistortionLoss(lmbda=lmbda)
    net.train()
    start, steps, pos, order = time.perf_counter(), 0, 0, rng.permutation(len(images))
    while time.perf_counter() - start < seconds:
        if pos + 16 > len(order):  # a new epoch, reshuffled
            pos, order = 0, rng.permutation(len(images))
        x = pad(torch.from_numpy(images[order[pos : pos + 16]]).float() / 255)
        pos += 16
        optimizer.zero_grad()
        aux_optimizer.zero_grad()
        loss = criterion(net(x), x)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        net.aux_loss().backward()
        aux_optimizer.step()
        steps += 1
    return {"steps": steps, "epochs": steps * 16 / len(images), "train_seconds": time.perf_counter() - start}


@torch.no_grad()
def code(net, images: np.ndarray, batch: int = 100) -> tuple[int, np.ndarray, float, float]:
    """Every image through CompressAI's entropy coder and back: (bytes, decoded, seconds, seconds)."""
    net.eval()
    net.update(force=True)
    h, w = images.shape[-2:]
    size, out, t_enc, t_dec = 0, [], 0.0, 0.0
    for i in range(0, len(images), batch):
        x = pad(torch.from_numpy(images[i : i + batch]).float() / 255)
        t0 = time.perf_counter()
        enc = net.compress(x)
        t1 = time.perf_counter()
        dec = net.decompress(enc["strings"], enc["shape"])
        t_enc, t_dec = t_enc + t1 - t0, t_dec + time.perf_counter() - t1
        size += sum(len(s) for s in enc["strings"][0])
        x_hat = dec["x_hat"][..., :h, :w].clamp(0, 1)
        out.append((x_hat * 255).round().to(torch.uint8).numpy())
    return size, np.concatenate(out), t_enc, t_dec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="store_true")
    ap.add_argument("--data")
    ap.add_argument("--lmbda", type=float)
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--out")
    ap.add_argument("--n", type=int, default=128, help="CompressAI's N (its quality 1-5 models use 128)")
    ap.add_argument("--m", type=int, default=192, help="CompressAI's M (its quality 1-5 models use 192)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.version:
        print(f"torch {torch.__version__} | compressai {compressai.__version__}")
        return
    data = np.load(args.data)
    net = grey_model(args.n, args.m)
    result = {
        "lmbda": args.lmbda,
        "n": args.n,
        "m": args.m,
        **train(net, data["train"], args.lmbda, args.seconds, args.seed),
    }
    size, decoded, t_enc, t_dec = code(net, data["test"])
    result.update(bytes=size, compress_seconds=t_enc, decompress_seconds=t_dec, images=len(decoded))
    np.save(args.out + ".npy", decoded)
    with open(args.out + ".json", "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
