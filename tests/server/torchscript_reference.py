#!/usr/bin/python3
"""Runs a TorchScript model version in PyTorch, as the reference the server
must match: reads a float32 image (HEIGHT x WIDTH, one channel, raw
row-major), writes the soft-max probabilities (classes x H' x W', float32)
of the model's output, unchanged in size.

  torchscript_reference.py MODEL_PT IMAGE_F32 HEIGHT WIDTH OUT_F32
"""

import sys

import numpy as np
import torch


def main(model_pt, image_path, height, width, out_path):
    model = torch.jit.load(model_pt, map_location="cpu").eval()
    image = np.fromfile(image_path, dtype=np.float32).reshape(
        1, 1, int(height), int(width))
    with torch.no_grad():
        logits = model(torch.from_numpy(image))
    probabilities = torch.softmax(logits, dim=1)[0].numpy()
    probabilities.astype(np.float32).tofile(out_path)


if __name__ == "__main__":
    main(*sys.argv[1:])
