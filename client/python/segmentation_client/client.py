"""The client: one channel to a segmentation server, thread-safe."""

import collections
import dataclasses
import os
import typing

import grpc
import numpy as np

from segmentation.v1 import segmentation_pb2 as pb
from segmentation.v1 import segmentation_pb2_grpc as pb_grpc
from segmentation_client import errors

_PIXEL_TYPES = {
    np.dtype(np.uint8): pb.PIXEL_TYPE_UINT8,
    np.dtype(np.uint16): pb.PIXEL_TYPE_UINT16,
    np.dtype(np.float32): pb.PIXEL_TYPE_FLOAT32,
}


@dataclasses.dataclass
class SegmentResult:
    mask: np.ndarray  # uint8, height x width: one class index per pixel
    probabilities: typing.Optional[np.ndarray]  # float32, classes x h x w
    model: str
    model_version: int
    timing: dict  # queue_us, preprocess_us, inference_us, ..., batch_size
    request_id: str = ""


@dataclasses.dataclass
class VersionStatus:
    version: int
    state: str  # LOADING, AVAILABLE, FAILED or UNLOADED
    message: str = ""


@dataclasses.dataclass
class ModelStatus:
    name: str
    is_default: bool
    versions: typing.List[VersionStatus]


@dataclasses.dataclass
class ModelInfo:
    name: str
    version: int
    format: str
    input_channels: int
    num_classes: int
    class_names: typing.List[str]
    context_margin: int
    device: str
    training_metrics: typing.Dict[str, float]
    versions: typing.List[VersionStatus]


def _versions(statuses):
    return [
        VersionStatus(
            v.version, pb.VersionStatus.State.Name(v.state), v.message
        )
        for v in statuses
    ]


def _image(image):
    """Returns the request's Image for a path, encoded bytes or an array."""
    if isinstance(image, (str, os.PathLike)):
        with open(image, "rb") as file:
            return pb.Image(encoded=file.read())
    if isinstance(image, (bytes, bytearray)):
        return pb.Image(encoded=bytes(image))
    array = np.asarray(image)
    pixel_type = _PIXEL_TYPES.get(array.dtype.newbyteorder("="))
    if pixel_type is None:
        raise errors.InvalidArgumentError(
            f"arrays of {array.dtype} cannot be sent: use uint8, uint16 or "
            "float32"
        )
    if array.ndim not in (2, 3):
        raise errors.InvalidArgumentError(
            f"an image is height x width [x channels], not {array.shape}"
        )
    height, width = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return pb.Image(
        raw=pb.RawImage(
            width=width,
            height=height,
            channels=channels,
            pixel_type=pixel_type,
            data=data.tobytes(),
        )
    )


