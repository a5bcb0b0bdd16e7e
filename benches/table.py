"""Prints fanout-bench JSON reports (one per line) as a table.

    python3 benches/table.py RESULTS.jsonl              one row per run
    python3 benches/table.py --compare RESULTS.jsonl    rows grouped by scenario, with
                                                        each peer's ratio to Fanout

In --compare mode a run's label is "<server>: <scenario>"; the server named "fanout"
is the reference of its scenario.
"""

import json
import sys


def mib(b):
    return f"{b / 1048576:.0f}" if b else ""


def ms(us):
    return f"{us / 1000:.1f}"


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def row(r):
    if r.get("mode") == "failed":
        return [r.get("label", ""), "FAILED"] + [""] * 13
    server = r.get("server") or {}
    idle = r.get("idle")
    lat = r.get("latency_us", {})
    subs = f"{r['connections']}x{r['subscriptions_per_connection']}"
    if idle:
        return [r["label"], subs, "", "", "", "", "", "", "", "",
                f"{server.get('cpu_seconds', 0):.1f}", "", mib(server.get("peak_rss_bytes", 0)),
                f"{idle['bytes_per_connection']:.0f}", str(r["not_ready"] + r["failed_connections"])]
    return [
        r["label"], subs, str(r["channels"]),
        f"{r['deliveries_per_second']:.0f}",
        ms(lat["p50"]), ms(lat["p99"]), ms(lat["p999"]), ms(lat["max"]),
        f"{r['lost']}/{r['duplicates']}/{r['out_of_order']}",
        str(r.get("backlog_drops") or 0),
        f"{server.get('cpu_seconds', 0):.1f}" if server else "",
        f"{r['generator_cpu_seconds']:.1f}" if r.get("generator_cpu_seconds") is not None else "",
        mib(server.get("peak_rss_bytes", 0)) if server else "",
        "",
        str(r["not_ready"] + r["failed_connections"]),
    ]


HEADER = ["run", "conns x subs", "channels", "deliveries/s", "p50 ms", "p99 ms", "p99.9 ms",
          "max ms", "lost/dup/ooo", "kernel drops", "server CPU s", "generator CPU s", "peak RSS MiB", "bytes/conn", "failed"]


def print_table(header, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


def ratio(a, b, lower_is_better=False):
    if not a or not b:
        return ""
    return f"{(b / a if lower_is_better else a / b):.2f}x"


def compare(runs):
    """Rows of Fanout vs each peer: Fanout's advantage as a ratio (>1 = Fanout better)."""
    by_scenario = {}
    for r in runs:
        server, _, scenario = r.get("label", "").partition(": ")
        by_scenario.setdefault(scenario, {})[server] = r
    header = ["scenario", "server", "deliveries/s", "p50 ms", "p99 ms", "lost",
              "CPU s", "peak RSS MiB", "bytes/conn",
              "Fanout throughput ratio", "Fanout p99 ratio", "Fanout CPU ratio", "Fanout memory ratio"]
    rows = []
    for scenario, servers in by_scenario.items():
        ref = servers.get("fanout")
        for name, r in servers.items():
            if r.get("mode") == "failed":
                rows.append([scenario, name, "FAILED"] + [""] * 10)
                continue
            s = r.get("server") or {}
            idle = r.get("idle")
            lat = r.get("latency_us", {})
            cells = [scenario, name,
                     "" if idle else f"{r['deliveries_per_second']:.0f}",
                     "" if idle else ms(lat["p50"]), "" if idle else ms(lat["p99"]),
                     "" if idle else str(r["lost"]),
                     f"{s.get('cpu_seconds', 0):.2f}", mib(s.get("peak_rss_bytes", 0)),
                     f"{idle['bytes_per_connection']:.0f}" if idle else ""]
            if ref is None or name == "fanout" or ref.get("mode") == "failed":
                cells += [""] * 4
            elif idle:
                cells += ["", "", "",
                          ratio(ref["idle"]["bytes_per_connection"], idle["bytes_per_connection"], True)]
            else:
                rs = ref.get("server") or {}
                p99 = ratio(ref["latency_us"]["p99"], lat["p99"], True)
                if "max rate" in scenario and p99:
                    # Not comparable: see the note printed under the table.
                    p99 = f"({p99})"
                cells += [ratio(ref["deliveries_per_second"], r["deliveries_per_second"]),
                          p99,
                          ratio(rs.get("cpu_seconds"), s.get("cpu_seconds"), True),
                          ratio(rs.get("peak_rss_bytes"), s.get("peak_rss_bytes"), True)]
            rows.append(cells)
    print_table(header, rows)
    print("\nratios: how many times better Fanout is (>1) or worse (<1): deliveries/s, and "
          "the peer's p99 latency, server CPU seconds, peak RSS and bytes per idle "
          "connection over Fanout's.\n(p99 ratio) of a \"max rate\" row: not comparable. "
          "Fanout is sent all events at once over its gRPC stream, so its p99 is the "
          "backlog; a peer gets one HTTP POST at a time, so its rate is bounded by the "
          "POST's round trip and its p99 is that of a trickle. Compare throughput and "
          "CPU there.")


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        sys.exit(64)
    if args[0] == "--compare":
        compare(load(args[1]))
    else:
        print_table(HEADER, [row(r) for r in load(args[0])])


if __name__ == "__main__":
    main()
