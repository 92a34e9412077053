#!/usr/bin/env bash
# Remove what launch-gpu-host.sh created for one deployment: its instances (their EBS volumes
# go with them) and its security group, found by the tag polyllm:deployment=NAME.
#
#   deploy/aws/teardown-gpu-host.sh [--name polyllm-gpu-1] [--region REGION] [--dry-run]
#
# --dry-run prints every AWS call instead of making it (values it would read back are shown as
# <placeholders>). Remove the m5 entry from the router's registry as well.
set -euo pipefail

die() {
  echo "teardown-gpu-host.sh: $*" >&2
  exit 2
}

name=polyllm-gpu-1
region=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
dry_run=false
while [[ $# -gt 0 ]]; do
  case $1 in
    --dry-run) dry_run=true; shift ;;
    --name | --region)
      [[ $# -gt 1 ]] || die "$1 needs a value"
      [[ $1 == --name ]] && name=$2 || region=$2
      shift 2
      ;;
    -h | --help) sed -n '2,8p' "$0"; exit 0 ;;
    *) die "unknown option: $1" ;;
  esac
done
[[ -n $region ]] || die "no region: pass --region or set AWS_REGION"

# shellcheck source=aws-call.sh
source "$(dirname "$0")/aws-call.sh"

tag_filter="Name=tag:polyllm:deployment,Values=$name"
found=$(aws_call '<instance-id>' ec2 describe-instances \
  --filters "$tag_filter" Name=instance-state-name,Values=pending,running,stopping,stopped \
  --query 'Reservations[].Instances[].InstanceId' --output text)
read -r -a instances <<<"$found"
if [[ ${#instances[@]} -gt 0 ]]; then
  aws_call '' ec2 terminate-instances --instance-ids "${instances[@]}" >/dev/null
  # The security group cannot go while an instance still uses it.
  aws_call '' ec2 wait instance-terminated --instance-ids "${instances[@]}" >/dev/null
fi
found=$(aws_call '<security-group-id>' ec2 describe-security-groups \
  --filters "$tag_filter" --query 'SecurityGroups[].GroupId' --output text)
read -r -a groups <<<"$found"
for group in "${groups[@]}"; do
  aws_call '' ec2 delete-security-group --group-id "$group" >/dev/null
done
$dry_run && echo "dry run: nothing was changed" && exit 0
echo "removed $name: ${#instances[@]} instance(s), ${#groups[@]} security group(s)"