class Client:
    """Segments images with a segmentation server.

    address: "host:port". tls: False, True (the system's root certificates)
    or a grpc.ChannelCredentials (e.g. grpc.ssl_channel_credentials(ca, key,
    cert) for mutual TLS). token: sent as "authorization: Bearer <token>".
    timeout: seconds each call may take (its deadline).
    """

    def __init__(self, address, *, tls=False, token=None, timeout=60.0):
        options = [
            ("grpc.max_receive_message_length", -1),  # masks of large images
            ("grpc.max_send_message_length", -1),
        ]
        if tls:
            credentials = (
                tls
                if isinstance(tls, grpc.ChannelCredentials)
                else grpc.ssl_channel_credentials()
            )
            self._channel = grpc.secure_channel(address, credentials, options)
        else:
            self._channel = grpc.insecure_channel(address, options)
        self._stub = pb_grpc.SegmentationStub(self._channel)
        self._metadata = (
            (("authorization", f"Bearer {token}"),) if token else None
        )
        self._timeout = timeout

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _request(
        self,
        image,
        *,
        model="",
        version=0,
        probabilities=False,
        tile=False,
        tta=False,
        urgent=False,
        request_id="",
    ):
        return pb.SegmentRequest(
            request_id=request_id,
            model=model,
            model_version=version,
            image=_image(image),
            resize_mode=pb.SegmentRequest.OVERLAP_TILE
            if tile
            else pb.SegmentRequest.RETAIN_DIM,
            mask_encoding=pb.RAW,
            include_probabilities=probabilities,
            priority=pb.SegmentRequest.URGENT
            if urgent
            else pb.SegmentRequest.ROUTINE,
            test_time_augmentation=tta,
        )

    @staticmethod
    def _result(response):
        mask = response.mask
        result = SegmentResult(
            mask=np.frombuffer(mask.data, np.uint8).reshape(
                mask.height, mask.width
            ),
            probabilities=None,
            model=response.model,
            model_version=response.model_version,
            timing={
                field.name: getattr(response.timing, field.name)
                for field in response.timing.DESCRIPTOR.fields
            },
            request_id=response.request_id,
        )
        p = response.probabilities
        if p.num_classes:
            result.probabilities = np.frombuffer(p.data, "<f4").reshape(
                p.num_classes, p.height, p.width
            )
        return result

    def segment(self, image, **options):
        """Segments one image and returns its SegmentResult.

        image: a file path, encoded bytes (PNG, TIFF, ...) or a numpy array
        (height x width [x channels]; uint8, uint16 or float32). options:
        model, version, probabilities, tile, tta, urgent, request_id.
        Raises a SegmentationError subclass carrying the gRPC code.
        """
        request = self._request(image, **options)
        try:
            response = self._stub.Segment(
                request, timeout=self._timeout, metadata=self._metadata
            )
        except grpc.RpcError as error:
            raise errors.from_rpc_error(error) from None
        return self._result(response)

    def segment_many(
        self, images, *, max_in_flight=8, return_exceptions=False, **options
    ):
        """Segments images with up to `max_in_flight` requests at once, so
        that the server can batch them; yields SegmentResults in order.

        With return_exceptions, a failed image yields its SegmentationError
        instead of raising it (the others go on).
        """
        in_flight = collections.deque()

        def finish(future):
            try:
                return self._result(future.result())
            except grpc.RpcError as error:
                failure = errors.from_rpc_error(error)
            if return_exceptions:
                return failure
            raise failure

        for image in images:
            try:
                request = self._request(image, **options)
            except (errors.SegmentationError, OSError) as failure:
                if not return_exceptions:
                    raise
                in_flight.append(failure)
            else:
                in_flight.append(
                    self._stub.Segment.future(
                        request, timeout=self._timeout, metadata=self._metadata
                    )
                )
            while len(in_flight) >= max_in_flight:
                yield self._take(in_flight, finish)
        while in_flight:
            yield self._take(in_flight, finish)

    @staticmethod
    def _take(in_flight, finish):
        head = in_flight.popleft()
        return head if isinstance(head, Exception) else finish(head)

    def models(self):
        """Returns every model the server knows as ModelStatus entries."""
        try:
            response = self._stub.ListModels(
                pb.ListModelsRequest(),
                timeout=self._timeout,
                metadata=self._metadata,
            )
        except grpc.RpcError as error:
            raise errors.from_rpc_error(error) from None
        return [
            ModelStatus(m.name, m.is_default, _versions(m.versions))
            for m in response.models
        ]

    def info(self, model="", version=0):
        """Describes a model version (default: the server's default model,
        newest ready version)."""
        try:
            info = self._stub.GetModelInfo(
                pb.GetModelInfoRequest(model=model, model_version=version),
                timeout=self._timeout,
                metadata=self._metadata,
            )
        except grpc.RpcError as error:
            raise errors.from_rpc_error(error) from None
        return ModelInfo(
            name=info.name,
            version=info.version,
            format=info.format,
            input_channels=info.input_channels,
            num_classes=info.num_classes,
            class_names=list(info.class_names),
            context_margin=info.context_margin,
            device=info.device,
            training_metrics=dict(info.training_metrics),
            versions=_versions(info.versions),
        )
