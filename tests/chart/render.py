"""Renders charts/fanout offline with the Helm SDK (helm-python-sdk).

As a module: `render(values)` returns {template path: text}, `manifests(values)` the
parsed Kubernetes objects. As a script it prints the rendered manifests as one YAML
stream, for tests/tests/chart_args.rs:

    python3 tests/chart/render.py [--values JSON] [--name NAME] [--namespace NS]

Exit codes: 0 rendered, 2 bad arguments, 3 helm-python-sdk is not installed, 1 the
chart failed to render (the error is printed on stderr).
"""

import argparse
import json
import os
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHART = os.path.join(ROOT, "charts", "fanout")
RELEASE = "demo"
NAMESPACE = "fanout"


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate mapping keys (PyYAML keeps the last)."""


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def helm():
    """The helm_python module, or a clear error naming the package to install."""
    try:
        import helm_python
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise SystemExit(
            f"helm-python-sdk is not installed ({e}); run: python3 -m pip install helm-python-sdk"
        ) from e
    return helm_python


def render(values=None, name=RELEASE, namespace=NAMESPACE):
    """{template path: rendered text} of the chart for `values` (no cluster contacted)."""
    chart = helm().Chart.load(CHART)
    return chart.render(values or {}, name=name, namespace=namespace, is_install=True)


def parse(text, source="<rendered>"):
    """The objects of a YAML stream, refusing duplicate keys."""
    try:
        return [doc for doc in yaml.load_all(text, Loader=_UniqueKeyLoader) if doc]
    except yaml.YAMLError as e:
        raise AssertionError(f"{source}: not valid YAML: {e}") from e


def manifests(values=None, name=RELEASE, namespace=NAMESPACE, hooks=True):
    """The Kubernetes objects the chart renders (NOTES.txt excluded)."""
    out = []
    for path, text in sorted(render(values, name, namespace).items()):
        if path.endswith("NOTES.txt") or not text.strip():
            continue
        if not hooks and "/templates/tests/" in path:
            continue
        for obj in parse(text, path):
            out.append(obj)
    return out


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", default="{}", help="values as a JSON object")
    parser.add_argument("--name", default=RELEASE)
    parser.add_argument("--namespace", default=NAMESPACE)
    args = parser.parse_args(argv)
    try:
        values = json.loads(args.values)
    except json.JSONDecodeError as e:
        print(f"--values is not JSON: {e}", file=sys.stderr)
        return 2
    try:
        import helm_python  # noqa: F401
    except ImportError as e:
        print(
            f"helm-python-sdk is not installed ({e}); run: python3 -m pip install helm-python-sdk",
            file=sys.stderr,
        )
        return 3
    try:
        objs = manifests(values, args.name, args.namespace)
    except Exception as e:  # the SDK raises its own error types
        print(f"rendering {CHART} failed: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump_all(objs, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
