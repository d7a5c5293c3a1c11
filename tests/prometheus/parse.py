"""Parses Prometheus text exposition (stdin) with the official Python
client's parser, as a Prometheus server would read it, and prints the
samples as JSON: [{"name", "labels", "value", "type", "help"}]. Exits 1
with the parser's message if the text is not valid exposition."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read()
try:
    out = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.append(
                {
                    "family": family.name,
                    "type": family.type,
                    "help": family.documentation,
                    "name": s.name,
                    "labels": s.labels,
                    "value": s.value,
                }
            )
except Exception as e:  # the parser raises ValueError and friends
    print(f"invalid exposition: {e}", file=sys.stderr)
    sys.exit(1)
print(json.dumps(out))
