// A peer for `fanout-bench`: the bundled example's `chatMessage(room:)` subscription
// served over graphql-transport-ws by the `graphql-ws` reference server (on `ws`) with
// graphql-js, plus a tiny `POST /publish` endpoint
// (`{"channel": "chat.<room>", "payload": {...}}`).
//
// Usage: node server.mjs [PORT] (default 8091, on 127.0.0.1). WebSocket at /graphql.
import http from 'node:http';
import { buildSchema } from 'graphql';
import { WebSocketServer } from 'ws';
import { useServer } from 'graphql-ws/use/ws';

const schema = buildSchema(`
  type ChatMessage {
    room: String!
    from: String!
    text: String!
  }
  type Query {
    health: String
  }
  type Subscription {
    chatMessage(room: String!): ChatMessage
  }
`);

// Events a subscriber may have queued before it is considered too slow and cut off.
const QUEUE_LIMIT = 4096;

// room -> Set of subscriber queues.
const rooms = new Map();

// An async iterator over one room's events for one subscriber.
function subscribeRoom(room) {
  const queue = [];
  let wake = null;
  let done = false;
  const subscriber = {
    push(event) {
      if (wake) {
        const w = wake;
        wake = null;
        w({ value: { chatMessage: event }, done: false });
      } else if (queue.length < QUEUE_LIMIT) {
        queue.push(event);
      }
    },
  };
  let set = rooms.get(room);
  if (!set) {
    set = new Set();
    rooms.set(room, set);
  }
  set.add(subscriber);
  const finish = () => {
    done = true;
    set.delete(subscriber);
    if (set.size === 0 && rooms.get(room) === set) rooms.delete(room);
    if (wake) {
      const w = wake;
      wake = null;
      w({ value: undefined, done: true });
    }
    return Promise.resolve({ value: undefined, done: true });
  };
  return {
    next() {
      if (queue.length > 0) {
        return Promise.resolve({ value: { chatMessage: queue.shift() }, done: false });
      }
      if (done) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve) => {
        wake = resolve;
      });
    },
    return: finish,
    throw: finish,
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

const roots = {
  query: { health: () => 'ok' },
  subscription: { chatMessage: ({ room }) => subscribeRoom(room) },
};

function publish(req, res) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      res.writeHead(400, { 'content-length': '0' });
      res.end();
      return;
    }
    const channel = typeof body.channel === 'string' ? body.channel : '';
    if (!channel.startsWith('chat.')) {
      res.writeHead(404, { 'content-length': '0' });
      res.end();
      return;
    }
    const set = rooms.get(channel.slice('chat.'.length));
    if (set) for (const s of set) s.push(body.payload);
    res.writeHead(204);
    res.end();
  });
}

const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/publish') return publish(req, res);
  res.writeHead(404, { 'content-length': '0' });
  res.end();
});
server.keepAliveTimeout = 600_000;

const wss = new WebSocketServer({ server, path: '/graphql' });
useServer({ schema, roots }, wss);

const port = Number(process.argv[2] ?? 8091);
server.listen(port, '127.0.0.1', () => {
  console.error(`graphql-ws peer on 127.0.0.1:${port}`);
});
