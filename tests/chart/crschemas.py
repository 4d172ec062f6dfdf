"""Structural JSON schemas of the third-party custom resources the chart renders.

The Prometheus Operator's and Strimzi's CRDs are not in the cluster here, so these schemas
cover the fields the chart writes (closed where the chart writes them), following the
upstream API reference: monitoring.coreos.com/v1 ServiceMonitor, PodMonitor, PrometheusRule;
kafka.strimzi.io/v1beta2 Kafka, KafkaNodePool, KafkaTopic.
"""

from __future__ import annotations

_DNS1123 = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
_STRMAP = {"type": "object", "additionalProperties": {"type": "string"}}


def _resource(api_version: str, kind: str, spec: dict, labels_required=()) -> dict:
    labels = {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}}
    if labels_required:
        labels = {**labels, "required": list(labels_required)}
    return {
        "type": "object", "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": api_version}, "kind": {"const": kind},
            "metadata": {"type": "object", "required": ["name", "namespace"], "properties": {
                "name": {"type": "string", "pattern": _DNS1123, "maxLength": 253},
                "namespace": {"type": "string"}, "labels": labels, "annotations": _STRMAP}},
            "spec": spec,
        },
    }


_SECRET_KEY = {"type": "object", "additionalProperties": False, "required": ["key"],
               "properties": {"name": {"type": "string"}, "key": {"type": "string"},
                              "optional": {"type": "boolean"}}}
_SECRET_OR_CONFIGMAP = {"type": "object", "additionalProperties": False, "properties": {
    "secret": _SECRET_KEY, "configMap": _SECRET_KEY}}
_ENDPOINT = {
    "type": "object", "additionalProperties": False, "required": ["port"],
    "properties": {
        "port": {"type": "string"}, "path": {"type": "string", "pattern": "^/"},
        "interval": {"type": "string", "pattern": _DURATION},
        "scrapeTimeout": {"type": "string", "pattern": _DURATION},
        "relabelings": {"type": "array", "items": {"type": "object"}},
        "metricRelabelings": {"type": "array", "items": {"type": "object"}},
        "scheme": {"enum": ["http", "https"]},
        # The Prometheus Operator's SafeTLSConfig (monitoring.coreos.com/v1).
        "tlsConfig": {"type": "object", "additionalProperties": False, "properties": {
            "ca": _SECRET_OR_CONFIGMAP, "cert": _SECRET_OR_CONFIGMAP,
            "keySecret": _SECRET_KEY, "serverName": {"type": "string"},
            "insecureSkipVerify": {"type": "boolean"}}},
    },
}
_SELECTOR = {"type": "object", "additionalProperties": False, "properties": {
    "matchLabels": _STRMAP, "matchExpressions": {"type": "array"}}}
