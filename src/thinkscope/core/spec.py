"""The base of every group of settings: each setting is declared once, as a typed field with
its default, bounds and help (``Field(description=...)``); commands compose specs, and the CLI
options (:func:`thinkscope.cli.options.spec_options`) and ``config.yaml`` come from them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError
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
            message = first["msg"].removeprefix("Value error, ")
            raise UserError(f"--{where}: {message}" if where else message) from err
