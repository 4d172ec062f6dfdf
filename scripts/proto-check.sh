#!/usr/bin/env bash
# Fail when the generated Python under libs/ disagrees with proto/ (regenerate: make proto).
set -euo pipefail
PY=${1:-.venv/bin/python}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mapfile -t protos < <(find proto -name '*.proto' | sort)
"$PY" -m grpc_tools.protoc -Iproto --python_out="$tmp" --pyi_out="$tmp" "${protos[@]}"
status=0
while IFS= read -r f; do
  rel=${f#"$tmp"/}
  if ! cmp -s "$f" "libs/$rel"; then echo "proto-check: libs/$rel is stale or missing (run make proto)"; status=1; fi
done < <(find "$tmp" -name '*_pb2.py*' | sort)
while IFS= read -r f; do
  rel=${f#libs/}
  [[ -f "$tmp/$rel" ]] || { echo "proto-check: $f has no .proto source"; status=1; }
done < <(find libs -name '*_pb2.py*' | sort)
[[ $status -eq 0 ]] && echo "proto-check: generated code matches proto/ (${#protos[@]} files)"
exit $status
