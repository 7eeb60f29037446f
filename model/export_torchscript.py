#!/usr/bin/python3
"""Writes a U-Net as a TorchScript model version into a model repository.

The network is the same seed U-Net as model/unet.cc (unpadded 3x3
convolutions, 2x2 max-pools and up-convolutions, centre crop and
concatenation, 1x1 head), so that models trained in Python can be served.
The version lands atomically as MODEL_ROOT/<name>/<version>/{model.pt,
model.json}: it is assembled in a hidden directory and renamed into place.

  /usr/bin/python3 model/export_torchscript.py --model_root model/repository \
      --name unet --width 8 --seed 0 [--weights state_dict.pt]
"""

import argparse
import json
import os
import shutil
import sys

import torch
from torch import nn
import torch.nn.functional as F

BLOCK_SHRINK = 4  # two unpadded 3x3 convolutions


class DoubleConv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3)

    def forward(self, x):
        return F.relu(self.conv2(F.relu(self.conv1(x))))


def center_crop(x, height: int, width: int):
    top = (x.shape[2] - height) // 2
    left = (x.shape[3] - width) // 2
    return x[:, :, top:top + height, left:left + width]


class UNet(nn.Module):
    def __init__(self, input_channels=1, num_classes=2,
                 channels=(64, 128, 256, 512, 1024), retain_dim=False):
        super().__init__()
        self.retain_dim = retain_dim
        ins = [input_channels] + list(channels[:-1])
        self.encoder = nn.ModuleList(
            DoubleConv(i, o) for i, o in zip(ins, channels))
        rev = list(reversed(channels))
        self.upconvs = nn.ModuleList(
            nn.ConvTranspose2d(i, o, 2, stride=2) for i, o in zip(rev, rev[1:]))
        self.decoder = nn.ModuleList(
            DoubleConv(2 * o, o) for o in rev[1:])
        self.head = nn.Conv2d(channels[0], num_classes, 1)
        # As the paper: Gaussian weights with std sqrt(2 / fan_in).
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x):
        size = (x.shape[2], x.shape[3])
        skips = []
        for level, block in enumerate(self.encoder):
            if level > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()  # the bottleneck's output is not a skip connection
        for step, (up, block) in enumerate(zip(self.upconvs, self.decoder)):
            x = up(x)
            skip = skips[len(skips) - 1 - step]
            x = torch.cat([x, center_crop(skip, x.shape[2], x.shape[3])], 1)
            x = block(x)
        x = self.head(x)
        if self.retain_dim:
            x = F.interpolate(x, size=size, mode="bilinear",
                              align_corners=False)
        return x


def load_version(version_dir):
    """Returns (net, model.json) of a version, LibTorch-format or
    TorchScript: model/unet.cc names its layers as this U-Net does."""
    with open(os.path.join(version_dir, "model.json")) as f:
        config = json.load(f)
    arch = config["architecture"]
    net = UNet(arch["input_channels"], arch["num_classes"], arch["channels"],
               arch.get("retain_dim", False))
    weights = torch.jit.load(os.path.join(version_dir, "model.pt"),
                             map_location="cpu")
    net.load_state_dict({k: v.float() for k, v in
                         weights.state_dict().items()})
    net.eval()
    return net, config


def output_side(side, levels):
    """Returns the output side for an input side, or None if not valid."""
    for _ in range(levels - 1):
        side -= BLOCK_SHRINK
        if side <= 0 or side % 2:
            return None
        side //= 2
    side -= BLOCK_SHRINK
    for _ in range(levels - 1):
        side = side * 2 - BLOCK_SHRINK
    return side if side > 0 else None


def valid_input_sizes(levels):
    minimum = 1
    while output_side(minimum, levels) is None:
        minimum += 1
    return {"minimum": minimum, "step": 2 ** (levels - 1)}


def next_version(model_dir):
    versions = [int(d) for d in os.listdir(model_dir)
                if d.isdigit() and not d.startswith("0")] \
        if os.path.isdir(model_dir) else []
    return max(versions, default=0) + 1


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model_root", required=True)
    p.add_argument("--name", default="unet")
    p.add_argument("--version", type=int, default=0,
                   help="0: one more than the newest")
    p.add_argument("--width", type=int, default=64,
                   help="channels of the first block; doubled per level")
    p.add_argument("--levels", type=int, default=5)
    p.add_argument("--input_channels", type=int, default=1)
    p.add_argument("--class_names", default="cell,membrane")
    p.add_argument("--mean", type=float, default=0.0)
    p.add_argument("--std", type=float, default=1.0)
    p.add_argument("--retain_dim", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", help="a state_dict to load (default: "
                   "freshly initialised, untrained weights)")
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    channels = [args.width * 2 ** i for i in range(args.levels)]
    class_names = args.class_names.split(",")
    net = UNet(args.input_channels, len(class_names), channels,
               args.retain_dim)
    if args.weights:
        net.load_state_dict(torch.load(args.weights, map_location="cpu"))
    net.eval()
    scripted = torch.jit.script(net)

    model_dir = os.path.join(args.model_root, args.name)
    version = args.version or next_version(model_dir)
    final_dir = os.path.join(model_dir, str(version))
    if os.path.exists(final_dir):
        sys.exit(f"export_torchscript: {final_dir} already exists")
    staging = os.path.join(model_dir, f".staging-{version}-{os.getpid()}")
    os.makedirs(staging)
    try:
        scripted.save(os.path.join(staging, "model.pt"))
        config = {
            "format": "torchscript",
            "architecture": {
                "input_channels": args.input_channels,
                "num_classes": len(class_names),
                "channels": channels,
                "retain_dim": args.retain_dim,
            },
            "normalization": {"mean": [args.mean], "std": [args.std]},
            "class_names": class_names,
            "valid_input_sizes": valid_input_sizes(args.levels),
            "training": {"step": 0, "metrics": {}},
        }
        with open(os.path.join(staging, "model.json"), "w") as f:
            json.dump(config, f, indent=2)
            f.write("\n")
        os.rename(staging, final_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print(final_dir)


if __name__ == "__main__":
    main(sys.argv[1:])
