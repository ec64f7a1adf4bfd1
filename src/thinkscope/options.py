"""The base of every command's pydantic config: a bad value becomes a one-line user error."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError
from typing_extensions import Self

from thinkscope.errors import UserError


class CommandConfig(BaseModel):
    """A config whose fields are a command's options (``dtr_column`` is ``--dtr-column``)."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def parse(cls, **values) -> Self:
        """Validate, turning the first problem into a one-line :class:`UserError`."""
        try:
            return cls(**values)
        except ValidationError as err:
            first = err.errors()[0]
            where = "-".join(map(str, first["loc"])).replace("_", "-")
            message = first["msg"].removeprefix("Value error, ")
            raise UserError(f"--{where}: {message}" if where else message) from err
