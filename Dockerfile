# The segmentation server, its CLI and its trainer, on Debian 12.
#
#   docker build -t unet-segmentation .
#   docker run -p 50051:50051 -p 9090:9090 unet-segmentation
#
# A CUDA image comes from the same file (see docs/deployment.md): BUILD_BASE
# a Debian 12 image with the CUDA toolkit, LIBTORCH a CUDA LibTorch
# distribution unpacked inside the build context; the runtime stays
# debian:12 because that LibTorch carries its CUDA libraries and the NVIDIA
# container runtime adds the driver.
ARG BUILD_BASE=debian:12
ARG RUNTIME_BASE=debian:12

FROM ${BUILD_BASE} AS build
# Empty: Debian's LibTorch 1.13 (CPU). Else a directory of the build
# context holding an unpacked LibTorch, e.g. third_party/libtorch.
ARG LIBTORCH=
WORKDIR /src
COPY scripts/install_deps.sh scripts/
RUN UNET_DEBIAN_TORCH=$([ -z "$LIBTORCH" ] && echo 1 || echo 0) \
      scripts/install_deps.sh build \
    && rm -rf /var/lib/apt/lists/*
COPY . .
RUN scripts/configure_release.sh /build "${LIBTORCH:+/src/$LIBTORCH}" \
      -DUNET_BUILD_TESTS=OFF \
    && cmake --build /build --target segmentation_server segment unet_train \
    && mkdir -p /stage/bin /stage/lib \
    && cp /build/bin/segmentation_server /build/bin/segment \
          /build/bin/unet_train /stage/bin/ \
    && strip --strip-unneeded /stage/bin/* \
    && if [ -n "$LIBTORCH" ]; then cp -a "$LIBTORCH"/lib/*.so* /stage/lib/; fi

FROM ${RUNTIME_BASE}
ARG LIBTORCH=
COPY scripts/install_deps.sh /tmp/
RUN UNET_DEBIAN_TORCH=$([ -z "$LIBTORCH" ] && echo 1 || echo 0) \
      /tmp/install_deps.sh runtime \
    && rm -rf /var/lib/apt/lists/* /tmp/install_deps.sh \
    && useradd --system --uid 10001 --home-dir /nonexistent \
         --shell /usr/sbin/nologin unet
COPY --from=build /stage/ /opt/unet/
# The shipped model; a volume mounted at /models replaces it (a new named
# volume starts as a copy of it).
COPY --chown=unet:unet model/repository/ /models/
ENV PATH=/opt/unet/bin:$PATH LD_LIBRARY_PATH=/opt/unet/lib
USER 10001:10001
VOLUME /models
# gRPC, then HTTP /metrics, /healthz and /readyz.
EXPOSE 50051 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9090/readyz"]
# Exec form: SIGTERM reaches the server, which drains accepted requests
# (--drain_timeout_s, 30 s) and exits 0; give `docker stop` more than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/unet/bin/segmentation_server", "--model_root=/models"]
