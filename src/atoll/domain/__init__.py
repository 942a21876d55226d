"""Domain rules: tenancy, access, catalogue, billing. Knows nothing of HTTP or processes."""
