"""Python client of the U-Net segmentation service.

    from segmentation_client import Client
    with Client("localhost:50051") as client:
        result = client.segment(numpy_array_or_path)
        result.mask  # uint8 class index per pixel, the input's height x width

The gRPC stubs are generated from proto/ at build time into build/python:
put that and client/python on PYTHONPATH (README, "Python client").
"""

from segmentation_client.client import (
    Client,
    ModelInfo,
    ModelStatus,
    SegmentResult,
    VersionStatus,
)
from segmentation_client.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    SegmentationError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)

__all__ = [
    "Client",
    "DeadlineExceededError",
    "InvalidArgumentError",
    "ModelInfo",
    "ModelStatus",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "SegmentResult",
    "SegmentationError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "VersionStatus",
]
