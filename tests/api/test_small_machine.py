"""A new project on a machine too small for DataSphere's default configuration (c1.4: 4 vCPU,
32 GB) defaults to the largest one that fits, so its first job and node run as written (issue 17,
item 8); on a machine where c1.4 fits, nothing changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atoll.app import create_app
from tests.api.conftest import admin_in_new_community, make_settings


def _defaults(database_url: str, tmp_path: Path, **pool: Any) -> dict[str, Any]:
    app = create_app(make_settings(tmp_path, database_url, **pool))
    try:
        c, com = admin_in_new_community(app, "small")
        plain = c.post("/api/v1/projects", json={"communityId": com, "name": "plain"}).json()
        chosen = c.post(
            "/api/v1/projects",
            json={"communityId": com, "name": "chosen", "settings": {"defaultConfiguration": "s1.1"}},
        ).json()
        r = c.patch(f"/api/v1/communities/{com}/restrictions", json={"allowedConfigurations": ["s1.1"]})
        assert r.status_code == 200, r.text
        limited = c.post("/api/v1/projects", json={"communityId": com, "name": "limited"}).json()
        return {
            "plain": plain["settings"]["defaultConfiguration"],
            "chosen": chosen["settings"]["defaultConfiguration"],
            "limited": limited["settings"]["defaultConfiguration"],
        }
    finally:
        app.state.db.dispose()


def test_a_small_machine_gets_a_default_that_fits(fresh_database_url: str, tmp_path: Path) -> None:
    found = _defaults(fresh_database_url, tmp_path, pool_cpus=2, pool_memory_gb=8)
    # The largest that fits; one the project asked for stays; the community's allow-list is kept.
    assert found == {"plain": "s1.2", "chosen": "s1.1", "limited": "s1.1"}


def test_a_machine_that_fits_c1_4_keeps_datasphere_s_default(fresh_database_url: str, tmp_path: Path) -> None:
    found = _defaults(fresh_database_url, tmp_path, pool_cpus=8, pool_memory_gb=64)
    assert found["plain"] is None and found["chosen"] == "s1.1"
