#!/usr/bin/env bash
# Builds the container images of Cairn's programs from docker/<program>.Dockerfile,
# with the repository root as the build context.
#
#   docker/build.sh [--registry R] [--tag T] [--push] [--dry-run] [program...]
#
# Programs: cairn cairn-operator cairn-csi-provider cairn-injector cairn-agent
# (default: all). Images are <registry>/<program>:<tag>; the registry defaults
# to ghcr.io/cairn-dev (the chart's image.registry) and the tag to the
# workspace version in Cargo.toml (the chart's appVersion). --dry-run prints
# the commands instead of running them. $DOCKER picks the client (docker by
# default; podman works too). BuildKit is needed for the cache mounts.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROGRAMS=(cairn cairn-operator cairn-csi-provider cairn-injector cairn-agent)
DOCKER="${DOCKER:-docker}"
registry="ghcr.io/cairn-dev"
tag=""
push=0
dry_run=0
selected=()

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --registry) registry="${2:?--registry needs a value}"; shift 2 ;;
    --tag) tag="${2:?--tag needs a value}"; shift 2 ;;
    --push) push=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "docker/build.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    *)
      if [[ ! -f "$ROOT/docker/$1.Dockerfile" ]]; then
        echo "docker/build.sh: no program '$1' (have: ${PROGRAMS[*]})" >&2
        exit 2
      fi
      selected+=("$1"); shift ;;
  esac
done
[[ ${#selected[@]} -gt 0 ]] || selected=("${PROGRAMS[@]}")

if [[ -z "$tag" ]]; then
  # The first `version = "..."` of Cargo.toml is [workspace.package]'s.
  tag="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -n1)"
  [[ -n "$tag" ]] || { echo "docker/build.sh: no version in Cargo.toml; pass --tag" >&2; exit 2; }
fi

run() {
  if [[ $dry_run -eq 1 ]]; then
    printf '%q ' "$@"; echo
  else
    "$@"
  fi
}

if [[ $dry_run -eq 0 ]] && ! command -v "$DOCKER" >/dev/null; then
  echo "docker/build.sh: '$DOCKER' not found (set DOCKER=podman, or install docker)" >&2
  exit 1
fi

for program in "${selected[@]}"; do
  image="$registry/$program:$tag"
  echo "==> $image" >&2
  run env DOCKER_BUILDKIT=1 "$DOCKER" build \
    --file "$ROOT/docker/$program.Dockerfile" \
    --tag "$image" \
    --label "org.opencontainers.image.version=$tag" \
    --label "org.opencontainers.image.title=$program" \
    "$ROOT"
  if [[ $push -eq 1 ]]; then
    run "$DOCKER" push "$image"
  fi
done