_NS_SELECTOR = {"type": "object", "additionalProperties": False, "properties": {
    "any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}}

SERVICE_MONITOR = _resource("monitoring.coreos.com/v1", "ServiceMonitor", {
    "type": "object", "additionalProperties": False, "required": ["selector", "endpoints"],
    "properties": {"jobLabel": {"type": "string"}, "selector": _SELECTOR,
                   "namespaceSelector": _NS_SELECTOR,
                   "endpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT}}})

POD_MONITOR = _resource("monitoring.coreos.com/v1", "PodMonitor", {
    "type": "object", "additionalProperties": False,
    "required": ["selector", "podMetricsEndpoints"],
    "properties": {"jobLabel": {"type": "string"}, "selector": _SELECTOR,
                   "namespaceSelector": _NS_SELECTOR,
                   "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT}}})

_RULE = {
    "type": "object", "additionalProperties": False, "required": ["expr"],
    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
    "properties": {
        "alert": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
        "record": {"type": "string"}, "expr": {"type": "string", "minLength": 1},
        "for": {"type": "string", "pattern": _DURATION},
        "labels": _STRMAP, "annotations": _STRMAP,
    },
}
PROMETHEUS_RULE = _resource("monitoring.coreos.com/v1", "PrometheusRule", {
    "type": "object", "additionalProperties": False, "required": ["groups"],
    "properties": {"groups": {"type": "array", "minItems": 1, "items": {
        "type": "object", "additionalProperties": False, "required": ["name", "rules"],
        "properties": {"name": {"type": "string", "minLength": 1},
                       "interval": {"type": "string", "pattern": _DURATION},
                       "rules": {"type": "array", "minItems": 1, "items": _RULE}}}}}})

_QUANTITY = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"}
KAFKA = _resource("kafka.strimzi.io/v1beta2", "Kafka", {
    "type": "object", "additionalProperties": False, "required": ["kafka"],
    "properties": {
        "kafka": {"type": "object", "additionalProperties": False, "required": ["listeners"],
                  "properties": {
                      "version": {"type": "string", "pattern": r"^[0-9]+\.[0-9]+\.[0-9]+$"},
                      "metadataVersion": {"type": "string"},
                      "listeners": {"type": "array", "minItems": 1, "items": {
                          "type": "object", "additionalProperties": False,
                          "required": ["name", "port", "type", "tls"],
                          "properties": {
                              "name": {"type": "string", "pattern": "^[a-z0-9]{1,11}$"},
                              "port": {"type": "integer", "minimum": 9092},
                              "type": {"enum": ["internal", "route", "loadbalancer",
                                                "nodeport", "ingress", "cluster-ip"]},
                              "tls": {"type": "boolean"}}}},
                      "config": {"type": "object"}, "resources": {"type": "object"}}},
        "entityOperator": {"type": "object", "additionalProperties": False, "properties": {
            "topicOperator": {"type": "object"}, "userOperator": {"type": "object"}}},
        "kafkaExporter": {"type": "object", "additionalProperties": False, "properties": {
            "groupRegex": {"type": "string"}, "topicRegex": {"type": "string"}}},
    }})

KAFKA_NODE_POOL = _resource("kafka.strimzi.io/v1beta2", "KafkaNodePool", {
    "type": "object", "additionalProperties": False, "required": ["replicas", "roles", "storage"],
    "properties": {
        "replicas": {"type": "integer", "minimum": 0},
        "roles": {"type": "array", "minItems": 1, "uniqueItems": True,
                  "items": {"enum": ["controller", "broker"]}},
        "storage": {"type": "object", "required": ["type"], "properties": {
            "type": {"enum": ["jbod", "persistent-claim", "ephemeral"]},
            "volumes": {"type": "array", "items": {
                "type": "object", "additionalProperties": False, "required": ["id", "type"],
                "properties": {"id": {"type": "integer", "minimum": 0},
                               "type": {"enum": ["persistent-claim", "ephemeral"]},
                               "size": _QUANTITY, "class": {"type": "string"},
                               "deleteClaim": {"type": "boolean"},
                               "kraftMetadata": {"enum": ["shared"]}}}}}},
        "resources": {"type": "object"},
    }}, labels_required=("strimzi.io/cluster",))

KAFKA_TOPIC = _resource("kafka.strimzi.io/v1beta2", "KafkaTopic", {
    "type": "object", "additionalProperties": False, "required": ["partitions", "replicas"],
    "properties": {
        "topicName": {"type": "string", "pattern": r"^[A-Za-z0-9._-]{1,249}$"},
        "partitions": {"type": "integer", "minimum": 1},
        "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
        "config": {"type": "object"},
    }}, labels_required=("strimzi.io/cluster",))

SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
    ("monitoring.coreos.com/v1", "PodMonitor"): POD_MONITOR,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE,
    ("kafka.strimzi.io/v1beta2", "Kafka"): KAFKA,
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"): KAFKA_NODE_POOL,
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): KAFKA_TOPIC,
}
