"""HTTP faces beside the API: the notebooks proxy, and the node/alias data plane's metrics
(HAProxy serves nodes and aliases, see atoll.dataplane; access_log.py counts its requests).

No import of ``atoll.api`` here (see DESIGN.md): the gateway authorizes through the domain and
never depends on the control plane's HTTP layer.
"""

from atoll.gateway.proxy import NotebookProxy, Upstream

__all__ = ["NotebookProxy", "Upstream"]
