"""Upper bounds on every input of the REST API (docs/api.md, "Limits").

An input past a bound is refused with 422 problem+json naming the field, before any handler
runs; the domain's own rules (name patterns, ranges such as `expiresInDays`) still apply after.
The bounds sit well above what any real request needs: they exist so that no request can store
megabytes in a name, make a list endpoint answer gigabytes, or reach the database with a number
its column cannot hold. The request body as a whole is bounded by ``atoll.api.body_limit``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from atoll.domain.tenancy import MAX_UNITS
from atoll.domain.validation import MAX_DESCRIPTION, MAX_LABELS
from atoll.jobspec.archive import MAX_FILE_BYTES

KIB = 1024
MIB = 1024 * KIB

# --- whole request bodies (atoll.api.body_limit) -------------------------------------------------
MAX_BODY_BYTES = 4 * MIB  # every JSON body and web form; the largest valid one is well under 1 MiB
MAX_TEST_REQUEST = 32 * MIB  # nodes/{node}:request carries a 16 MB body, JSON-escaped

# --- strings ---------------------------------------------------------------------------------------
MAX_ID = 64  # ids, and references that may be an id or a name
MAX_NAME = 63  # names of organizations, communities, projects, groups, nodes, aliases, secrets…
MAX_JOB_NAME = 128
MAX_TEXT = 4 * KIB  # job descriptions, paths, URLs, requirement lines, command-line arguments
# A job's config.yaml: DataSphere's are a few KB; this keeps a page of 100 jobs to a few MB.
MAX_CONFIG_CHARS = 64 * KIB
MAX_PASSWORD = 1 * KIB
MAX_SECRET_VALUE = 64 * KIB  # characters here; the domain also caps the UTF-8 bytes at 64 KiB
MAX_ENV_NAME = 128
MAX_ENV_VALUE = 64 * KIB
MAX_LABEL = 63

# --- counts ----------------------------------------------------------------------------------------
MAX_ITEMS = 100  # inputs, outputs, args, variables, aliases' nodes… (DataSphere: ≤100 per list)
MAX_MODULES = 1000  # a job's local Python modules: one entry per file or directory
MAX_REQUIREMENTS = 1000
MAX_ENV_VARS = 256
MAX_COMMAND_ARGS = 256
MAX_HEADERS = 64

# --- query parameters -----------------------------------------------------------------------------
MAX_LOG_OFFSET = 1 << 40  # a byte offset into one log stream: 1 TiB (DataSphere caps a job log at 100 MB)
MAX_LOG_CHUNK = 8 * MIB
MAX_PAGE_TOKEN = 1024

# --- numbers ---------------------------------------------------------------------------------------
MAX_COUNT = 2**31 - 1  # fits every integer column (32-bit INTEGER on PostgreSQL)
MAX_AMOUNT = 1e12  # prices, cores, gigabytes

Id = Annotated[str, StringConstraints(max_length=MAX_ID)]
Name = Annotated[str, StringConstraints(max_length=MAX_NAME)]
JobName = Annotated[str, StringConstraints(max_length=MAX_JOB_NAME)]
Description = Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
Short = Annotated[str, StringConstraints(max_length=32)]  # roles, modes, configuration names…
Username = Annotated[str, StringConstraints(max_length=254)]  # a user id, username or e-mail
Password = Annotated[str, StringConstraints(max_length=MAX_PASSWORD)]
EnvName = Annotated[str, StringConstraints(max_length=MAX_ENV_NAME)]
EnvValue = Annotated[str, StringConstraints(max_length=MAX_ENV_VALUE)]
EnvVars = Annotated[dict[EnvName, EnvValue], Field(max_length=MAX_ENV_VARS)]
LabelKey = Annotated[str, StringConstraints(max_length=MAX_LABEL)]
# Values stay `Any` so the domain says what a label value must look like (check_labels).
Labels = Annotated[dict[LabelKey, Any], Field(max_length=MAX_LABELS)]

# Numbers are bounded both ways so that none overflows a column or a date; which values are valid
# (positive, 1-90 days, a whole percentage…) the domain says, with its own message.
Count = Annotated[int, Field(ge=-MAX_COUNT, le=MAX_COUNT)]
Days = Annotated[int, Field(ge=-36500, le=36500)]  # the domain narrows each (tokens ≤3650, invites ≤90)
Units = Annotated[int, Field(ge=-MAX_UNITS, le=MAX_UNITS)]  # project limits
Amount = Annotated[float, Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT)]
Seconds = Annotated[float, Field(ge=-86400, le=86400)]
Port = Annotated[int, Field(ge=1, le=65535)]
FileSize = Annotated[int, Field(ge=0, le=MAX_FILE_BYTES)]
