"""The deterministic test-capture generator behind ``pcaps/generate.py``.

Scenarios describe what happens on the wire; the frames are built with dpkt and every frame is
recorded together with what the generator meant by it (addresses, ports, IP-layer bytes, names).
The ground truth is computed from that record and ``config/demo.yaml``, never by running
egresswatch, so it is an independent reference for the pipeline.
"""
