#!/usr/bin/python3
"""Times the CPU kernel choices for the U-Net's forward pass, one by one.

The same LibTorch (Debian's 1.13) that the server links, driven from Python
so that each variant is a few lines: the shipped model's weights in
model/export_torchscript.py's U-Net, one 512 x 512 image mirrored out to
700 x 700, batch 1, at 1 and 2 intra-op threads. Each variant is checked
against the eager logits before it is timed. Run it with the server's
allocator settings (benchmark/cpu_comparison.sh does):

  MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=268435456 \\
      /usr/bin/python3 benchmark/cpu_kernels.py [--seconds 6]
"""

import argparse
import copy
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "model"))
from export_torchscript import load_version  # noqa: E402


def one_by_one_up(up, x):
    """A 2x2 stride-2 transposed convolution as a oneDNN 1x1 convolution
    and a pixel shuffle, as model/unet.cc runs it without gradients."""
    w = up.weight
    weight = w.permute(1, 2, 3, 0).reshape(w.shape[1] * 4, w.shape[0], 1, 1)
    y = torch.ops.aten.mkldnn_convolution(
        x, weight.contiguous(), up.bias.repeat_interleave(4), [0, 0], [1, 1],
        [1, 1], 1)
    return F.pixel_shuffle(y, 2)


class OneByOneUp(torch.nn.Module):
    def __init__(self, up):
        super().__init__()
        self.up = up

    def forward(self, x):
        return one_by_one_up(self.up, x)


class OneByOneHead(torch.nn.Module):
    def __init__(self, head):
        super().__init__()
        self.head = head

    def forward(self, x):
        return torch.ops.aten.mkldnn_convolution(
            x, self.head.weight, self.head.bias, [0, 0], [1, 1], [1, 1], 1)


def with_one_by_one(net):
    """`net` (the same weights) with the up-convolutions and the head as
    oneDNN 1x1 convolutions, as model/unet.cc runs them."""
    net = copy.deepcopy(net)
    net.upconvs = torch.nn.ModuleList(OneByOneUp(up) for up in net.upconvs)
    net.head = OneByOneHead(net.head)
    return net


def argmax_by_comparison(logits):
    best = logits[:, 0]
    index = torch.zeros_like(best, dtype=torch.uint8)
    for c in range(1, logits.shape[1]):
        index.masked_fill_(logits[:, c] > best, c)
        best = torch.maximum(best, logits[:, c])
    return index


def time_it(fn, seconds):
    fn()
    fn()
    passes, start = 0, time.perf_counter()
    while passes < 3 or time.perf_counter() - start < seconds:
        fn()
        passes += 1
    return 1000.0 * (time.perf_counter() - start) / passes


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--version_dir", default="model/repository/unet/3")
    p.add_argument("--seconds", type=float, default=6)
    args = p.parse_args()
    net, _ = load_version(args.version_dir)
    x = torch.rand(1, 1, 700, 700)
    with torch.inference_mode():
        reference = net(x)
        scripted = torch.jit.script(net)
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(scripted))
        net_cl = load_version(args.version_dir)[0].to(
            memory_format=torch.channels_last)
        one_by_one, one_by_one_cl = with_one_by_one(net), with_one_by_one(net_cl)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        variants = [
            ("eager (LibTorch modules)", lambda: net(x)),
            ("eager, up-convolutions and head as oneDNN 1x1",
             lambda: one_by_one(x)),
            ("eager, channels-last", lambda: net_cl(x_cl)),
            ("eager, channels-last, up-convolutions and head as oneDNN 1x1",
             lambda: one_by_one_cl(x_cl)),
            ("TorchScript, scripted", lambda: scripted(x)),
            ("TorchScript, frozen + optimize_for_inference",
             lambda: frozen(x)),
        ]
        print("| variant | max abs diff | 1 thread ms | 2 threads ms |")
        print("|---|---:|---:|---:|")
        for name, fn in variants:
            diff = (fn().float().contiguous() - reference).abs().max().item()
            times = []
            for threads in (1, 2):
                torch.set_num_threads(threads)
                times.append(time_it(fn, args.seconds))
            print(f"| {name} | {diff:.1e} | {times[0]:.1f} | {times[1]:.1f} |",
                  flush=True)
        print()
        print("| arg max of the 2 x 516 x 516 logits | 1 thread ms "
              "| 2 threads ms |")
        print("|---|---:|---:|")
        for name, fn in [
                ("argmax(1)", lambda: reference.argmax(1).to(torch.uint8)),
                ("running comparison (torch_engine.cc)",
                 lambda: argmax_by_comparison(reference))]:
            assert torch.equal(fn(), reference.argmax(1).to(torch.uint8))
            times = []
            for threads in (1, 2):
                torch.set_num_threads(threads)
                times.append(time_it(fn, args.seconds / 4))
            print(f"| {name} | {times[0]:.2f} | {times[1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
