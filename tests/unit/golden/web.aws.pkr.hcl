# Rendered by bakehouse from packer/aws.pkr.hcl.j2: edit the template, not this file.
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

variable "source_ami" {
  type        = string
  description = "Base AMI id, resolved by bakehouse from an owner-pinned filter or SSM parameter."
}

variable "security_group_id" {
  type        = string
  description = "The build instance's security group, made by bakehouse: SSH from the runner only."
}

variable "ssh_keypair_name" {
  type        = string
  description = "The build instance's key pair, made by bakehouse for this run only."
}

variable "ssh_private_key_file" {
  type        = string
  description = "Its private key, in the run's private folder."
}

variable "communicator" {
  type        = string
  default     = "ssh"
  description = "Only tests set this to none, to build against an emulated EC2 endpoint."
}

variable "ec2_endpoint" {
  type        = string
  default     = ""
  description = "Only tests set this, to point the build at an emulated EC2 endpoint."
}

source "amazon-ebs" "image" {
  region                    = "eu-west-1"
  ami_regions               = []
  source_ami                = var.source_ami
  instance_type             = "t3.small"
  communicator              = var.communicator
  ssh_username              = "admin"
  ssh_clear_authorized_keys = true
  ssh_keypair_name          = var.ssh_keypair_name
  ssh_private_key_file      = var.ssh_private_key_file
  security_group_id         = var.security_group_id
  custom_endpoint_ec2       = var.ec2_endpoint
  ami_name                  = format("bakehouse-%s-%s", "web", var.version)
  ami_virtualization_type   = "hvm"
  ena_support               = true
  sriov_support             = true
  encrypt_boot              = true
  run_tags = {
    "Name"                 = "bakehouse-build-web"
    "bakehouse:image"      = "web"
    "bakehouse:run-id"     = var.run_id
    "bakehouse:version"    = var.version
    "bakehouse:git-commit" = var.git_commit
  }
  run_volume_tags = {
    "Name"                 = "bakehouse-build-web"
    "bakehouse:image"      = "web"
    "bakehouse:run-id"     = var.run_id
    "bakehouse:version"    = var.version
    "bakehouse:git-commit" = var.git_commit
  }
  snapshot_tags = {
    "Name"                  = format("bakehouse-%s-%s", "web", var.version)
    "bakehouse:image"       = "web"
    "bakehouse:version"     = var.version
    "bakehouse:run-id"      = var.run_id
    "bakehouse:fingerprint" = var.fingerprint
    "bakehouse:base-ami"    = var.source_ami
    "bakehouse:git-commit"  = var.git_commit
    "bakehouse:state"       = "baked"
  }
  tags = {
    "Name"                  = format("bakehouse-%s-%s", "web", var.version)
    "bakehouse:image"       = "web"
    "bakehouse:version"     = var.version
    "bakehouse:run-id"      = var.run_id
    "bakehouse:fingerprint" = var.fingerprint
    "bakehouse:base-ami"    = var.source_ami
    "bakehouse:git-commit"  = var.git_commit
    "bakehouse:state"       = "baked"
  }

  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_type           = "gp3"
    volume_size           = 8
    iops                  = 3000
    throughput            = 125
    delete_on_termination = true
    encrypted             = true
  }

  # /var, /var/tmp, /var/log, /var/log/audit and /home (filesystems.sh); kept in the AMI
  launch_block_device_mappings {
    device_name           = "/dev/xvdf"
    volume_type           = "gp3"
    volume_size           = 4
    iops                  = 3000
    throughput            = 125
    delete_on_termination = true
    encrypted             = true
  }
}

build {
  name    = "web"
  sources = ["source.amazon-ebs.image"]

  provisioner "shell" {
    except           = var.communicator == "none" ? ["amazon-ebs.image"] : []
    execute_command  = "chmod +x {{ .Path }}; sudo -E env {{ .Vars }} {{ .Path }}"
    environment_vars = ["BAKEHOUSE_IMAGE=web", "BAKEHOUSE_TARGET=aws", "BAKEHOUSE_PATCH_POLICY=all", "BAKEHOUSE_PACKAGES=nginx-light", "BAKEHOUSE_SUITE=bookworm", "BAKEHOUSE_MANIFEST=/var/lib/bakehouse/manifest.json"]
    scripts          = [for s in ["patch.sh", "packages.sh", "web.sh", "harden.sh", "manifest.sh"] : "${var.scripts_dir}/${s}"]
  }

  provisioner "file" {
    except      = var.communicator == "none" ? ["amazon-ebs.image"] : []
    direction   = "download"
    source      = "/var/lib/bakehouse/manifest.json"
    destination = "${var.artifacts_dir}/manifest.json"
  }

  provisioner "shell" {
    except           = var.communicator == "none" ? ["amazon-ebs.image"] : []
    execute_command  = "chmod +x {{ .Path }}; sudo -E env {{ .Vars }} {{ .Path }}"
    environment_vars = ["BAKEHOUSE_IMAGE=web", "BAKEHOUSE_TARGET=aws", "BAKEHOUSE_PATCH_POLICY=all", "BAKEHOUSE_PACKAGES=nginx-light", "BAKEHOUSE_SUITE=bookworm", "BAKEHOUSE_MANIFEST=/var/lib/bakehouse/manifest.json"]
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
