#!/bin/bash
# Rolls a new model version out to serve replicas behind HAProxy, one replica at a time, with
# no failed request: drain the replica in HAProxy, wait until it has no request in flight,
# install the version into its model repository, make it load (the repository API, or a
# restart command), wait until it serves the version and HAProxy's health check finds it ready,
# put it back into rotation, then the next one. docs/scaling.md walks through it.
#
#   deploy/rolling-update.sh --socket /run/haproxy/simdnn.sock --model NAME --version V \
#       --source DIR --replica s1=/srv/simdnn/r1/models [--replica s2=...] \
#       [--token-file FILE | --restart-command CMD] [--backend simdnn] [--timeout 60]
#
#   --source DIR       the new version's folder (holding model.safetensors); it is copied to
#                      REPO/NAME/V of each replica under a hidden name, then renamed into place
#                      (serve never reads a half-copied folder). A replica that already has
#                      REPO/NAME/V with the same files is only reloaded.
#   --replica S=REPO   HAProxy server S of the backend and its model repository directory; the
#                      replica's address comes from HAProxy. In the order given.
#   --token-file FILE  the bearer token of the replicas' repository API (serve
#                      --auth-token-file): POST /v2/repository/models/NAME/load reloads
#   --restart-command CMD   instead of the load call: a shell command that restarts the replica
#                      (run with SIMDNN_REPLICA=S and SIMDNN_REPLICA_ADDR=HOST:PORT set), e.g.
#                      'systemctl restart simdnn-serve@$SIMDNN_REPLICA'; serve drains on SIGTERM
#   --timeout SECONDS  for each wait (in-flight requests to end, the version to be served,
#                      HAProxy to find the replica up); default 60
#
# Needs socat (HAProxy's runtime API on the admin socket), curl and python3 (JSON).
# Exit codes: 0 every replica serves V; 1 bad arguments; 2 a replica failed (its name and the
# step on stderr; the version this run installed there is removed again): it stays drained in
# HAProxy, the ones not yet updated keep serving the old version; also 2 when draining the next
# replica would leave none in rotation; 4 a folder cannot be read or written.
set -euo pipefail

socket= backend=simdnn model= version= source= token_file= restart_command= timeout=60
replicas=()

usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; }
draining=  # the replica drained now, if any
die() {
  local code=$1
  shift
  local note=
  [[ -n $draining && $code == 4 ]] && note="; $draining stays drained in HAProxy"
  echo "rolling-update: $*$note" >&2
  exit "$code"
}
log() { echo "rolling-update: $*" >&2; }

while (($#)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --socket | --backend | --model | --version | --source | --replica | --token-file | \
      --restart-command | --timeout)
      (($# >= 2)) || die 1 "$1 needs a value"
      case $1 in
        --socket) socket=$2 ;;
        --backend) backend=$2 ;;
        --model) model=$2 ;;
        --version) version=$2 ;;
        --source) source=$2 ;;
        --replica) replicas+=("$2") ;;
        --token-file) token_file=$2 ;;
        --restart-command) restart_command=$2 ;;
        --timeout) timeout=$2 ;;
      esac
      shift 2
      ;;
    *) die 1 "unknown argument '$1' (see --help)" ;;
  esac
done

[[ -n $socket && -n $model && -n $version && -n $source ]] ||
  die 1 "--socket, --model, --version and --source are required (see --help)"
