"""A trivial resolver for the `python_resolver` micro-benchmark: returns the event."""

import fanout


@fanout.resolver("orderUpdated")
def order_updated(event, args, ctx):
    return event
