# Rendered by bakehouse from packer/aws.pkr.hcl.j2: edit the template, not this file.
# bakehouse launches the build instance (IMDSv2 only, encrypted volumes, tagged at launch),
# Packer provisions it over SSH, and bakehouse makes the AMI and its region copies, tagged as
# they are made: see src/bakehouse/aws/build.py for why not Packer's amazon-ebs builder.
packer {
  required_version = ">= 1.6.6"
}

variable "run_id" {
  type        = string
  description = "Id of this bake; tags and names every temporary resource."
}

variable "version" {
  type        = string
  description = "Version of the image being baked."
}

variable "artifacts_dir" {
  type        = string
  description = "Folder that receives the manifest and Packer's own manifest."
}

variable "scripts_dir" {
  type        = string
  description = "Folder holding the provisioning scripts (packer/scripts)."
}

variable "git_commit" {
  type    = string
  default = "unknown"
}

variable "fingerprint" {
  type    = string
  default = "unknown"
}

variable "ssh_host" {
  type        = string
  description = "The build instance's address, launched by bakehouse for this run."
}

variable "ssh_private_key_file" {
  type        = string
  description = "The run's key pair's private key, in the run's private folder."
}

variable "communicator" {
  type        = string
  default     = "ssh"
  description = "Only tests set this to none, to build against an emulated EC2 endpoint."
}

source "null" "image" {
  communicator         = var.communicator
  ssh_host             = var.ssh_host
  ssh_username         = "admin"
  ssh_private_key_file = var.ssh_private_key_file
  ssh_timeout          = "15m"
}

build {
  name    = "base"
  sources = ["source.null.image"]

  provisioner "shell" {
    except           = var.communicator == "none" ? ["null.image"] : []
    execute_command  = "chmod +x {{ .Path }}; sudo -E env {{ .Vars }} {{ .Path }}"
    environment_vars = ["BAKEHOUSE_IMAGE=base", "BAKEHOUSE_TARGET=aws", "BAKEHOUSE_PATCH_POLICY=all", "BAKEHOUSE_PACKAGES=", "BAKEHOUSE_SUITE=trixie", "BAKEHOUSE_SECURITY_SOURCE=deb http://deb.debian.org/debian-security trixie-security main", "BAKEHOUSE_MANIFEST=/var/lib/bakehouse/manifest.json", "BAKEHOUSE_FILESYSTEMS=bh-var /var 35 nodev,nosuid;bh-vartmp /var/tmp 10 nodev,nosuid,noexec;bh-varlog /var/log 25 nodev,nosuid,noexec;bh-audit /var/log/audit 15 nodev,nosuid,noexec;bh-home /home 15 nodev,nosuid"]
    scripts          = [for s in ["patch.sh", "packages.sh", "harden.sh", "manifest.sh"] : "${var.scripts_dir}/${s}"]
  }

  provisioner "file" {
    except      = var.communicator == "none" ? ["null.image"] : []
    direction   = "download"
    source      = "/var/lib/bakehouse/manifest.json"
    destination = "${var.artifacts_dir}/manifest.json"
  }

  provisioner "shell" {
    except           = var.communicator == "none" ? ["null.image"] : []
    execute_command  = "chmod +x {{ .Path }}; sudo -E env {{ .Vars }} {{ .Path }}"
    environment_vars = ["BAKEHOUSE_IMAGE=base", "BAKEHOUSE_TARGET=aws", "BAKEHOUSE_PATCH_POLICY=all", "BAKEHOUSE_PACKAGES=", "BAKEHOUSE_SUITE=trixie", "BAKEHOUSE_SECURITY_SOURCE=deb http://deb.debian.org/debian-security trixie-security main", "BAKEHOUSE_MANIFEST=/var/lib/bakehouse/manifest.json", "BAKEHOUSE_FILESYSTEMS=bh-var /var 35 nodev,nosuid;bh-vartmp /var/tmp 10 nodev,nosuid,noexec;bh-varlog /var/log 25 nodev,nosuid,noexec;bh-audit /var/log/audit 15 nodev,nosuid,noexec;bh-home /home 15 nodev,nosuid"]
    scripts          = [for s in ["hostkeys.sh", "cleanup.sh", "filesystems.sh"] : "${var.scripts_dir}/${s}"]
  }

  post-processor "manifest" {
    output     = "${var.artifacts_dir}/packer-manifest.json"
    strip_path = false
    custom_data = {
      image       = "base"
      version     = var.version
      run_id      = var.run_id
      fingerprint = var.fingerprint
      git_commit  = var.git_commit
    }
  }
}
