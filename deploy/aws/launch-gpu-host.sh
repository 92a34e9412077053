#!/usr/bin/env bash
# Launch a GPU host on AWS that serves m5 (the fallback tier) on its GPU, and print the entry to
# add to the router's registry. With the AWS CLI, credentials and region the usual AWS way.
#
#   deploy/aws/launch-gpu-host.sh --model-uri s3://BUCKET/models/m5.gguf \
#       --instance-profile polyllm-models-read --allow-cidr 203.0.113.7/32 [--dry-run]
#
# What it does: looks up the AWS Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) in
# SSM, creates a security group that opens the model port to --allow-cidr only, and starts a
# g5.xlarge with a gp3 EBS volume for /models and user-data.sh (Docker, NVIDIA Container Toolkit,
# then polyllm/inference:gpu-ready with USE_GPU=true and MODEL_URI). Everything it creates is
# tagged polyllm:deployment=NAME; teardown-gpu-host.sh removes it. --dry-run prints every AWS
# call instead of making it (values it would read back are shown as <placeholders>).
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: launch-gpu-host.sh --model-uri s3://BUCKET/KEY --instance-profile NAME --allow-cidr CIDR
                          [--name polyllm-gpu-1] [--host gpu-1] [--instance-type g5.xlarge]
                          [--image polyllm/inference:gpu-ready] [--volume-gb 100]
                          [--region REGION] [--ami AMI_ID] [--subnet-id SUBNET] [--key-name KEY]
                          [--m5-sha256 SHA256] [--user-data-out FILE] [--dry-run]
  --model-uri         the m5 GGUF in S3 (polyllm models upload --to s3://BUCKET/models m5)
  --instance-profile  an IAM instance profile allowed s3:GetObject on it (and ECR pulls, if used)
  --allow-cidr        who may reach the model port (8105), e.g. the router's VPC or your /32
  --m5-sha256         for a custom m5 file: its sha256 (POLYLLM_M5_SHA256)
  --key-name          an EC2 key pair: also opens SSH (22) to --allow-cidr
USAGE
}

die() {
  echo "launch-gpu-host.sh: $*" >&2
  exit 2
}

name=polyllm-gpu-1
host=gpu-1
instance_type=g5.xlarge
image=polyllm/inference:gpu-ready
volume_gb=100
region=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
model_uri='' instance_profile='' allow_cidr='' ami='' subnet_id='' key_name=''
m5_sha256='' user_data_out=''
dry_run=false
port=8105
ami_parameter=/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id

while [[ $# -gt 0 ]]; do
  option=$1
  shift
  case $option in
    --dry-run) dry_run=true; continue ;;
    -h | --help) usage; exit 0 ;;
  esac
  [[ $# -gt 0 ]] || die "$option needs a value"
  value=$1
  shift
  case $option in
    --model-uri) model_uri=$value ;;
    --instance-profile) instance_profile=$value ;;
    --allow-cidr) allow_cidr=$value ;;
    --name) name=$value ;;
    --host) host=$value ;;
    --instance-type) instance_type=$value ;;
    --image) image=$value ;;
    --volume-gb) volume_gb=$value ;;
    --region) region=$value ;;
    --ami) ami=$value ;;
    --subnet-id) subnet_id=$value ;;
    --key-name) key_name=$value ;;
    --m5-sha256) m5_sha256=$value ;;
    --user-data-out) user_data_out=$value ;;
    *) usage >&2; die "unknown option: $option" ;;
  esac
done

