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
FROM python:3.11-slim

# Debian stable's libpcap is what pcapy-ng links against; pinning its exact version would break the
# build at every Debian point release, for no reproducibility we rely on.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpcap0.8 libcap2-bin \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/egresswatch
COPY pyproject.toml README.md ./
COPY egresswatch ./egresswatch
RUN pip install --no-cache-dir .

RUN setcap cap_net_raw,cap_net_admin+eip "$(readlink -f /usr/local/bin/python3.11)" \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin egresswatch \
    && mkdir -p /var/log/egresswatch && chown egresswatch /var/log/egresswatch

USER 10001
EXPOSE 9108
ENTRYPOINT ["egresswatch"]
CMD ["run", "-c", "/etc/egresswatch/egresswatch.yaml", "--events", "/var/log/egresswatch/events.jsonl"]
