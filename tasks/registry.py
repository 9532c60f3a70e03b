"""The registry of task types: one decorator makes a function schedulable.

    @task_type("collect.http_get", queue="collect", title="HTTP GET",
               params=[Param("url", "url", required=True)])
    def http_get(run, url): ...

The declared parameters generate the job form's fields and are validated on the server.
"""

from __future__ import annotations

import importlib
import math
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

QUEUES = ("collect", "report", "etl", "system")
MODULES = ("tasks.collect_tasks", "tasks.report_tasks", "tasks.etl_tasks", "tasks.system_tasks")
PARAM_TYPES = ("str", "text", "url", "int", "float", "bool", "choice")
MAX_PARAMS_BYTES = 16 * 1024

_REGISTRY: dict[str, TaskType] = {}


class ParamErrors(ValueError):
    """Parameters that do not fit the task type, by parameter name."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Param:
    """A declared parameter of a task type."""

    name: str
    type: str = "str"
    label: str = ""
    required: bool = False
    default: Any = None
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    max_length: int = 2000

    def __post_init__(self):
        if self.type not in PARAM_TYPES:
            raise ValueError(f"unknown parameter type {self.type!r}")
        if not self.label:
            object.__setattr__(self, "label", self.name.replace("_", " ").capitalize())

    def parse(self, raw: Any) -> Any:
        """Return the raw form or JSON value converted to this parameter's type."""
        if raw is None or (isinstance(raw, str) and raw.strip() == ""):
            if self.type == "bool":
                return False
            if self.required:
                raise ValueError("This field is required.")
            return self.default
        if self.type == "bool":
            if isinstance(raw, bool):
                return raw
            return str(raw).strip().lower() in {"1", "true", "on", "yes", "y"}
        if self.type in ("int", "float"):
            return self._number(raw)
        text = str(raw).strip() if self.type != "text" else str(raw)
        if len(text) > self.max_length:
            raise ValueError(f"At most {self.max_length} characters.")
        if self.type == "url" and not text.lower().startswith(("http://", "https://")):
            raise ValueError("Give an http:// or https:// address.")
        if self.type == "choice" and text not in self.choices:
            raise ValueError(f"Choose one of: {', '.join(self.choices)}.")
        return text

    def _number(self, raw: Any) -> int | float:
        """Return raw as a number within the declared bounds."""
        kind = int if self.type == "int" else float
        if isinstance(raw, bool):
            raise ValueError("Give a number.")
        try:
            value = kind(raw) if not isinstance(raw, str) else kind(raw.strip())
        except (TypeError, ValueError, OverflowError):
            raise ValueError("Give a whole number." if kind is int else "Give a number.") from None
        if not math.isfinite(value):
            raise ValueError("Give a number.")
        if isinstance(raw, float) and kind is int and raw != int(raw):
            raise ValueError("Give a whole number.")
        if self.min is not None and value < self.min:
            raise ValueError(f"At least {self.min:g}.")
        if self.max is not None and value > self.max:
            raise ValueError(f"At most {self.max:g}.")
        return value


@dataclass(frozen=True)
class TaskType:
    """A function that jobs can schedule, with its queue and declared parameters."""

    name: str
    func: Callable[..., Any]
    queue: str
    title: str
    description: str = ""
    params: tuple[Param, ...] = ()
    # Execution limits; a job may override them (used by the Celery workers).
    options: dict[str, Any] = field(default_factory=dict)

    def validate_params(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Return the parameters parsed and checked, or raise ParamErrors."""
        known = {p.name for p in self.params}
        errors = {k: "Unknown parameter." for k in raw if k not in known}
        values: dict[str, Any] = {}
        for param in self.params:
            try:
                values[param.name] = param.parse(raw.get(param.name))
            except ValueError as exc:
                errors[param.name] = str(exc)
        if not errors and len(json.dumps(values)) > MAX_PARAMS_BYTES:
            errors["params"] = f"The parameters are larger than {MAX_PARAMS_BYTES // 1024} KiB."
        if errors:
            raise ParamErrors(errors)
        return values


def task_type(
    name: str,
    *,
    queue: str,
    title: str,
    params: list[Param] | tuple[Param, ...] = (),
    **options: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as a schedulable task type."""
    if queue not in QUEUES:
        raise ValueError(f"queue must be one of {QUEUES}, not {queue!r}")

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        doc = (func.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = TaskType(
            name=name,
            func=func,
            queue=queue,
            title=title,
            description=doc[0] if doc else "",
            params=tuple(params),
            options=options,
        )
        return func

    return register


_loaded = False


def load() -> dict[str, TaskType]:
    """Import the task modules once, so their decorators fill the registry."""
    global _loaded
    if not _loaded:
        for module in MODULES:
            importlib.import_module(module)
        _loaded = True
    return _REGISTRY


def get(name: str) -> TaskType | None:
    """Return the task type of that name, or None."""
    return load().get(name)


def all_types() -> list[TaskType]:
    """Return every task type, sorted by queue then name."""
    return sorted(load().values(), key=lambda t: (QUEUES.index(t.queue), t.name))
