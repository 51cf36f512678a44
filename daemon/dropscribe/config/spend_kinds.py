"""Kinds of value for spending and where it is recorded: budgets, the zone their days and months are
counted in, the request rate (a number or ``auto``), and the PostgreSQL URL of a shared journal.
"""

from __future__ import annotations

import os
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dropscribe.config.kinds import ConvertContext, InvalidValueError, Number
from dropscribe.config.yamlsrc import Node, YamlMap, YamlScalar, shown
from dropscribe.core.budget import BudgetLimit, rules_scope

__all__ = ["BudgetKind", "PostgresUrlKind", "RateKind", "TimeZoneKind"]

_POSITIVE_HOURS = Number(minimum=0, exclusive_minimum=True)


class BudgetKind:
    """``{daily_audio_h, monthly_audio_h}``; in a rule file the limit is stamped with the file's folder."""

    PARTS = ("daily_audio_h", "monthly_audio_h")

    def describe(self) -> str:
        return "a mapping with daily_audio_h and/or monthly_audio_h (hours of audio, > 0)"

    def convert(self, node: Node, context: ConvertContext) -> object:
        if not isinstance(node, YamlMap) or not node.entries:
            raise InvalidValueError(f"must be {self.describe()}, got {shown(node)}")
        hours: dict[str, float] = {}
        for name, child in node.entries.items():
            if name not in self.PARTS:
                raise InvalidValueError(f"unknown key {name!r}; a budget has {', '.join(self.PARTS)}",
                                        node.key_lines[name])  # fmt: skip
            try:
                hours[name] = float(_POSITIVE_HOURS.convert(child, context))  # type: ignore[arg-type]
            except InvalidValueError as exc:
                raise InvalidValueError(f"{name} {exc.message}", exc.line or node.key_lines[name]) from exc
        scope = ""
        if context.confine_to is not None:
            folder = os.path.relpath(context.base_dir, context.confine_to)
            scope = rules_scope(str(context.confine_to), folder)
        daily, monthly = hours.get("daily_audio_h"), hours.get("monthly_audio_h")
        return BudgetLimit(daily_s=None if daily is None else daily * 3600,
                           monthly_s=None if monthly is None else monthly * 3600, scope=scope)  # fmt: skip


class TimeZoneKind:
    def describe(self) -> str:
        return "an IANA time zone name such as Europe/Berlin or UTC"

    def convert(self, node: Node, context: ConvertContext) -> object:
        if not isinstance(node, YamlScalar) or not isinstance(node.value, str) or not node.value:
            raise InvalidValueError(f"must be {self.describe()}, got {shown(node)}")
        try:
            ZoneInfo(node.value)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidValueError(f"must be {self.describe()}, got unknown zone {node.value!r}") from None
        return node.value


class PostgresUrlKind:
    """A postgresql:// URL; an error never shows it, since it may carry a password."""

    def describe(self) -> str:
        return "a postgresql:// URL (postgresql://user@host:5432/dbname)"

    def convert(self, node: Node, context: ConvertContext) -> object:
        text = node.value if isinstance(node, YamlScalar) else None
        if not isinstance(text, str) or re.fullmatch(r"postgres(ql)?://\S*", text) is None:
            raise InvalidValueError(
                f"must be {self.describe()}; the value is not shown, it may hold a password"
            )
        return text


class RateKind:
    """``requests_per_minute``: a whole number ≥ 1, or ``auto`` (found from the server's answers)."""

    def describe(self) -> str:
        return "a whole number ≥ 1 or auto"

    def convert(self, node: Node, context: ConvertContext) -> object:
        if isinstance(node, YamlScalar) and node.value == "auto":
            return "auto"
        try:
            return Number(minimum=1, whole=True).convert(node, context)
        except InvalidValueError:
            raise InvalidValueError(f"must be {self.describe()}, got {shown(node)}") from None
