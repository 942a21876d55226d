"""A job's lifecycle on the server: made, prepared, run, finished (spec §5). The ``config.yaml``
schema it runs is ``atoll.jobspec``, shared with the client."""
