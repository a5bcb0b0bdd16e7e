"""Value sets the chart tests render: the defaults and three others."""

DEFAULT = {}

EXTERNAL_NATS = {
    "externalNats": {"url": "nats://nats-0.nats.messaging:4222,nats://nats-1.nats.messaging:4222"},
    "nats": {"enabled": False},
}

INGRESS_TLS = {
    "edge": {
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "hosts": [
                {"host": "fanout.example.com", "paths": [{"path": "/graphql", "pathType": "Prefix"}]}
            ],
            "tls": [{"secretName": "fanout-example-tls", "hosts": ["fanout.example.com"]}],
        }
    }
}

# Every optional feature on (the NATS dependency stays off: it is not vendored).
ALL_OPTIONAL = {
    "externalNats": {"url": "tls://nats.messaging:4222"},
    "schema": {"existingConfigMap": "my-schema"},
    "resolvers": {"source": "", "path": "/app/resolvers.py", "pythonFields": ["orderUpdated"]},
    "auth": {
        "existingSecret": "fanout-jwt",
        "hs256SecretKey": "hs256",
        "publicKeyPemKey": "public.pem",
        "jwksKey": "jwks.json",
        "allowAnonymous": True,
        "issuers": ["https://issuer.example.com"],
        "audiences": ["fanout"],
    },
    "publishers": {"existingSecret": "fanout-publishers", "key": "tokens"},
    "multiTenant": True,
    "otlpEndpoint": "http://otel-collector.observability:4317",
    "imagePullSecrets": [{"name": "registry"}],
    "edge": {
        "config": {"max_subscriptions": 50, "max_message_bytes": 1048576},
        "drainWindowMs": 30000,
        "service": {"type": "LoadBalancer", "externalTrafficPolicy": "Local"},
        "autoscaling": {"connections": {"enabled": True, "averageValue": "20000"}},
        "ingress": INGRESS_TLS["edge"]["ingress"],
        "httpRoute": {
            "enabled": True,
            "parentRefs": [{"name": "public", "namespace": "gateways"}],
            "hostnames": ["fanout.example.com"],
        },
        "monitor": {"kind": "ServiceMonitor", "labels": {"release": "prometheus"}},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "edge", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 50,
                        "preference": {
                            "matchExpressions": [
                                {"key": "node.kubernetes.io/instance-type", "operator": "Exists"}
                            ]
                        },
                    }
                ]
            }
        },
        "priorityClassName": "fanout-edge",
        "extraEnv": [{"name": "RUST_LOG", "value": "info"}],
    },
    "router": {
        "replicas": 5,
        "monitor": {"kind": "PodMonitor"},
        "pdb": {"minAvailable": 3},
        "config": {"max_payload_bytes": 2097152},
    },
    "worker": {
        "autoscaling": {
            "queueDepth": {
                "enabled": True,
                "averageValue": "3",
            }
        },
        "pdb": {"enabled": True, "maxUnavailable": "50%"},
        "monitor": {"kind": "ServiceMonitor"},
        "image": {"registry": "registry.example.com/team", "repository": "fanout-worker-with-deps", "tag": "2024.1"},
    },
    "networkPolicy": {
        "enabled": True,
        "ingressNamespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
        "publishers": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "orders"}},
             "podSelector": {"matchLabels": {"app": "order-service"}}}
        ],
        "metricsFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        "restrictEgress": True,
        "apiServerCIDR": "10.0.0.1/32",
    },
    "tests": {
        "tokenSecret": {"name": "fanout-test", "key": "client-token"},
        "publishTokenSecret": {"name": "fanout-test", "key": "publisher-token"},
    },
}

VALUE_SETS = {
    "default": DEFAULT,
    "external-nats": EXTERNAL_NATS,
    "ingress-tls": INGRESS_TLS,
    "all-optional": ALL_OPTIONAL,
}
