# egresswatch span-port sensor.
#
#   docker run -d --name egresswatch --network host \
#     --cap-drop ALL --cap-add NET_RAW --cap-add NET_ADMIN \
#     -v /etc/egresswatch:/etc/egresswatch:ro -v /var/lib/GeoIP:/var/lib/GeoIP:ro \
#     -v /var/log/egresswatch:/var/log/egresswatch egresswatch
#
# --network host: the container must see the span-port interface itself.
# NET_RAW opens the AF_PACKET capture socket; NET_ADMIN lets libpcap put the interface in
# promiscuous mode. The process runs as the unprivileged "egresswatch" user: the capabilities
# reach it through file capabilities on the interpreter (setcap below), not through root.
# Build stage: egresswatch's wheel with its C extension (the flow meter's scan), which needs a
# compiler the runtime image does not carry. The check fails the build if the extension was
# skipped (it is optional in pyproject.toml, so pip alone would fall back to pure Python).
FROM python:3.11-slim AS build
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY egresswatch ./egresswatch
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && ls /wheels/egresswatch-*-cp311-cp311-linux_*.whl

FROM python:3.11-slim

# Debian stable's libpcap is what pcapy-ng links against; pinning its exact version would break the
# build at every Debian point release, for no reproducibility we rely on.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpcap0.8 libcap2-bin \
    && rm -rf /var/lib/apt/lists/*

COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/egresswatch-*.whl && rm -rf /wheels

RUN setcap cap_net_raw,cap_net_admin+eip "$(readlink -f /usr/local/bin/python3.11)" \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin egresswatch \
    && mkdir -p /var/log/egresswatch && chown egresswatch /var/log/egresswatch

USER 10001
EXPOSE 9108
ENTRYPOINT ["egresswatch"]
CMD ["run", "-c", "/etc/egresswatch/egresswatch.yaml", "--events", "/var/log/egresswatch/events.jsonl"]
