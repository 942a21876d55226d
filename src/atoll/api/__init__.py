"""REST API /api/v1: one router per resource, problem+json errors, cursor pagination."""

API_PREFIX = "/api/v1"
