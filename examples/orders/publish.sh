#!/usr/bin/env bash
# Publishes a few events to the bundled example. Start `fanout standalone` first and
# subscribe as shown in README.md. FANOUT (the command) and SERVER may be overridden:
#   FANOUT="cargo run -q -p fanout-cli --" ./publish.sh
set -euo pipefail

FANOUT=${FANOUT:-fanout}
SERVER=${SERVER:-http://127.0.0.1:50051}
ORDER=${ORDER:-42}

publish() {
  echo "+ fanout publish $1 '$2'" >&2
  $FANOUT publish "$1" "$2" --server "$SERVER"
}

# A draft: the orderUpdated resolver skips it, subscribers see nothing.
publish "orders.$ORDER" "{\"id\":\"$ORDER\",\"status\":\"draft\",\"cents\":1999,\"items\":[]}"
# Placed and paid: subscribers get it with total = 19.99.
publish "orders.$ORDER" "{\"id\":\"$ORDER\",\"status\":\"placed\",\"cents\":1999,\"items\":[{\"sku\":\"tea\",\"qty\":2}]}"
publish "orders.$ORDER" "{\"id\":\"$ORDER\",\"status\":\"paid\",\"cents\":1999,\"items\":[{\"sku\":\"tea\",\"qty\":2}],\"note\":\"thanks\"}"
# Chat passes through without a resolver.
publish chat.lobby '{"room":"lobby","from":"ann","text":"hello"}'
