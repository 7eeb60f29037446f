"""Errors of the segmentation client: one exception type per gRPC status code
a caller may want to handle, each carrying the code and the server's message."""

import grpc


class SegmentationError(Exception):
    """A request failed. `code` is the grpc.StatusCode, `details` the message."""

    code = grpc.StatusCode.UNKNOWN

    def __init__(self, details, code=None):
        super().__init__(details)
        self.details = details
        if code is not None:
            self.code = code

    def __str__(self):
        return f"{self.code.name}: {self.details}"


class InvalidArgumentError(SegmentationError):
    """The image or a request field is not acceptable."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(SegmentationError):
    """No such model or model version."""

    code = grpc.StatusCode.NOT_FOUND


class ResourceExhaustedError(SegmentationError):
    """The server is full or the image too large: retry later or smaller."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceededError(SegmentationError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class UnavailableError(SegmentationError):
    """The server cannot be reached, or is starting or draining."""

    code = grpc.StatusCode.UNAVAILABLE


class UnimplementedError(SegmentationError):
    code = grpc.StatusCode.UNIMPLEMENTED


class UnauthenticatedError(SegmentationError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDeniedError(SegmentationError):
    code = grpc.StatusCode.PERMISSION_DENIED


_BY_CODE = {
    cls.code: cls
    for cls in (
        InvalidArgumentError,
        NotFoundError,
        ResourceExhaustedError,
        DeadlineExceededError,
        UnavailableError,
        UnimplementedError,
        UnauthenticatedError,
        PermissionDeniedError,
    )
}


def from_rpc_error(error):
    """Returns the SegmentationError for a grpc.RpcError."""
    code = error.code()
    cls = _BY_CODE.get(code, SegmentationError)
    return cls(error.details() or "", code)
