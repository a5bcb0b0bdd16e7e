"""A peer for `fanout-bench`: the bundled example's `chatMessage(room:)` subscription
served over graphql-transport-ws by Strawberry on uvicorn, plus a tiny `POST /publish`
endpoint (`{"channel": "chat.<room>", "payload": {...}}`).

Usage: uvicorn app:app --host 127.0.0.1 --port 8092 (WebSocket at /graphql).
"""

import asyncio
from collections import defaultdict
from typing import AsyncGenerator, Optional

import strawberry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

# Events a subscriber may have queued; beyond it, it misses events.
QUEUE_LIMIT = 4096

# room -> queues of the subscribers of that room.
rooms: dict[str, set[asyncio.Queue]] = defaultdict(set)


@strawberry.type
class ChatMessage:
    room: str
    from_: str = strawberry.field(name="from")
    text: str


@strawberry.type
class Query:
    @strawberry.field
    def health(self) -> Optional[str]:
        return "ok"


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def chat_message(self, room: str) -> AsyncGenerator[Optional[ChatMessage], None]:
        queue: asyncio.Queue = asyncio.Queue(QUEUE_LIMIT)
        rooms[room].add(queue)
        try:
            while True:
                event = await queue.get()
                yield ChatMessage(room=event["room"], from_=event["from"], text=event["text"])
        finally:
            rooms[room].discard(queue)
            if not rooms[room]:
                del rooms[room]


schema = strawberry.Schema(query=Query, subscription=Subscription)
graphql_app = GraphQL(schema, subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL])


async def publish(request: Request) -> Response:
    try:
        body = await request.json()
        channel = body["channel"]
        payload = body["payload"]
    except (ValueError, KeyError, TypeError):
        return Response(status_code=400)
    if not isinstance(channel, str) or not channel.startswith("chat."):
        return Response(status_code=404)
    for queue in rooms.get(channel[len("chat."):], ()):
        try:
            queue.put_nowait(payload)
        except asyncio.QueueFull:
            pass
    return Response(status_code=204)


app = Starlette(
    routes=[
        Route("/publish", publish, methods=["POST"]),
        Route("/graphql", graphql_app),
        WebSocketRoute("/graphql", graphql_app),
    ]
)
