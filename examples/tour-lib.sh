# Shared by the tour scripts (sourced): run CMD… shows a command, runs it and stops the tour unless it exits 0;
# expect CODE CMD… does the same for a documented exit code (1: findings such as drift, 2: a refused request).
run() { expect 0 "$@"; }
expect() {
  local want=$1 code=0
  shift
  printf '\n$ %s\n' "$*"
  "$@" || code=$?
  if [ "$code" != "$want" ]; then
    echo "tour: expected exit $want, got $code" >&2
    exit 1
  fi
}
