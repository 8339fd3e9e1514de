"""/v1/webhook-endpoints, /v1/webhook-deliveries and /v1/alerts over HTTP: secret keys only,
one account never sees another's, limits, and what each route answers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook

from perf_metrics.settings import Settings
from tests.alerts.helpers import Tenant, add_endpoint, tenant
from tests.conftest import Admin, assert_envelope, bearer
from tests.receiver import Answer, running_receiver

ENDPOINT_ROUTES = [
    ("post", "/v1/webhook-endpoints", {"url": "http://127.0.0.1:9/x"}),
    ("get", "/v1/webhook-endpoints", None),
    ("get", "/v1/webhook-endpoints/{we}", None),
    ("patch", "/v1/webhook-endpoints/{we}", {"description": "x"}),
    ("delete", "/v1/webhook-endpoints/{we}", None),
    ("post", "/v1/webhook-endpoints/{we}/rotate-secret", None),
    ("post", "/v1/webhook-endpoints/{we}/test", None),
    ("get", "/v1/webhook-endpoints/{we}/deliveries", None),
    ("post", "/v1/webhook-deliveries/{whd}/redeliver", None),
    ("post", "/v1/alerts", {"name": "a", "type": "failure_rate", "params": {"threshold": 0.1}}),
    ("get", "/v1/alerts", None),
    ("get", "/v1/alerts/{al}", None),
    ("patch", "/v1/alerts/{al}", {"name": "b"}),
    ("delete", "/v1/alerts/{al}", None),
    ("post", "/v1/alerts/{al}/preview", None),
    ("get", "/v1/alerts/{al}/events", None),
]


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhooks_allow_loopback": True})


async def _call(
    client: httpx.AsyncClient, method: str, path: str, key: str, body: Any, ids: dict[str, str]
) -> httpx.Response:
    return await client.request(
        method, path.format(**ids), headers=bearer(key), json=body if body is not None else None
    )


async def _things(client: httpx.AsyncClient, who: Tenant, url: str) -> dict[str, str]:
    """An endpoint, an alert and a delivery of `who` (a test send)."""
    we = (await add_endpoint(client, who, url))["id"]
    al = (
        await client.post(
            "/v1/alerts",
            headers=who.headers,
            json={"name": "r", "type": "month_to_date_cost", "params": {"budget_usd": 10}},
        )
    ).json()["id"]
    test = await client.post(f"/v1/webhook-endpoints/{we}/test", headers=who.headers)
    assert test.status_code == 200, test.text
    return {"we": we, "al": al, "whd": test.json()["delivery_id"]}


async def test_customer_and_ingest_keys_get_403_on_every_new_route(
    client: httpx.AsyncClient, admin_ops: Admin
) -> None:
    who = await tenant(admin_ops)
    ingest = (await admin_ops.key())["key"]
    with running_receiver() as receiver:
        ids = await _things(client, who, receiver.url)
    for method, path, body in ENDPOINT_ROUTES:
        for key in (who.public, ingest):
            response = await _call(client, method, path, key, body, ids)
            error = assert_envelope(response, 403, "insufficient_scope")
            assert "secret key" in error["message"]


async def test_a_secret_key_reads_metrics_as_a_customer_key_does(
    client: httpx.AsyncClient, admin_ops: Admin
) -> None:
    who = await tenant(admin_ops)
    for key in (who.secret, who.public):
        response = await client.get("/v1/metrics/overview", headers=bearer(key))
        assert response.status_code == 200, response.text
        account = await client.get("/v1/account", headers=bearer(key))
        assert account.json()["account_id"] == who.account_id


async def test_one_account_never_sees_or_triggers_anothers(
    client: httpx.AsyncClient, admin_ops: Admin
) -> None:
    mine, theirs = await tenant(admin_ops), await tenant(admin_ops)
    test_env = await tenant(admin_ops, environment="test")
    with running_receiver() as receiver:
        ids = await _things(client, theirs, receiver.url)
        sent = len(receiver.received)
        for intruder in (mine, test_env):
            for method, path, body in ENDPOINT_ROUTES:
                if "{" not in path:
                    continue
                response = await _call(client, method, path, intruder.secret, body, ids)
                assert_envelope(response, 404, "not_found")
            listed = await client.get("/v1/webhook-endpoints", headers=intruder.headers)
            assert listed.json() == {"data": []}
            assert (await client.get("/v1/alerts", headers=intruder.headers)).json() == {"data": []}
            # nor name another's endpoint for its own alert
            response = await client.post(
                "/v1/alerts",
                headers=intruder.headers,
                json={
                    "name": "x",
                    "type": "failure_rate",
                    "params": {"threshold": 0.5},
                    "endpoint_ids": [ids["we"]],
                },
            )
            assert_envelope(response, 400, "invalid_parameter", "endpoint_ids")
        assert len(receiver.received) == sent  # nothing was sent for the intruders
    # and the owner still has all of it
    assert (await client.get(f"/v1/webhook-endpoints/{ids['we']}", headers=theirs.headers)).json()[
        "id"
    ] == ids["we"]


async def test_endpoint_lifecycle(client: httpx.AsyncClient, admin_ops: Admin) -> None:
    who = await tenant(admin_ops)
    with running_receiver() as receiver:
        created = await add_endpoint(
            client, who, f"{receiver.url}/in", description="ops", event_types=["alert.firing"]
        )
        assert created["id"].startswith("we_") and created["secret"].startswith("whsec_")
        assert created["event_types"] == ["alert.firing"] and created["enabled"] is True
        got = (
            await client.get(f"/v1/webhook-endpoints/{created['id']}", headers=who.headers)
        ).json()
        assert "secret" not in got  # shown once
        assert got == {k: v for k, v in created.items() if k != "secret"}
        patched = await client.patch(
            f"/v1/webhook-endpoints/{created['id']}",
            headers=who.headers,
            json={"event_types": None, "description": "all"},
        )
        assert patched.json()["event_types"] is None and patched.json()["description"] == "all"

        # A test send: signed with the secret shown at creation, answered with its outcome.
        test = (
            await client.post(f"/v1/webhook-endpoints/{created['id']}/test", headers=who.headers)
        ).json()
        assert test["succeeded"] is True and test["status_code"] == 200
        (got_request,) = receiver.received
        payload = Webhook(created["secret"]).verify(got_request.body, got_request.headers)
        assert payload["type"] == "webhook.test"
        assert got_request.headers["webhook-id"] == test["event_id"]

        # Rotation: both signatures for 24 h; a second rotation inside it is a 409.
        rotated = await client.post(
            f"/v1/webhook-endpoints/{created['id']}/rotate-secret", headers=who.headers
        )
        assert rotated.status_code == 200
        new_secret = rotated.json()["secret"]
        again = await client.post(
            f"/v1/webhook-endpoints/{created['id']}/rotate-secret", headers=who.headers
        )
        assert_envelope(again, 409, "conflict")
        await client.post(f"/v1/webhook-endpoints/{created['id']}/test", headers=who.headers)
        second = receiver.received[1]
        assert len(second.headers["webhook-signature"].split(" ")) == 2
        Webhook(new_secret).verify(second.body, second.headers)
        Webhook(created["secret"]).verify(second.body, second.headers)

        # The log: newest first, each with its attempts.
        log = (
            await client.get(
                f"/v1/webhook-endpoints/{created['id']}/deliveries", headers=who.headers
            )
        ).json()["data"]
        assert [d["event_type"] for d in log] == ["webhook.test", "webhook.test"]
        assert all(d["status"] == "succeeded" and len(d["attempts"]) == 1 for d in log)
        assert log[0]["attempts"][0]["status_code"] == 200

        # Redeliver: a new delivery of the same event (same webhook-id), due now.
        redo = await client.post(
            f"/v1/webhook-deliveries/{log[1]['id']}/redeliver", headers=who.headers
        )
        assert redo.status_code == 202
        assert redo.json()["event_id"] == log[1]["event_id"] and redo.json()["status"] == "pending"

        deleted = await client.delete(f"/v1/webhook-endpoints/{created['id']}", headers=who.headers)
        assert deleted.json() == {"id": created["id"], "deleted": True}
        missing = await client.get(f"/v1/webhook-endpoints/{created['id']}", headers=who.headers)
        assert_envelope(missing, 404, "not_found")


async def test_a_failing_test_send_says_why(client: httpx.AsyncClient, admin_ops: Admin) -> None:
    who = await tenant(admin_ops)
    with running_receiver() as receiver:
        receiver.answer(Answer(503, {}, b"down"))
        we = (await add_endpoint(client, who, receiver.url))["id"]
        test = (await client.post(f"/v1/webhook-endpoints/{we}/test", headers=who.headers)).json()
    assert test["succeeded"] is False and test["status_code"] == 503
    assert test["error"] == "HTTP 503"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://169.254.169.254/latest", "link-local"),
        ("https://10.0.0.8/x", "private"),
        ("https://localhost.invalid./x", "does not resolve"),
        ("ftp://example.com/", "https"),
        ("https://u:p@example.com/", "user name"),
    ],
)
async def test_refused_urls_are_400s_naming_the_reason(
    client: httpx.AsyncClient, admin_ops: Admin, url: str, says: str
) -> None:
    who = await tenant(admin_ops)
    response = await client.post("/v1/webhook-endpoints", headers=who.headers, json={"url": url})
    error = assert_envelope(response, 400, "invalid_parameter", "url")
    assert says in error["message"]


async def test_limits_and_bad_bodies(client: httpx.AsyncClient, admin_ops: Admin) -> None:
    who = await tenant(admin_ops)
    for _ in range(5):
        await add_endpoint(client, who, "http://127.0.0.1:9/x")
    sixth = await client.post(
        "/v1/webhook-endpoints", headers=who.headers, json={"url": "http://127.0.0.1:9/x"}
    )
    assert_envelope(sixth, 400, "limit_reached")
    for i in range(20):
        response = await client.post(
            "/v1/alerts",
            headers=who.headers,
            json={"name": f"a{i}", "type": "failure_rate", "params": {"threshold": 0.2}},
        )
        assert response.status_code == 201
    response = await client.post(
        "/v1/alerts",
        headers=who.headers,
        json={"name": "x", "type": "failure_rate", "params": {"threshold": 0.2}},
    )
    assert_envelope(response, 400, "limit_reached")
    bad = await client.post(
        "/v1/webhook-endpoints",
        headers=who.headers,
        json={"url": "http://127.0.0.1:9/", "event_types": ["alert.nope"]},
    )
    assert_envelope(bad, 400, "invalid_parameter")
    unknown = await client.post(
        "/v1/webhook-endpoints", headers=who.headers, json={"url": "http://127.0.0.1:9/", "x": 1}
    )
    assert_envelope(unknown, 400, "invalid_parameter")


@pytest.mark.parametrize(
    ("type_", "params", "param"),
    [
        ("projected_month_end", {}, "params.budget_usd"),
        ("projected_month_end", {"budget_usd": 0}, "params.budget_usd"),
        ("month_to_date_cost", {"budget_usd": "lots"}, "params.budget_usd"),
        ("month_to_date_cost", {"budget_usd": 5, "extra": 1}, "params.extra"),
        ("failure_rate", {"threshold": 1.5}, "params.threshold"),
        ("failure_rate", {"threshold": 0.1, "window_minutes": 7}, "params.window_minutes"),
        ("failure_rate", {"threshold": 0.1, "window_minutes": 1445}, "params.window_minutes"),
        ("failure_rate", {"threshold": 0.1, "min_calls": 0}, "params.min_calls"),
        ("failure_rate", {"threshold": True}, "params.threshold"),
        ("provider_status", {"level": "outage"}, "params.provider"),
        ("provider_status", {"provider": "openai", "level": "down"}, "params.level"),
        ("no_such_type", {}, "type"),
    ],
)
async def test_bad_alert_params_are_400s_naming_the_param(
    client: httpx.AsyncClient, admin_ops: Admin, type_: str, params: dict[str, Any], param: str
) -> None:
    who = await tenant(admin_ops)
    response = await client.post(
        "/v1/alerts", headers=who.headers, json={"name": "x", "type": type_, "params": params}
    )
    assert_envelope(response, 400, "invalid_parameter", param)


async def test_alert_lifecycle_and_defaults(
    client: httpx.AsyncClient, admin_ops: Admin, engine: AsyncEngine
) -> None:
    who = await tenant(admin_ops)
    created = await client.post(
        "/v1/alerts",
        headers=who.headers,
        json={"name": "errors", "type": "failure_rate", "params": {"threshold": 0.1}},
    )
    assert created.status_code == 201
    alert = created.json()
    assert alert["id"].startswith("al_")
    assert alert["params"] == {"threshold": 0.1, "window_minutes": 60, "min_calls": 20}
    assert (alert["state"], alert["value"], alert["evaluated_at"], alert["sequence"]) == (
        "ok",
        None,
        None,
        0,
    )
    assert alert["endpoint_ids"] is None and alert["enabled"] is True
    preview = (await client.post(f"/v1/alerts/{alert['id']}/preview", headers=who.headers)).json()
    assert preview["value"] is None and preview["breached"] is False  # no calls at all
    assert preview["would_send"] is None
    patched = await client.patch(
        f"/v1/alerts/{alert['id']}",
        headers=who.headers,
        json={"params": {"threshold": 0.3, "min_calls": 5}, "enabled": False},
    )
    assert patched.json()["params"] == {"threshold": 0.3, "window_minutes": 60, "min_calls": 5}
    assert patched.json()["enabled"] is False
    listed = (await client.get("/v1/alerts", headers=who.headers)).json()["data"]
    assert [a["id"] for a in listed] == [alert["id"]]
    assert (await client.get(f"/v1/alerts/{alert['id']}/events", headers=who.headers)).json() == {
        "data": []
    }
    deleted = await client.delete(f"/v1/alerts/{alert['id']}", headers=who.headers)
    assert deleted.json() == {"id": alert["id"], "deleted": True}
    assert_envelope(
        await client.get(f"/v1/alerts/{alert['id']}", headers=who.headers), 404, "not_found"
    )
