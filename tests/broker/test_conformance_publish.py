"""Conformance: publications reach the other nodes (never their origin) intact; dropped counts add up."""

from __future__ import annotations

from typing import Any

import pytest

from hubbub.broker.base import Publication
from tests.broker.cluster import BrokerCluster
from tests.broker.conftest import ClusterOf


async def in_room_everywhere(cluster: BrokerCluster, room: str) -> None:
    """Give every node a member in `room` (a Redis node hears a room only while it has members there)."""
    for index, node in enumerate(cluster.nodes):
        await node.join(room, await cluster.connect(index))


async def published(cluster: BrokerCluster, origin: int, publication: Publication) -> Publication:
    """Publish from `origin`; wait until every other node got it; return one received copy."""
    await cluster.nodes[origin].publish(publication)
    others = [i for i in range(len(cluster.nodes)) if i != origin]
    await cluster.journal.until(
        lambda: all(publication in cluster.journal.delivered(i) for i in others), f"{publication} on nodes {others}"
    )
    return cluster.journal.delivered(others[0])[-1]


async def assert_origin_never_got(cluster: BrokerCluster, origin: int, publication: Publication) -> None:
    """A later publication on the same channel from another node reaches `origin`; the first one never did."""
    marker = Publication(kind=publication.kind, target=publication.target, data=f"after {publication.data!r}")
    other = (origin + 1) % len(cluster.nodes)
    await cluster.nodes[other].publish(marker)
    await cluster.journal.until(lambda: marker in cluster.journal.delivered(origin), "the marker at the origin")
    assert publication not in cluster.journal.delivered(origin)


TARGETS: list[tuple[Any, Any]] = [
    ("room", "lobby"),
    ("client", "c-123"),
    ("user", "ana"),
    ("users", ["ana", "bea"]),
    ("all", None),
]


@pytest.mark.parametrize(("kind", "target"), TARGETS, ids=[kind for kind, _ in TARGETS])
async def test_a_publication_reaches_every_other_node_not_its_origin(
    cluster_of: ClusterOf, kind: Any, target: Any
) -> None:
    cluster = await cluster_of(3)
    await in_room_everywhere(cluster, "lobby")
    for origin in (0, 2):
        publication = Publication(kind=kind, target=target, data=f"from node {origin}")
        received = await published(cluster, origin, publication)
        assert received.origin == cluster.nodes[origin].node_id
        await assert_origin_never_got(cluster, origin, publication)


PAYLOADS: dict[str, Publication] = {
    "text": Publication(kind="all", data="héllo ✓ \x00 end"),
    "empty-text": Publication(kind="all", data=""),
    "binary": Publication(kind="all", data=bytes(range(256)) * 3),
    "empty-binary": Publication(kind="all", data=b""),
    "large-binary": Publication(kind="all", data=b"\xff\x00" * 200_000),
    "text-of-digits": Publication(kind="room", target="lobby", data="12345"),
    "envelope": Publication(
        kind="room",
        target="lobby",
        envelope={
            "type": "said",
            "data": {"text": "ünïcode ✓", "n": 3, "x": 1.5, "ok": True, "none": None, "list": [1, "two", [3]]},
            "id": 7,
        },
        exclude="c-1",
        channel_only=True,
    ),
    "close-command": Publication(kind="client", target="c-9", command="close", code=4000, reason="bye ✓"),
    "join-command": Publication(kind="client", target="c-9", command="join", reason="lobby"),
}


@pytest.mark.parametrize("name", list(PAYLOADS))
async def test_payloads_and_fields_survive_intact(cluster_of: ClusterOf, name: str) -> None:
    cluster = await cluster_of(2)
    await in_room_everywhere(cluster, "lobby")
    original = PAYLOADS[name]
    publication = Publication(**{field: getattr(original, field) for field in Publication.__slots__})
    received = await published(cluster, 0, publication)
    assert received == publication
    assert type(received.data) is type(publication.data)
    assert received.to_wire() == publication.to_wire()


async def test_publications_from_one_node_arrive_in_order(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(2)
    sent = [Publication(kind="all", data=f"#{i}") for i in range(50)]
    for publication in sent:
        await cluster.nodes[0].publish(publication)
    await cluster.journal.until(lambda: len(cluster.journal.delivered(1)) == 50, "50 publications on node 1")
    assert [p.data for p in cluster.journal.delivered(1)] == [p.data for p in sent]


async def test_dropped_counts_add_up_across_nodes(cluster_of: ClusterOf) -> None:
    cluster = await cluster_of(3)
    for node in cluster.nodes:
        assert await node.dropped_count() == 0
    await cluster.nodes[0].add_dropped(3)
    await cluster.nodes[1].add_dropped(4)
    await cluster.nodes[2].add_dropped(0)
    await cluster.nodes[2].add_dropped(5)
    for node in cluster.nodes:
        assert await node.dropped_count() == 12
