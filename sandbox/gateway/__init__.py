"""Stand-in entry gateway: an APISIX Admin API subset, a weighted proxy and Prometheus metrics.

Run it as ``python -m sandbox.gateway --admin-port 0 --proxy-port 0`` (prints one JSON line with
the admin, proxy and metrics URLs when ready), or in-process with
``sandbox.gateway.testing.run_gateway()``. ``sandbox.gateway.load`` sends bounded user traffic
through it.
"""