[[ $model_uri =~ ^s3://[a-z0-9][a-z0-9.-]+/[A-Za-z0-9._/-]+$ ]] \
  || die "--model-uri must be s3://BUCKET/KEY (got '$model_uri')"
[[ -n $instance_profile ]] || die "--instance-profile is required: the host reads --model-uri with it"
[[ $allow_cidr =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$ ]] \
  || die "--allow-cidr must be an IPv4 CIDR such as 203.0.113.7/32 (got '$allow_cidr')"
[[ -n $region ]] || die "no region: pass --region or set AWS_REGION"
[[ $image =~ ^[A-Za-z0-9./:@_-]+$ ]] || die "--image has unexpected characters: '$image'"
[[ $region =~ ^[a-z0-9-]+$ ]] || die "--region has unexpected characters: '$region'"
[[ -z $m5_sha256 || $m5_sha256 =~ ^[0-9a-f]{64}$ ]] || die "--m5-sha256 must be 64 hex digits"
[[ $volume_gb =~ ^[0-9]+$ ]] || die "--volume-gb must be a number"
[[ $allow_cidr == 0.0.0.0/0 ]] \
  && echo "warning: the model port is open to the whole internet (no authentication)" >&2

# shellcheck source=aws-call.sh
source "$(dirname "$0")/aws-call.sh"

tags() {  # tag specifications for the resource types given
  local type
  for type in "$@"; do
    printf 'ResourceType=%s,Tags=[{Key=Name,Value=%s},{Key=polyllm:deployment,Value=%s}]\n' \
      "$type" "$name" "$name"
  done
}

# The first-boot script, with this launch's values.
user_data=$(<"$(dirname "$0")/user-data.sh")
user_data=${user_data//__IMAGE__/$image}
user_data=${user_data//__MODEL_URI__/$model_uri}
user_data=${user_data//__REGION__/$region}
user_data=${user_data//__M5_SHA256__/$m5_sha256}
if [[ -z $user_data_out ]]; then
  user_data_out=$(mktemp)
  trap 'rm -f "$user_data_out"' EXIT
fi
printf '%s\n' "$user_data" >"$user_data_out"

if [[ -z $ami ]]; then
  ami=$(aws_call '<ami-id>' ssm get-parameter --name "$ami_parameter" \
    --query Parameter.Value --output text)
fi
if [[ -n $subnet_id ]]; then
  vpc_id=$(aws_call '<vpc-id>' ec2 describe-subnets --subnet-ids "$subnet_id" \
    --query 'Subnets[0].VpcId' --output text)
else
  vpc_id=$(aws_call '<vpc-id>' ec2 describe-vpcs --filters Name=isDefault,Values=true \
    --query 'Vpcs[0].VpcId' --output text)
fi
[[ $vpc_id != None ]] || die "no default VPC in $region: pass --subnet-id"

group_id=$(aws_call '<security-group-id>' ec2 create-security-group --group-name "$name" \
  --description "PolyLLM GPU host $name: model port $port" --vpc-id "$vpc_id" \
  --tag-specifications "$(tags security-group)" --query GroupId --output text)
aws_call '' ec2 authorize-security-group-ingress --group-id "$group_id" \
  --protocol tcp --port "$port" --cidr "$allow_cidr" >/dev/null

extra=()
if [[ -n $key_name ]]; then
  aws_call '' ec2 authorize-security-group-ingress --group-id "$group_id" \
    --protocol tcp --port 22 --cidr "$allow_cidr" >/dev/null
  extra+=(--key-name "$key_name")
fi
[[ -n $subnet_id ]] && extra+=(--subnet-id "$subnet_id")

mapfile -t tag_specs < <(tags instance volume)
volume="[{\"DeviceName\":\"/dev/sdf\",\"Ebs\":{\"VolumeSize\":$volume_gb,\"VolumeType\":\"gp3\",\"DeleteOnTermination\":true}}]"
instance_id=$(aws_call '<instance-id>' ec2 run-instances --image-id "$ami" \
  --instance-type "$instance_type" --count 1 --security-group-ids "$group_id" \
  --iam-instance-profile "Name=$instance_profile" --block-device-mappings "$volume" \
  --metadata-options HttpTokens=required --user-data "file://$user_data_out" \
  --tag-specifications "${tag_specs[@]}" "${extra[@]}" \
  --query 'Instances[0].InstanceId' --output text)
aws_call '' ec2 wait instance-running --instance-ids "$instance_id" >/dev/null
address=$(aws_call '<public-dns-name>' ec2 describe-instances --instance-ids "$instance_id" \
  --query 'Reservations[0].Instances[0].PublicDnsName' --output text)
if [[ -z $address || $address == None ]]; then  # a subnet without public addresses
  address=$(aws_call '<private-ip>' ec2 describe-instances --instance-ids "$instance_id" \
    --query 'Reservations[0].Instances[0].PrivateIpAddress' --output text)
fi

url="http://$address:$port"
$dry_run && printf '\ndry run: nothing was created; the values in <> are placeholders\n'
cat <<DONE

$name ($instance_id) is starting m5 on its GPU at $url
It is ready when \`curl -s $url/health\` says "status": "ok" (first boot: ~10 minutes).
Add it to the router's registry (POLYLLM_REGISTRY), replacing the CPU m5:
  "m5": {"url": "$url", "backend": "gpu", "host": "$host", "tier": 5, "cost": 10}
Remove everything again: deploy/aws/teardown-gpu-host.sh --name $name --region $region
DONE