((${#replicas[@]})) || die 1 "at least one --replica S=REPO is required"
[[ $version =~ ^[0-9]+$ ]] || die 1 "--version must be an integer (a repository version)"
[[ $model =~ ^[A-Za-z0-9_.-]+$ && $model != .* ]] || die 1 "bad model name '$model'"
[[ $timeout =~ ^[0-9]+$ ]] || die 1 "--timeout must be a whole number of seconds"
[[ -n $token_file || -n $restart_command ]] ||
  die 1 "say how a replica loads the version: --token-file or --restart-command"
[[ -z $token_file || -r $token_file ]] || die 4 "cannot read the token file $token_file"
[[ -f $source/model.safetensors ]] || die 4 "$source/model.safetensors does not exist"
for tool in socat curl python3; do
  command -v "$tool" >/dev/null || die 1 "$tool is needed (Debian package $tool)"
done

# One runtime API command; its answer on stdout.
haproxy_cmd() { printf '%s\n' "$1" | socat -t 5 stdio "UNIX-CONNECT:$socket"; }

# "scur status" of server $1 from `show stat` (status: UP, DOWN, DRAIN, MAINT, ...).
server_stat() {
  haproxy_cmd "show stat" | awk -F, -v be="$backend" -v s="$1" \
    '$1 == be && $2 == s { print $5, $18; found = 1 } END { exit !found }'
}

# HOST:PORT of server $1, from `show servers state`.
server_addr() {
  haproxy_cmd "show servers state $backend" | awk -v s="$1" \
    '$4 == s { print $5 ":" $19; found = 1 } END { exit !found }'
}

# Polls `$@` every 0.2 s until it succeeds or --timeout passes.
wait_for() {
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

no_sessions() { [[ $(server_stat "$1") == "0 "* ]]; }
up_in_haproxy() {  # health checks pass (DRAIN: up but drained)
  local st
  st=$(server_stat "$1") || return 1
  [[ ${st#* } == UP* || ${st#* } == DRAIN* ]]
}
# The replica lists $version among its live versions and none higher: unpinned requests get it.
serves_version() {
  local meta
  meta=$(curl -fsS --max-time 5 "http://$1/v2/models/$model" 2>/dev/null) || return 1
  python3 -c '
import json, sys
try:
    versions = [int(v) for v in json.loads(sys.argv[1])["versions"]]
except (ValueError, KeyError, TypeError):
    sys.exit(1)
sys.exit(0 if versions and max(versions) == int(sys.argv[2]) else 1)' "$meta" "$version"
}

# Copies the version into one repository: REPO/MODEL/.V.tmp-PID, then a rename to REPO/MODEL/V.
# Sets `installed` to the new folder (empty when it was there already).
installed=
install_version() {
  local repo=$1 dest=$1/$model/$version tmp
  installed=
  if [[ -d $dest ]]; then
    diff -rq "$source" "$dest" >/dev/null ||
      die 4 "$dest exists with other contents; refusing to overwrite a published version"
    return 0
  fi
  mkdir -p "$repo/$model" || die 4 "cannot create $repo/$model"
  tmp=$repo/$model/.$version.tmp-$$
  rm -rf "$tmp"
  cp -R "$source" "$tmp" || die 4 "cannot copy $source to $tmp"
  mv -T "$tmp" "$dest" || die 4 "cannot rename $tmp to $dest"
  installed=$dest
}

# A replica that failed: take back the version this run installed (the replica still serves its
# old one, so the repository matches what it serves), leave it drained, and say how to go on.
fail_replica() {
  local name=$1
  shift
  if [[ -n $installed ]]; then
    rm -rf "$installed" && log "$name: removed $installed again"
  fi
  die 2 "$name: $*; it stays drained (after fixing it: echo 'set server $backend/$name state" \
    "ready' | socat stdio UNIX-CONNECT:$socket), the other replicas serve"
}

# Servers of the backend other than $1 that take requests now (UP and not drained).
others_in_rotation() {
  haproxy_cmd "show stat" | awk -F, -v be="$backend" -v s="$1" \
    '$1 == be && $2 != s && $2 != "BACKEND" && $18 ~ /^UP/ { n++ } END { print n + 0 }'
}

reload_replica() {
  local name=$1 addr=$2
  if [[ -n $restart_command ]]; then
    SIMDNN_REPLICA=$name SIMDNN_REPLICA_ADDR=$addr bash -c "$restart_command" ||
      fail_replica "$name" "the restart command failed"
  else
    local answer
    answer=$(curl -sS --max-time 30 -w '\n%{http_code}' -X POST \
      -H "Authorization: Bearer $(tr -d '[:space:]' <"$token_file")" \
      "http://$addr/v2/repository/models/$model/load" 2>&1) || true
    [[ ${answer##*$'\n'} == 200 ]] ||
      fail_replica "$name" "POST /v2/repository/models/$model/load failed: ${answer//$'\n'/ }"
  fi
}

# Every replica must be known to HAProxy and up before one is taken out: draining one while
# another is down could leave nobody serving.
declare -A addr_of repo_of
for r in "${replicas[@]}"; do
  name=${r%%=*} repo=${r#*=}
  [[ $r == *=* && -n $name && -n $repo ]] || die 1 "--replica '$r' is not S=REPO"
  [[ -d $repo ]] || die 4 "$name: repository $repo is not a directory"
  addr_of[$name]=$(server_addr "$name") || die 1 "$name is not a server of backend $backend"
  repo_of[$name]=$repo
  up_in_haproxy "$name" || die 2 "$name is not up in HAProxy; not starting (fix it first)"
done

start=$SECONDS
for r in "${replicas[@]}"; do
  name=${r%%=*}
  addr=${addr_of[$name]}
  step_start=$SECONDS
  (($(others_in_rotation "$name") > 0)) ||
    die 2 "$name: no other replica is in rotation; draining it would leave none (nothing changed)"
  log "$name ($addr): drain"
  installed=
  draining=$name
  haproxy_cmd "set server $backend/$name state drain" >/dev/null
  wait_for no_sessions "$name" ||
    fail_replica "$name" "still has requests in flight after ${timeout} s"
  install_version "${repo_of[$name]}"
  reload_replica "$name" "$addr"
  wait_for serves_version "$addr" ||
    fail_replica "$name" "does not serve version $version after ${timeout} s"
  wait_for up_in_haproxy "$name" ||
    fail_replica "$name" "HAProxy's health check does not find it ready after ${timeout} s"
  haproxy_cmd "set server $backend/$name state ready" >/dev/null
  draining=
  log "$name: serves version $version, back in rotation ($((SECONDS - step_start)) s)"
done
log "all ${#replicas[@]} replicas serve $model version $version ($((SECONDS - start)) s)"
