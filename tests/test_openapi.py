"""The OpenAPI schema documents each metrics formula and shows an example per endpoint."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from perf_metrics.app import create_app
from perf_metrics.metrics.examples import EXAMPLES
from perf_metrics.settings import Settings
from tests.conftest import RESPONSE_SCHEMAS


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[type[BaseModel]]:
    if model in seen:
        return seen
    seen.add(model)
    for field in model.model_fields.values():
        for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
            for inner in (arg, *getattr(arg, "__args__", ())):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    _models(inner, seen)
    return seen


@pytest.mark.parametrize("endpoint", RESPONSE_SCHEMAS)
def test_every_field_has_a_description(endpoint: str) -> None:
    undocumented = [
        f"{model.__name__}.{name}"
        for model in _models(RESPONSE_SCHEMAS[endpoint], set())
        for name, field in model.model_fields.items()
        if not field.description
        and not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel))
    ]
    assert undocumented == []


@pytest.mark.parametrize("endpoint", RESPONSE_SCHEMAS)
def test_each_endpoint_shows_the_published_example(endpoint: str) -> None:
    RESPONSE_SCHEMAS[endpoint].model_validate(EXAMPLES[endpoint])  # the published shape is ours
    schema = create_app(Settings()).openapi()
    ok = schema["paths"][f"/v1/metrics/{endpoint}"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["example"] == EXAMPLES[endpoint]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith(
        RESPONSE_SCHEMAS[endpoint].__name__
    )
