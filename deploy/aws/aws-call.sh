# shellcheck shell=bash disable=SC2154  # $region and $dry_run are the caller's
# Sourced by launch-gpu-host.sh and teardown-gpu-host.sh: every AWS call is shown on stdout, and
# made unless dry_run=true. The caller sets $region and $dry_run.

exec 3>&1  # where the calls are shown: the caller's stdout, also from inside $(...)

# aws_call PLACEHOLDER ARGS...: show `aws --region REGION ARGS...` and run it, printing its
# output; with dry_run=true only show it and print PLACEHOLDER (a value it would read back).
aws_call() {
  local placeholder=$1
  shift
  printf 'aws' >&3
  printf ' %q' --region "$region" "$@" >&3
  printf '\n' >&3
  if $dry_run; then
    printf '%s\n' "$placeholder"
  else
    aws --region "$region" "$@"
  fi
}
