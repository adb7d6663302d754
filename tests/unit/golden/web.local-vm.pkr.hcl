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

variable "output_dir" {
  type        = string
  description = "Folder Packer creates for the disk image; must not exist yet."
}

variable "base_image" {
  type        = string
  description = "Path of the base qcow2 disk."
}

variable "base_checksum" {
  type        = string
  description = "sha256:<hex> of the base disk, checked by Packer before use."
}

variable "kernel" {
  type        = string
  description = "Kernel of the base image, for direct kernel boot."
}

variable "initrd" {
  type        = string
  description = "Initial ramdisk of the base image."
}

variable "ssh_private_key_file" {
  type        = string
  description = "Ephemeral private key of this bake (never baked in)."
}

variable "ssh_public_key_b64" {
  type        = string
  description = "Ephemeral public key, base64, handed to the guest on the kernel command line."
}

variable "console_log" {
  type        = string
  description = "qemu character device for the guest's serial console (file:<path>), kept with a failed run's logs."
}

variable "accelerator" {
  type    = string
  default = "tcg"
}

variable "cpu_model" {
  type    = string
  default = "max"
}

source "qemu" "image" {
  vm_name              = "web.qcow2"
  disk_image           = true
  iso_url              = var.base_image
  iso_checksum         = var.base_checksum
  use_backing_file     = false
  format               = "qcow2"
  disk_size            = "4096M"
  disk_additional_size = ["2048M"]
  disk_interface       = "virtio"
  disk_compression     = false
  skip_compaction      = true
  disk_cache           = "unsafe"
  disk_discard         = "unmap"
  boot_wait            = "1s"
  net_device           = "virtio-net"
  accelerator          = var.accelerator
  cpus                 = 2
  memory               = 1024
  headless             = true
  disable_vnc          = true
  output_directory     = var.output_dir
  communicator         = "ssh"
  ssh_username         = "admin"
  ssh_private_key_file = var.ssh_private_key_file
  ssh_timeout          = "900s"
  shutdown_command     = "sudo systemctl poweroff"
  shutdown_timeout     = "5m"
  qemuargs = [
    ["-kernel", var.kernel],
    ["-initrd", var.initrd],
    ["-append", format("%s bakehouse.ssh_key=%s", "root=/dev/vda rw console=ttyS0 panic=-1 module_blacklist=kvm,kvm_amd,kvm_intel", var.ssh_public_key_b64)],
    ["-no-reboot"],
    ["-cpu", var.cpu_model],
    ["-netdev", "user,id=user.0,hostfwd=tcp:127.0.0.1:{{ .SSHHostPort }}-:22"],
    ["-device", "virtio-rng-pci"],
    ["-serial", var.console_log],
    ["-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"],
  ]
}

build {
  name    = "web"
  sources = ["source.qemu.image"]

  provisioner "shell" {
    execute_command  = "chmod +x {{ .Path }}; sudo -E env {{ .Vars }} {{ .Path }}"
    environment_vars = ["BAKEHOUSE_IMAGE=web", "BAKEHOUSE_TARGET=local", "BAKEHOUSE_PATCH_POLICY=all", "BAKEHOUSE_PACKAGES=nginx-light", "BAKEHOUSE_SUITE=trixie", "BAKEHOUSE_SECURITY_SOURCE=deb http://deb.debian.org/debian-security trixie-security main", "BAKEHOUSE_MANIFEST=/var/lib/bakehouse/manifest.json", "BAKEHOUSE_FILESYSTEMS=bh-var /var 35 nodev,nosuid;bh-vartmp /var/tmp 10 nodev,nosuid,noexec;bh-varlog /var/log 25 nodev,nosuid,noexec;bh-audit /var/log/audit 15 nodev,nosuid,noexec;bh-home /home 15 nodev,nosuid"]
    scripts          = [for s in ["patch.sh", "packages.sh", "web.sh", "harden.sh", "manifest.sh"] : "${var.scripts_dir}/${s}"]
  }

  provisioner "file" {
    direction   = "download"
    source      = "/var/lib/bakehouse/manifest.json"
    destination = "${var.artifacts_dir}/manifest.json"
  }

  provisioner "file" {
    direction   = "download"
    source      = "/var/lib/bakehouse/boot/vmlinuz"
    destination = "${var.artifacts_dir}/vmlinuz"
  }

  provisioner "file" {
    direction   = "download"
    source      = "/var/lib/bakehouse/boot/initrd.img"
    destination = "${var.artifacts_dir}/initrd.img"
  }

  provisioner "shell" {
    execute_command  = "chmod +x {{ .Path }}; sudo -E env {{ .Vars }} {{ .Path }}"
    environment_vars = ["BAKEHOUSE_IMAGE=web", "BAKEHOUSE_TARGET=local", "BAKEHOUSE_PATCH_POLICY=all", "BAKEHOUSE_PACKAGES=nginx-light", "BAKEHOUSE_SUITE=trixie", "BAKEHOUSE_SECURITY_SOURCE=deb http://deb.debian.org/debian-security trixie-security main", "BAKEHOUSE_MANIFEST=/var/lib/bakehouse/manifest.json", "BAKEHOUSE_FILESYSTEMS=bh-var /var 35 nodev,nosuid;bh-vartmp /var/tmp 10 nodev,nosuid,noexec;bh-varlog /var/log 25 nodev,nosuid,noexec;bh-audit /var/log/audit 15 nodev,nosuid,noexec;bh-home /home 15 nodev,nosuid"]
    scripts          = [for s in ["hostkeys.sh", "cleanup.sh", "filesystems.sh"] : "${var.scripts_dir}/${s}"]
  }

  post-processor "manifest" {
    output     = "${var.artifacts_dir}/packer-manifest.json"
    strip_path = false
    custom_data = {
      image       = "web"
      version     = var.version
      run_id      = var.run_id
      fingerprint = var.fingerprint
      git_commit  = var.git_commit
    }
  }
}
