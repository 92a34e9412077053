#!/bin/bash
# First boot of the PolyLLM GPU host (cloud-init runs this once, as root). launch-gpu-host.sh
# fills in the values below. The NVIDIA driver comes with the AMI (AWS Deep Learning Base
# OSS Nvidia Driver GPU AMI); this adds what is missing: the /models volume, Docker, the NVIDIA
# Container Toolkit, then runs m5 on the GPU. Log: /var/log/cloud-init-output.log.
set -euxo pipefail

IMAGE='__IMAGE__'
MODEL_URI='__MODEL_URI__'
REGION='__REGION__'
M5_SHA256='__M5_SHA256__'
PORT=8105

# 1. The EBS volume for /models: the EBS disk that is not the root disk (on Nitro instances EBS
#    volumes are NVMe devices named by volume id; g5's instance store is another NVMe model).
root_disk=$(lsblk -no PKNAME "$(findmnt -no SOURCE /)")
data_disk=
for _ in $(seq 60); do
  for link in /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_*; do
    [[ -e $link && $link != *-part* && $link != *-ns-* ]] || continue
    disk=$(readlink -f "$link")
    [[ $(basename "$disk") == "$root_disk" ]] || data_disk=$disk
  done
  [[ -n $data_disk ]] && break
  sleep 2
done
[[ -n $data_disk ]] || { echo "no EBS data volume found for /models" >&2; exit 1; }
blkid "$data_disk" || mkfs.ext4 -L polyllm-models "$data_disk"
mkdir -p /models
grep -q polyllm-models /etc/fstab || echo "LABEL=polyllm-models /models ext4 defaults,nofail 0 2" >> /etc/fstab
mount /models || mountpoint -q /models
chown 10001:10001 /models  # the image's user

# 2. Docker and the NVIDIA Container Toolkit (the AMI usually has both; install what is missing).
export DEBIAN_FRONTEND=noninteractive
if ! command -v docker; then
  apt-get update
  apt-get install -y docker.io
fi
if ! command -v nvidia-ctk; then
  keyring=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
  curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey | gpg --dearmor -o "$keyring"
  curl -fsSL https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list \
    | sed "s#deb https://#deb [signed-by=$keyring] https://#g" \
    > /etc/apt/sources.list.d/nvidia-container-toolkit.list
  apt-get update
  apt-get install -y nvidia-container-toolkit
fi
nvidia-ctk runtime configure --runtime=docker
systemctl restart docker
nvidia-smi  # the driver sees the GPU, or this boot stops here

# 3. The image (from ECR with the instance profile's credentials, or any public registry).
if [[ $IMAGE == *.dkr.ecr.*.amazonaws.com/* ]]; then
  aws ecr get-login-password --region "$REGION" | docker login --username AWS --password-stdin "${IMAGE%%/*}"
fi
docker pull "$IMAGE"

# 4. m5 on the GPU. The service fetches MODEL_URI into /models at its first start (credentials:
#    the instance profile), verifies its sha256, offloads every layer, and refuses to start if
#    the GPU is not usable. /health turns 200 once it has generated.
extra=()
[[ -n $M5_SHA256 ]] && extra+=(-e "POLYLLM_M5_SHA256=$M5_SHA256")
docker rm -f polyllm-m5 || true
docker run -d --name polyllm-m5 --restart unless-stopped --gpus all \
  -p "$PORT:$PORT" -v /models:/models \
  -e MODEL_ID=m5 -e PORT="$PORT" -e USE_GPU=true -e MODEL_URI="$MODEL_URI" \
  -e AWS_REGION="$REGION" "${extra[@]}" "$IMAGE"
