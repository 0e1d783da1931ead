"""A fleet: two `edgeguard serve` processes sharing one real Redis, as devices behind a load balancer would.

One budget for the fleet, revocations and monitor flags seen by every server, kill -9 of a server and
of Redis itself, and an outage answered with 503 until Redis is back.
"""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
from click.testing import CliRunner

from edgeguard.cli import main
from edgeguard.serve import open_store

from .test_monitor import steal
from .test_process import predict


def fleet(server_process, url: str, *options: str) -> list:
    return [server_process(url, *options) for _ in range(2)]


def test_two_servers_answer_a_budget_of_n_exactly_n_times_under_concurrent_requests(server_process, redis_server):
    store = open_store(redis_server.url, create=True)
    single, batched = store.add("single", budget=60), store.add("batched", budget=50)
    servers = fleet(server_process, redis_server.url)
    statuses: list[int] = []
    items: list[int] = []

    def client(i: int) -> None:
        with httpx.Client(timeout=10) as http:  # keep-alive, one connection per server

            def post(url: str, key: str, n: int) -> int:
                return http.post(f"{url}/predict", json={"inputs": np.full((n, 1, 28, 28), 0.5).tolist()}, headers={"X-API-Key": key}).status_code

            for j in range(12):  # 16 clients x 12: 192 single-item requests for a budget of 60
                url = servers[(i + j) % 2].url  # spread over both servers
                statuses.append(post(url, single, 1))
                n = (1, 3, 7, 2)[j % 4]
                if post(url, batched, n) == 200:
                    items.append(n)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses.count(200) == 60 and statuses.count(403) == len(statuses) - 60
    assert store.lookup(single).used == 60
    assert sum(items) == store.lookup(batched).used and 50 - 6 <= sum(items) <= 50  # a batch larger than what is left is refused whole


def test_spent_and_revoked_keys_stay_refused_after_kill_9_and_a_restart(server_process, redis_server):
    url = redis_server.url
    store = open_store(url, create=True)
    spent, bob = store.add("spent", budget=3), store.add("bob")
    a, b = fleet(server_process, url)
    assert [predict(s.url, spent) for s in (a, b, a, b)] == [200, 200, 200, 403]
    assert predict(b.url, bob) == 200
    r = CliRunner().invoke(main, ["keys", "revoke", "bob", "--db", url])
    assert r.exit_code == 0 and f"revoked key 'bob' in {url}" in r.output
    assert predict(a.url, bob) == 403  # revoked from the operator's machine, seen by every server
    a.kill9()
    a = server_process(url)
    assert [predict(s.url, key) for s in (a, b) for key in (spent, bob)] == [403] * 4
    assert open_store(url).record_named("spent").used == 3


def test_a_flag_raised_by_one_servers_monitor_blocks_the_key_on_the_other(server_process, redis_server, natural):
    store = open_store(redis_server.url, create=True)
    thief, honest = store.add("thief"), store.add("alice")
    a, b = fleet(server_process, redis_server.url, "--on-flag", "block")
    assert [r.status_code for r in steal(a.url, thief, natural)][-1] == 403  # a's monitor flagged it
    assert "ood at query" in store.record_named("thief").flag_reason
    x = natural[:1].tolist()
    r = httpx.post(f"{b.url}/predict", json={"inputs": x}, headers={"X-API-Key": thief})
    assert r.status_code == 403 and "is blocked" in r.json()["error"]  # b never saw the thief's queries
    assert httpx.post(f"{b.url}/predict", json={"inputs": x}, headers={"X-API-Key": honest}).status_code == 200


def test_with_redis_down_every_request_gets_503_and_serving_resumes_when_it_returns(server_process, redis_server):
    url = redis_server.url
    key = open_store(url, create=True).add("alice", budget=1000)
    servers = fleet(server_process, url)
    answered = sum(predict(s.url, key) == 200 for s in servers for _ in range(5))
    assert answered == 10
    redis_server.stop(kill=True)  # a crash: only what its append-only file holds survives
    for s in servers:
        replies = [httpx.post(f"{s.url}/predict", json={"inputs": np.full((1, 1, 28, 28), 0.5).tolist()}, headers={"X-API-Key": key}) for _ in range(10)]
        assert {r.status_code for r in replies} == {503}  # no answer without a charge, no other 5xx
        assert all(r.headers["retry-after"] == "1" and "retry in 1 s" in r.json()["error"] for r in replies)
        assert "127.0.0.1" not in replies[0].text  # the store's address stays in the server's log
        assert httpx.get(f"{s.url}/v2/health/ready").status_code == 503
        assert httpx.post(f"{s.url}/predict", json={"inputs": []}).status_code == 401  # no key: refused as ever
    redis_server.start()
    deadline = time.monotonic() + 10
    for s in servers:
        while (status := predict(s.url, key)) != 200:
            assert status == 503 and time.monotonic() < deadline, f"serving did not resume: {status}"
            time.sleep(0.1)
        answered += 1
        assert httpx.get(f"{s.url}/v2/health/ready").json() == {"ready": True}
    assert open_store(url).lookup(key).used == answered  # every answer charged, none lost to the crash
