"""The base of every group of settings: each setting is declared once, as a typed field with
its default, bounds and help (``Field(description=...)``); commands compose specs, and the CLI
options (:func:`thinkscope.cli.options.spec_options`) and ``config.yaml`` come from them."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.fields import FieldInfo
from typing_extensions import Self

from thinkscope.core.errors import UserError


class Spec(BaseModel):
    """Settings whose fields are a command's options (``dtr_column`` is ``--dtr-column``)."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def parse(cls, **values) -> Self:
        """Validate, turning the first problem into a one-line :class:`UserError`."""
        try:
            return cls(**values)
        except ValidationError as err:
            first = err.errors()[0]
            where = "-".join(map(str, first["loc"])).replace("_", "-")
            info = cls.model_fields.get(str(first["loc"][0])) if first["loc"] else None
            flag = ((info and info.json_schema_extra) or {}).get("flag", f"--{where}")
            message = first["msg"].removeprefix("Value error, ")
            raise UserError(f"{flag}: {message}" if where else message) from err


def with_default(spec: type[Spec], name: str, default: Any) -> FieldInfo:
    """The field ``name`` of ``spec`` with another default, its bounds and help kept: how a
    config that composes ``spec`` gives one setting its own default (``n: int =
    with_default(SamplingSpec, "n", 8)``) without declaring it again."""
    field = copy.copy(spec.model_fields[name])
    field.default = default
    return field
