// Subscribes to a Fanout server with the npm `graphql-ws` client and prints every
// `next` payload as one JSON line on stdout. Used by tests/tests/js_client.rs.
//
//   node subscribe.mjs --url ws://127.0.0.1:8080/graphql \
//     --query 'subscription { tick(room: "a") { n } }' [--variables JSON] \
//     [--token JWT] [--count N]
//
// Exits 0 after --count payloads, 1 on a GraphQL error, 2 on a connection or
// usage problem (the reason goes to stderr).

import { parseArgs } from "node:util";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    query: { type: "string" },
    variables: { type: "string", default: "{}" },
    token: { type: "string" },
    count: { type: "string", default: "1" },
  },
});
if (!values.url || !values.query) {
  console.error("usage: node subscribe.mjs --url URL --query QUERY [--variables JSON] [--token JWT] [--count N]");
  process.exit(2);
}
const want = Number.parseInt(values.count, 10);

const client = createClient({
  url: values.url,
  webSocketImpl: WebSocket,
  connectionParams: values.token ? { token: values.token } : undefined,
  retryAttempts: 0,
  lazy: false,
  on: {
    connected: () => console.error("connected"),
    closed: (event) => {
      if (received < want) {
        console.error(`closed early: code ${event?.code} ${event?.reason ?? ""}`);
        process.exit(2);
      }
    },
  },
});

let received = 0;
client.subscribe(
  { query: values.query, variables: JSON.parse(values.variables) },
  {
    next: (payload) => {
      received += 1;
      const done = received >= want;
      process.stdout.write(JSON.stringify(payload) + "\n", () => {
        if (done) {
          client.dispose();
          process.exit(0);
        }
      });
    },
    error: (err) => {
      console.error("subscription error:", JSON.stringify(err?.message ? { message: err.message } : err));
      process.exit(Array.isArray(err) ? 1 : 2);
    },
    complete: () => {
      console.error(`complete after ${received} payloads`);
      process.exit(received >= want ? 0 : 1);
    },
  },
);
