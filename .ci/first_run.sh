#!/usr/bin/env bash
# CI step 1: the README's first command, verbatim, as a new user runs it on a fresh machine.
#
# A copy of the checkout (tracked + untracked-not-ignored files, nothing built), a fresh venv without
# system site packages, and a clean environment (env -i) whose HOME and XDG_CACHE_HOME are empty folders,
# so no cache of this machine (~/.cache/recif_bench, HF, torch, lm-eval) can make a broken cold path pass.
# Only pip's settings, proxies/certificates and the HF offline switches of the caller are passed through.
# The command must exit 0 and print the demo-vs-popularity table with the scores the README shows.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/recif-first-run.XXXXXX")"
trap 'rm -rf "$work"' EXIT

command="$("$python" "$repo/.ci/first_run.py" command "$repo/README.md")"

mkdir -p "$work/src" "$work/home"
if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$repo" && git ls-files -z --cached --others --exclude-standard \
     | tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$work/src"
else
  cp -a "$repo/." "$work/src"
fi
"$python" -m venv "$work/venv"

passed=()
while IFS='=' read -r name _; do
  case "$name" in
    PIP_*|http_proxy|https_proxy|no_proxy|HTTP_PROXY|HTTPS_PROXY|NO_PROXY|SSL_CERT_FILE|REQUESTS_CA_BUNDLE|\
HF_HUB_OFFLINE|HF_DATASETS_OFFLINE|TRANSFORMERS_OFFLINE) passed+=("$name=${!name}") ;;
  esac
done < <(env)

echo "first run (fresh venv, empty HOME $work/home): $command"
start=$SECONDS
status=0
(cd "$work/src" && env -i PATH="$work/venv/bin:/usr/local/bin:/usr/bin:/bin" VIRTUAL_ENV="$work/venv" \
   HOME="$work/home" XDG_CACHE_HOME="$work/home/.cache" TMPDIR="$work" LANG=C.UTF-8 "${passed[@]}" \
   bash -o pipefail -c "$command") 2>&1 | tee "$work/first_run.log" || status=$?
echo "first run: exit $status after $((SECONDS - start)) s (install included)"
[ "$status" -eq 0 ] || exit "$status"

"$python" "$repo/.ci/first_run.py" check "$work/first_run.log" "$repo/README.md"
installed="$(cd "$work" && env -i HOME="$work/home" "$work/venv/bin/python" -c \
  'import recif_bench; print(recif_bench.__file__)')"
case "$installed" in
  "$work/venv/"*) echo "first run: recif_bench imported from the venv ($installed)" ;;
  *) echo "first_run: error: recif_bench imported from $installed, not from the fresh venv" >&2; exit 1 ;;
esac
