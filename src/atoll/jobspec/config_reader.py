"""The primitives the config.yaml parser reads with: typed values, lists and maps, each error
an ``Invalid`` naming the field, and warnings for keys DataSphere ignores."""

from __future__ import annotations

import difflib
from typing import Any

from atoll.errors import Invalid

# Spellings the DataSphere docs use in prose but the parser does not read.
_KNOWN_MISSPELLINGS = {"description": "desc", "root-path": "root-paths", "local-path": "local-paths"}


class Reader:
    """Collects warnings; every method raises ``Invalid`` naming the field."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    @staticmethod
    def _absent(value: Any) -> bool:
        # `inputs:` with nothing after it is '' under BaseLoader: the same as leaving the key out.
        return value is None or value == ""

    def _str(self, value: Any, field: str, *, empty_ok: bool = False) -> str:
        if not isinstance(value, str):
            raise Invalid(f"{field} must be a string", field=field)
        if not empty_ok and not value.strip():
            raise Invalid(f"{field} must not be empty", field=field)
        return value

    def _list(self, value: Any, field: str) -> list[Any]:
        if self._absent(value):
            return []
        if not isinstance(value, list):
            raise Invalid(f"{field} must be a list", field=field)
        return value

    def _map(self, value: Any, field: str) -> dict[str, Any]:
        if self._absent(value):
            return {}
        if not isinstance(value, dict):
            raise Invalid(f"{field} must be a map", field=field)
        return value

    def _str_list(self, value: Any, field: str) -> tuple[str, ...]:
        return tuple(self._str(v, f"{field}[{i}]") for i, v in enumerate(self._list(value, field)))

    def _str_map(self, value: Any, field: str) -> dict[str, str]:
        return {k: self._str(v, f"{field}.{k}", empty_ok=True) for k, v in self._map(value, field).items()}

    def _unknown_keys(self, data: dict[str, Any], known: tuple[str, ...], where: str | None) -> None:
        for key in data:
            if key in known:
                continue
            name = f"{where}.{key}" if where else key
            hint = _KNOWN_MISSPELLINGS.get(key) or next(iter(difflib.get_close_matches(key, known, 1)), None)
            suffix = f"; did you mean {hint}?" if hint else ""
            self.warnings.append(f"{name}: unknown key, ignored{suffix}")

    def _optional_str(self, value: Any, field: str) -> str | None:
        if self._absent(value):
            return None
        return self._str(value, field)
