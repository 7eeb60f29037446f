#!/usr/bin/python3
"""The server a user would write in an afternoon, to hold ours against.

A plain grpcio server (a thread pool of --workers) that answers Segment with
one PyTorch forward pass per request: PNG in, the image mirrored out to the
network's next valid size (as the C++ server pads it), normalised with the
version's model.json, arg max, the mask cropped and PNG-encoded. No batching,
no queue, no limits. It loads LibTorch-format versions (the shipped default)
into model/export_torchscript.py's U-Net, which has the same layer names.

benchmark/cpu_comparison.sh generates the gRPC stubs and runs it:

  PYTHONPATH=STUBS /usr/bin/python3 benchmark/python_baseline_server.py \\
      --port 50071 --version_dir model/repository/unet/3 --threads 2
"""

import argparse
import os
import sys
from concurrent import futures

import cv2
import grpc
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "model"))
from export_torchscript import load_version, valid_input_sizes  # noqa: E402

from segmentation.v1 import segmentation_pb2  # noqa: E402
from segmentation.v1 import segmentation_pb2_grpc  # noqa: E402


class Servicer(segmentation_pb2_grpc.SegmentationServicer):
    def __init__(self, net, config, version):
        self.net = net
        self.version = version
        levels = len(config["architecture"]["channels"])
        sizes = valid_input_sizes(levels)
        self.minimum, self.step = sizes["minimum"], sizes["step"]
        self.margin = (self.minimum - 4) // 2  # 92 for five levels
        norm = config.get("normalization", {})
        self.mean = norm.get("mean", [0.0])[0]
        self.std = norm.get("std", [1.0])[0]

    def padded_side(self, side):
        needed = side + 2 * self.margin
        if needed <= self.minimum:
            return self.minimum
        return self.minimum + -(-(needed - self.minimum) // self.step) \
            * self.step

    def Segment(self, request, context):
        image = cv2.imdecode(np.frombuffer(request.image.encoded, np.uint8),
                             cv2.IMREAD_UNCHANGED)
        if image is None or image.ndim != 2:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "not a grayscale image")
        h, w = image.shape
        m = self.margin
        padded = cv2.copyMakeBorder(image, m, self.padded_side(h) - h - m, m,
                                    self.padded_side(w) - w - m,
                                    cv2.BORDER_REFLECT_101)
        unit = 1.0 / (65535.0 if image.dtype == np.uint16 else 255.0)
        x = (padded.astype(np.float32) * unit - self.mean) / self.std
        with torch.inference_mode():
            logits = self.net(torch.from_numpy(x)[None, None])
            mask = logits.argmax(1)[0, :h, :w].to(torch.uint8).numpy()
        ok, png = cv2.imencode(".png", mask)
        response = segmentation_pb2.SegmentResponse(
            request_id=request.request_id, model="unet",
            model_version=self.version)
        response.mask.width = w
        response.mask.height = h
        response.mask.data = png.tobytes()
        return response


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--version_dir", required=True)
    p.add_argument("--workers", type=int, default=8,
                   help="grpcio thread pool")
    p.add_argument("--threads", type=int, default=2,
                   help="torch.set_num_threads")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    net, config = load_version(args.version_dir)
    version = int(os.path.basename(os.path.normpath(args.version_dir)))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers),
                         options=[("grpc.max_receive_message_length",
                                   64 << 20)])
    segmentation_pb2_grpc.add_SegmentationServicer_to_server(
        Servicer(net, config, version), server)
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"python baseline serving on 127.0.0.1:{args.port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
