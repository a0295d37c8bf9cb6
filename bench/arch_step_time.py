"""Side by side: one training step (batch 128, Fashion-MNIST shape, fused Adam, float32) of
vaekit's two default architectures for 28x28 images, alternating so that load falls on both.

    .venv/bin/python bench/arch_step_time.py --steps 60
"""

import argparse
import time

import torch

from vaekit.config import ModelConfig
from vaekit.core.model import VAE


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=60)
    a = p.parse_args()
    torch.manual_seed(0)
    x = torch.rand(128, 1, 28, 28)
    nets = {}
    for arch in ("mlp", "conv"):
        channels = [32, 64] if arch == "conv" else None
        m = VAE.from_config(ModelConfig(arch=arch, channels=channels, data_shape=[1, 28, 28]))
        nets[arch] = (m, torch.optim.Adam(m.parameters(), lr=1e-3, fused=True))
    times = {k: [] for k in nets}
    for i in range(a.steps + 5):
        for arch, (m, opt) in nets.items():
            t0 = time.perf_counter()
            out = m(x, None, target=x)
            loss = (out.recon + out.kl).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i >= 5:
                times[arch].append(time.perf_counter() - t0)
    med = {k: sorted(v)[len(v) // 2] * 1e3 for k, v in times.items()}
    print(
        f"median step ms: mlp {med['mlp']:.1f}, conv {med['conv']:.1f}; conv / mlp = {med['conv'] / med['mlp']:.2f}x "
        f"(torch threads: {torch.get_num_threads()})"
    )


if __name__ == "__main__":
    main()
