"""A process's settings: the concern groups it reads, composed (ApiSettings, IndexerSettings).

Each group reads its own variables, so a process reads only the groups it declares. `build(**variables)`
and `replace(**variables)` take the variables' own names in lower case (`redis_url=...`, as in `.env`),
routed to their groups: the one vocabulary operators, tests and benchmarks share.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self, cast

from pydantic import BaseModel, Field, ValidationError

from src.settings.groups import (
    AppSettings,
    BrokerSettings,
    CacheSettings,
    EngineSettings,
    Group,
    IndexSettings,
    PipelineSettings,
    RedisSettings,
    SourceSettings,
)


class ProcessSettings(BaseModel):
    """What every process reads: the process, the index and its engine, the caches, the broker, the source
    and the pipeline (the API reads the last two for the indexer's status)."""

    app: AppSettings = Field(default_factory=AppSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    source: SourceSettings = Field(default_factory=SourceSettings)
    indexer: PipelineSettings = Field(default_factory=PipelineSettings)

    @classmethod
    def groups(cls) -> dict[str, type[Group]]:
        """{name: group model} of this process."""
        return {name: cast(type[Group], field.annotation) for name, field in cls.model_fields.items()}

    @classmethod
    def variables(cls) -> dict[str, tuple[str, str]]:
        """{VARIABLE: (group, field)} for every variable this process reads."""
        return {
            variable: (name, field)
            for name, group in cls.groups().items()
            for variable, field in group.variables().items()
        }

    def value(self, variable: str) -> object:
        """The value of `variable` (its name in any case), read through its group."""
        group, field = self.variables()[variable.upper()]
        return getattr(getattr(self, group), field)

    @classmethod
    def build(cls, **variables: object) -> Self:
        """From `.env` and the environment, `variables` taking precedence (names in lower case)."""
        groups = cls.groups()
        return cls.model_validate(
            {name: groups[name].model_validate(values) for name, values in cls._routed(variables).items()}
        )

    def replace(self, **variables: object) -> Self:
        """A copy with `variables` changed, validated again (nothing else is read from the environment)."""
        changed = {}
        for name, values in self._routed(variables).items():
            group: Group = getattr(self, name)
            changed[name] = type(group).model_validate({**group.model_dump(), **values})
        return self.model_copy(update=changed)

    @classmethod
    def _routed(cls, variables: Mapping[str, object]) -> dict[str, dict[str, object]]:
        known = cls.variables()
        unknown = sorted(name for name in variables if name.upper() not in known)
        if unknown:
            raise TypeError(f"{cls.__name__} reads no variable named {', '.join(unknown)}")
        routed: dict[str, dict[str, object]] = {}
        for variable, value in variables.items():
            group, field = known[variable.upper()]
            routed.setdefault(group, {})[field] = value
        return routed


def settings_or_exit[P: ProcessSettings](model: type[P]) -> P:
    """`model`'s settings for a process entry point: invalid settings end the process with one line per
    problem, naming the variable, instead of a traceback (every group's problems at once)."""
    groups: dict[str, Group] = {}
    problems: list[str] = []
    for name, group in model.groups().items():
        try:
            groups[name] = group()
        except ValidationError as err:
            problems.extend(group.problems(err))
    if problems:
        raise SystemExit(f"invalid settings: {'; '.join(problems)}")
    return model.model_validate(groups)
