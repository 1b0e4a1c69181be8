#!/usr/bin/env bash
# Runs every fuzz target of the module for a bounded time each.
#
#   scripts/fuzz.sh                 every package with fuzz targets
#   scripts/fuzz.sh ./shared/...    only these packages
#   FUZZTIME=2m scripts/fuzz.sh     longer per target (default 20s)
#
# Targets are found with `go test -list`. Every target runs even after a
# failure; the script exits 1 if any target found a failing input (Go
# saved it under the package's testdata/fuzz/<Target>/: commit it with the
# fix, it then runs as a regular test).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-20s}
patterns=("$@")
((${#patterns[@]})) || patterns=(./...)

# Only packages whose test files declare a fuzz target need a test build.
mapfile -t pkgs < <(
  "$GO" list -f '{{.ImportPath}} {{.Dir}} {{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}' "${patterns[@]}" |
    while read -r pkg dir files; do
      [[ -n "${files// /}" ]] || continue
      for f in $files; do
        if grep -q '^func Fuzz[A-Z0-9_a-z]*(f \*testing\.F)' "$dir/$f"; then
          echo "$pkg"
          break
        fi
      done
    done
)
if ((${#pkgs[@]} == 0)); then
  echo "fuzz: no fuzz targets in ${patterns[*]}" >&2
  exit 1
fi

failed=()
total=0
for pkg in "${pkgs[@]}"; do
  if ! listing=$("$GO" test -list '^Fuzz' "$pkg" 2>&1); then
    echo "$listing" >&2
    failed+=("$pkg (does not build)")
    continue
  fi
  mapfile -t targets < <(grep '^Fuzz' <<<"$listing")
  for target in "${targets[@]}"; do
    total=$((total + 1))
    echo "=== fuzz $pkg $target ($FUZZTIME)"
    if ! "$GO" test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"; then
      failed+=("$pkg $target")
    fi
  done
done

if ((${#failed[@]})); then
  echo
  echo "fuzz: ${#failed[@]} of $total targets failed:" >&2
  printf '  %s\n' "${failed[@]}" >&2
  echo "Failing inputs are saved under each package's testdata/fuzz/<Target>/." >&2
  exit 1
fi
echo "fuzz: all $total targets ran for $FUZZTIME each without a finding"
