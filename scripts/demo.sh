#!/usr/bin/env bash
# A real export against the bundled synthetic EHR: builds both binaries, starts fake-ehr on a
# free loopback port (Epic flavour, SMART Backend Services auth), exports 20 patients by MRN
# the way a hospital would, prints the resulting folder, and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet -p smart-fetch -p fake-ehr
bin="$PWD/target/release"
work="$(mktemp -d "${TMPDIR:-/tmp}/smart-fetch-demo.XXXXXX")"
system="urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14"

"$bin/fake-ehr" keygen --alg rs384 --out "$work/keys" >/dev/null
"$bin/fake-ehr" mrns --patients 20 >"$work/MRN-000"

"$bin/fake-ehr" --patients 20 --flavor epic --auth smart --client-id demo-client \
  --jwks "$work/keys/public.jwks" >"$work/fake-ehr.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
url=""
for _ in $(seq 200); do
  url="$(sed -n 's/^fake-ehr listening on //p' "$work/fake-ehr.log")"
  [ -n "$url" ] && break
  sleep 0.05
done
[ -n "$url" ] || { echo "fake-ehr did not start:"; cat "$work/fake-ehr.log"; exit 1; }

echo "+ smart-fetch export --fhir-url $url --smart-client-id demo-client --smart-key keys/private.jwks --id-system $system --id-file MRN-000 --nickname initial out/MRN-000"
(cd "$work" && "$bin/smart-fetch" export --fhir-url "$url" \
  --smart-client-id demo-client --smart-key keys/private.jwks \
  --id-system "$system" --id-file MRN-000 --nickname initial out/MRN-000)

echo
echo "The export folder ($work/out/MRN-000):"
(cd "$work/out/MRN-000" && find . -mindepth 1 | sort | while read -r f; do
  if [ -L "$f" ]; then
    printf '  %s -> %s\n' "$f" "$(readlink "$f")"
  elif [ -f "$f" ]; then
    printf '  %s (%s bytes)\n' "$f" "$(wc -c <"$f")"
  else
    printf '  %s/\n' "$f"
  fi
done)
