# An EC2 instance that installs the rampart-agent package and enrolls the
# server on first boot, through cloud-init user data: the package from where
# you host what `make packages` built, checked by its SHA-256, then the
# installer the cluster's nodes serve (GET /install.sh), which uses the
# package's binary and unit and writes the configuration. The same user_data works for any provider whose
# images run cloud-init (google_compute_instance metadata.user-data,
# azurerm_linux_virtual_machine custom_data, ...).
#
#   terraform apply \
#     -var rampart_api=10.0.0.11:8443 \
#     -var rampart_package_url=https://artifacts.example.com/rampart/rampart-agent_0.1.0_amd64.deb \
#     -var rampart_package_sha256=$(sha256sum dist/rampart-agent_0.1.0_amd64.deb | cut -d' ' -f1) \
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
  validation {
    condition     = can(regex("^([A-Za-z0-9.-]+|\\[[0-9A-Fa-f:.]+\\]):[0-9]{1,5}$", var.rampart_api))
    error_message = "The API address is host:port (a name, an IPv4 address or a bracketed IPv6 address)."
  }
}

variable "rampart_package_url" {
  description = "HTTPS URL of the rampart-agent .deb or .rpm (make packages) for the image's distribution"
  type        = string
  validation {
    condition     = can(regex("^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?/[A-Za-z0-9._~%+/-]*\\.(deb|rpm)$", var.rampart_package_url))
    error_message = "The package URL is https://host[:port]/path ending in .deb or .rpm, with letters, digits and . _ ~ % + - / only."
  }
}

variable "rampart_package_sha256" {
  description = "sha256sum of that package"
  type        = string
  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.rampart_package_sha256))
    error_message = "The package's SHA-256 is 64 lower-case hex digits."
  }
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
  description = "A Debian, Ubuntu or RHEL-family image that runs cloud-init, with curl and openssl"
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
  # The values the script uses, each quoted for the shell (validated above
  # to a safe character set as well): 'value' with every ' as '\''.
  rampart_sh = {
    for k, v in {
      url    = var.rampart_package_url
      pkg    = "/root/${basename(var.rampart_package_url)}"
      sha256 = var.rampart_package_sha256
      script = "https://${var.rampart_api}/install.sh"
    } : k => "'${replace(v, "'", "'\\''")}'"
  }
  # User data can be read by whoever can describe the instance or reach its
  # metadata service: give the token few uses and a short life (a spent
  # token enrolls nothing), and the installer deletes its copy.
  rampart_user_data = "#cloud-config\n${yamlencode({
    write_files = [
      { path = "/etc/rampart/cluster-ca.pem", permissions = "0644", content = var.rampart_ca_pem },
      { path = "/root/rampart-enrollment.token", permissions = "0600", content = "${trimspace(var.rampart_enrollment_token)}\n" },
    ]
    runcmd = [
      ["bash", "-c", join("\n", [
        "set -euo pipefail",
        "pkg=${local.rampart_sh.pkg}",
        "curl -fsSL --retry 5 -o \"$pkg\" ${local.rampart_sh.url}",
        "echo ${local.rampart_sh.sha256}'  '\"$pkg\" | sha256sum -c -",
        "case $pkg in *.deb) apt-get install -y \"$pkg\" ;; *.rpm) dnf install -y \"$pkg\" || yum install -y \"$pkg\" ;; esac",
        "rm -f \"$pkg\"",
        "curl -fsSL --retry 5 --cacert /etc/rampart/cluster-ca.pem ${local.rampart_sh.script} | bash -s -- --token-file /root/rampart-enrollment.token",
        "rm -f /root/rampart-enrollment.token",
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
