# An EC2 instance that installs and enrolls the Rampart agent on first boot,
# through cloud-init user data running the installer the cluster's nodes
# serve (GET /install.sh). The same user_data works for any provider whose
# images run cloud-init (google_compute_instance metadata.user-data,
# azurerm_linux_virtual_machine custom_data, ...).
#
#   terraform apply \
#     -var rampart_api=10.0.0.11:8443 \
#     -var "rampart_ca_pem=$(cat ca.crt)" \
#     -var "rampart_enrollment_token=$(ssh admin@bastion tokens create web --uses 1 --ttl 1h --quiet)" \
#     -var ami=ami-... -var subnet_id=subnet-...

terraform {
  required_version = ">= 1.3"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

variable "rampart_api" {
  description = "API address (IP:port) of a Rampart node that serves install.sh"
  type        = string
}

variable "rampart_ca_pem" {
  description = "The cluster CA certificate (PEM): /var/lib/rampart/tls/ca.crt on any node"
  type        = string
}

variable "rampart_enrollment_token" {
  description = "An enrollment token: ssh admin@bastion tokens create PROJECT --uses N --ttl 24h"
  type        = string
  sensitive   = true
  validation {
    condition     = can(regex("^rpt1_[A-Za-z0-9_-]+$", trimspace(var.rampart_enrollment_token)))
    error_message = "The enrollment token is one line starting with rpt1_."
  }
}

variable "ami" {
  description = "A Linux image that runs cloud-init, with curl and openssl"
  type        = string
}

variable "subnet_id" {
  type = string
}

variable "instance_type" {
  type    = string
  default = "t3.small"
}

locals {
  # User data can be read by whoever can describe the instance or reach its
  # metadata service: give the token few uses and a short life (a spent
  # token enrolls nothing), and the installer deletes its copy.
  rampart_user_data = "#cloud-config\n${yamlencode({
    write_files = [
      { path = "/etc/rampart/cluster-ca.pem", permissions = "0644", content = var.rampart_ca_pem },
      { path = "/root/rampart-enrollment.token", permissions = "0600", content = "${trimspace(var.rampart_enrollment_token)}\n" },
    ]
    runcmd = [
      ["bash", "-c", join(" ", [
        "set -o pipefail;",
        "curl -fsSL --retry 5 --cacert /etc/rampart/cluster-ca.pem https://${var.rampart_api}/install.sh",
        "| bash -s -- --token-file /root/rampart-enrollment.token",
        "&& rm -f /root/rampart-enrollment.token",
      ])],
    ]
  })}"
}

resource "aws_instance" "server" {
  ami                         = var.ami
  instance_type               = var.instance_type
  subnet_id                   = var.subnet_id
  user_data                   = local.rampart_user_data
  user_data_replace_on_change = true

  metadata_options {
    http_tokens = "required" # IMDSv2 only
  }

  tags = {
    Name = "rampart-enrolled"
  }
}

output "instance_id" {
  value = aws_instance.server.id
}
