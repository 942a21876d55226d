"""The node/alias data plane: HAProxy, driven by Atoll and outliving it.

plan.py      what HAProxy serves (nodes, slots, aliases, token and grant maps) and its files
proxy.py     start or adopt the keeper; apply a plan live (runtime API) or by a reload
admin.py     HAProxy's runtime API over its admin socket
keeper.py    the process that keeps HAProxy running, in a session of its own
atoll.lua    per-request logic inside HAProxy: weighted node choice, holding for a first
             instance, Atoll's credentials taken off requests and responses

It knows nothing of projects' rules: the control plane (controllers/dataplane.py) computes the
plan from the store and the access module.
"""
