#!/usr/bin/env bash
# Regenerates the Go code for proto/ with the tool versions pinned in
# tools/go.mod. Needs only Go and the module proxy (no BSR, no protoc).
#
#   scripts/gen-proto.sh           lint + generate
#   scripts/gen-proto.sh --check   lint + generate, then fail if the committed
#                                  generated files differ (for CI)
set -euo pipefail

check=false
case "${1:-}" in
  "") ;;
  --check) check=true ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Plugins must be on PATH for buf's `local:` plugins; building them keeps the
# versions exactly those of tools/go.mod rather than whatever is installed.
go build -modfile=tools/go.mod -o .bin/ \
  github.com/bufbuild/buf/cmd/buf \
  google.golang.org/protobuf/cmd/protoc-gen-go \
  google.golang.org/grpc/cmd/protoc-gen-go-grpc
export PATH="$root/.bin:$PATH"

buf lint
buf generate

# buf.gen.yaml has no `clean` (outputs sit next to the sources), so a removed
# .proto would leave its generated files behind: catch that here.
stale=0
while IFS= read -r gen; do
  src="${gen%_grpc.pb.go}"
  src="${src%.pb.go}.proto"
  if [[ ! -f "$src" ]]; then
    echo "stale generated file (no $src): $gen" >&2
    stale=1
  fi
done < <(find proto -name '*.pb.go' | sort)
if [[ $stale -ne 0 ]]; then
  exit 1
fi

if ! $check; then
  exit 0
fi

failed=0
if ! git diff --exit-code --name-only -- proto; then
  echo "generated code is out of date (files above); run scripts/gen-proto.sh and commit" >&2
  failed=1
fi
untracked="$(git ls-files --others --exclude-standard -- 'proto/*.pb.go')"
if [[ -n "$untracked" ]]; then
  echo "$untracked"
  echo "generated files not committed (files above)" >&2
  failed=1
fi
exit "$failed"
