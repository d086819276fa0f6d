#!/usr/bin/env bash
# Every citation of docs/ in the code and the docs themselves must name a page and a heading
# that exist, and no comment may cite the Python tool's behaviour spec by section or quirk
# number (that document is not in this repository, so such a citation cannot be looked up).
#
# A citation is `docs/<page>.md#<anchor>` in crates/, README.md or DESIGN.md, or
# `<page>.md#<anchor>` / `#<anchor>` in a link inside docs/. Anchors are GitHub's: the
# heading in lower case, spaces as hyphens, punctuation other than `-` and `_` dropped.
#
# Usage: scripts/check-doc-refs.sh [--list]   (--list prints every cited heading)
set -euo pipefail
cd "$(dirname "$0")/.."

list=false
[[ "${1:-}" == "--list" ]] && list=true

fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# anchors of one page, one a line
anchors() {
  grep -E '^#{1,6} ' "$1" \
    | sed -E 's/^#{1,6} +//; s/ +$//' \
    | tr '[:upper:]' '[:lower:]' \
    | sed -E 's/[^a-z0-9 _-]//g; s/ /-/g'
}

for page in docs/*.md; do
  anchors "$page" > "$tmp/$(basename "$page").anchors"
done

check() { # where page anchor
  local where=$1 page=$2 anchor=$3
  if [[ ! -f "docs/$page" ]]; then
    echo "$where: cites docs/$page, which does not exist" >&2
    fail=1
  elif [[ -n "$anchor" ]] && ! grep -qxF -- "$anchor" "$tmp/$page.anchors"; then
    echo "$where: cites docs/$page#$anchor, but docs/$page has no such heading" >&2
    fail=1
  elif $list; then
    echo "docs/$page#$anchor"
  fi
}

# Citations from the code and the top-level docs.
while IFS=: read -r file line ref; do
  page=${ref#docs/}
  anchor=""
  if [[ "$page" == *#* ]]; then
    anchor=${page#*#}
    page=${page%%#*}
  fi
  check "$file:$line" "$page" "$anchor"
done < <(grep -rnoE 'docs/[a-z-]+\.md(#[a-z0-9_-]+)?' crates README.md DESIGN.md || true)

# Links between the pages of docs/.
for page in docs/*.md; do
  name=$(basename "$page")
  while IFS=: read -r line ref; do
    ref=${ref#(}
    ref=${ref%)}
    [[ "$ref" == http* || "$ref" == ../* ]] && continue
    target=${ref%%#*}
    anchor=""
    [[ "$ref" == *#* ]] && anchor=${ref#*#}
    [[ -z "$target" ]] && target=$name
    check "$page:$line" "$target" "$anchor"
  done < <(grep -noE '\]\([^)]+\)' "$page" | sed -E 's/:\]/:/' || true)
done

# Citations of the outside spec.
hits=$(grep -rnE 'spec §|Spec §|§[0-9]|[Qq]uirk [0-9]' crates README.md DESIGN.md docs bench scripts \
  --include='*.rs' --include='*.md' --include='*.py' --include='*.sh' --include='*.toml' \
  | grep -vE 'RFC [0-9]+ §' | grep -v '^scripts/check-doc-refs.sh:' || true)
if [[ -n "$hits" ]]; then
  echo "Citations of the outside spec (cite a heading of docs/ or state the rule instead):" >&2
  echo "$hits" >&2
  fail=1
fi

if [[ $fail -ne 0 ]]; then
  echo "check-doc-refs: FAILED" >&2
  exit 1
fi
$list || echo "check-doc-refs: every cited page and heading exists"
