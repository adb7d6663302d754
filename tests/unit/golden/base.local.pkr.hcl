# Rendered by bakehouse from packer/local.pkr.hcl.j2: edit the template, not this file.
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

variable "root_dir" {
  type        = string
  description = "The image's root filesystem, unpacked from the base by bakehouse; every script runs in a chroot of it."
}

variable "in_root" {
  type        = string
  description = "The runner that runs one script in that chroot (packer/local/in-root.sh)."
}

# The scripts run on this machine, in a chroot of the image's root filesystem, at native speed:
# no build VM. bakehouse then lays out the root and data disks from it, and the verify boot of
# those disks proves the image.
source "null" "image" {
  communicator = "none"
}

build {
  name    = "base"
  sources = ["source.null.image"]

  # the package steps, with this machine's network (apt)
  provisioner "shell-local" {
    execute_command = concat(["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--ipc", "--uts", "--", "/bin/sh"], [var.in_root, var.root_dir, "{{.Script}}"], ["BAKEHOUSE_IMAGE=base", "BAKEHOUSE_TARGET=local", "BAKEHOUSE_PATCH_POLICY=all", "BAKEHOUSE_PACKAGES=", "BAKEHOUSE_SUITE=trixie", "BAKEHOUSE_SECURITY_SOURCE=deb http://deb.debian.org/debian-security trixie-security main", "BAKEHOUSE_MANIFEST=/var/lib/bakehouse/manifest.json", "BAKEHOUSE_FILESYSTEMS=bh-var /var 35 nodev,nosuid;bh-vartmp /var/tmp 10 nodev,nosuid,noexec;bh-varlog /var/log 25 nodev,nosuid,noexec;bh-audit /var/log/audit 15 nodev,nosuid,noexec;bh-home /home 15 nodev,nosuid"])
    scripts         = [for s in ["patch.sh", "packages.sh"] : "${var.scripts_dir}/${s}"]
  }

  # every later step in a network namespace of its own: nothing it does reaches this machine's
  provisioner "shell-local" {
    execute_command = concat(["unshare", "--net", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--ipc", "--uts", "--", "/bin/sh"], [var.in_root, var.root_dir, "{{.Script}}"], ["BAKEHOUSE_IMAGE=base", "BAKEHOUSE_TARGET=local", "BAKEHOUSE_PATCH_POLICY=all", "BAKEHOUSE_PACKAGES=", "BAKEHOUSE_SUITE=trixie", "BAKEHOUSE_SECURITY_SOURCE=deb http://deb.debian.org/debian-security trixie-security main", "BAKEHOUSE_MANIFEST=/var/lib/bakehouse/manifest.json", "BAKEHOUSE_FILESYSTEMS=bh-var /var 35 nodev,nosuid;bh-vartmp /var/tmp 10 nodev,nosuid,noexec;bh-varlog /var/log 25 nodev,nosuid,noexec;bh-audit /var/log/audit 15 nodev,nosuid,noexec;bh-home /home 15 nodev,nosuid"])
    scripts         = [for s in ["harden.sh", "manifest.sh"] : "${var.scripts_dir}/${s}"]
  }

  provisioner "shell-local" {
    execute_command = concat(["unshare", "--net", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--ipc", "--uts", "--", "/bin/sh"], [var.in_root, var.root_dir, "{{.Script}}"], ["BAKEHOUSE_IMAGE=base", "BAKEHOUSE_TARGET=local", "BAKEHOUSE_PATCH_POLICY=all", "BAKEHOUSE_PACKAGES=", "BAKEHOUSE_SUITE=trixie", "BAKEHOUSE_SECURITY_SOURCE=deb http://deb.debian.org/debian-security trixie-security main", "BAKEHOUSE_MANIFEST=/var/lib/bakehouse/manifest.json", "BAKEHOUSE_FILESYSTEMS=bh-var /var 35 nodev,nosuid;bh-vartmp /var/tmp 10 nodev,nosuid,noexec;bh-varlog /var/log 25 nodev,nosuid,noexec;bh-audit /var/log/audit 15 nodev,nosuid,noexec;bh-home /home 15 nodev,nosuid"])
    scripts         = [for s in ["hostkeys.sh", "cleanup.sh"] : "${var.scripts_dir}/${s}"]
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
