"""Passive naming of flow destinations from payload bytes.

Pure parsers and small bounded helpers: DNS answers (``dns``), TLS ClientHello SNI (``tls``),
QUIC Initial SNI (``quic``), HTTP Host and RTSP URL host (``http``). Nothing here does I/O or
reads the clock; time comes in from packet timestamps. Every parser returns None (or a give-up
sentinel) on garbage instead of raising, because its input is whatever crossed the span port.
"""
