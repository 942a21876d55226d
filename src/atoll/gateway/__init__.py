"""The data plane: reverse proxies in front of notebook servers and node instances.

No import of ``atoll.api`` here (see DESIGN.md): the gateway reads routes from the store and
never depends on the control plane's HTTP layer.
"""

from atoll.gateway.proxy import NotebookProxy, Upstream

__all__ = ["NotebookProxy", "Upstream"]
