"""Python resolvers of the bundled orders example.

Fanout calls a resolver once per event and *shape* (subscriptions with the same
document, variables and security context share one call), never once per subscriber.
The value returned is then projected in Rust onto each subscription's selection set,
so a resolver returns the whole object and never worries about what was selected.

A resolver takes three arguments:
  event -- the published JSON payload, already decoded (usually a dict)
  args  -- the arguments of the subscription field, e.g. {"id": "42"}
  ctx   -- a fanout.Context: claims, tenant, subject, roles, scopes, channel, offset,
           epoch and headers of the event being resolved

and returns a value for the field, or None to skip the event for that subscription.
An exception becomes a GraphQL error for these subscribers; the subscription lives on.

`chatMessage` has no resolver here: its events are passed through as published.
"""

import fanout


@fanout.resolver("orderUpdated")
def order_updated(event, args, ctx):
    # Drafts are internal: subscribers never see an order before it is placed.
    # Returning None skips this event for the subscription.
    if event.get("status") == "draft":
        return None

    # Enrich: publishers send integer cents; clients also get a decimal total.
    # Copy the event instead of mutating it, since the same decoded event may be
    # handed to other shapes' calls.
    return {**event, "total": event["cents"] / 100}
