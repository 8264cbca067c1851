# hostagent as a Nomad system job: one agent on every eligible client node.
#
# The agent must run in the host's namespaces (it creates network namespaces,
# TAP devices and nftables tables, and starts Firecracker VMMs), so it uses the
# raw_exec driver (enable it on the clients: plugin "raw_exec" { config {
# enabled = true } }) restricted to nodes labelled for sandboxes. The binary
# comes from the .deb (deploy/package.sh) installed on the host image; Nomad
# only supervises it and delivers its certificates.
#
# Restarts: Nomad kills the task's process tree on stop. hostagent's VMMs run
# in their own sessions and cgroups, so they survive an agent restart and the
# new agent re-adopts them from /var/lib/hostagent. Use kill_signal SIGTERM so
# the agent drains (health NOT_SERVING, in-flight calls finish).
job "hostagent" {
  type        = "system"
  datacenters = ["*"]
  priority    = 90

  constraint {
    attribute = "${meta.sandbox_host}"
    value     = "true"
  }
  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }

  update {
    max_parallel     = 1           # one host at a time; sandboxes keep running
    min_healthy_time = "30s"
    healthy_deadline = "5m"
    auto_revert      = true
  }

  group "agent" {
    restart {
      attempts = 10
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    network {
      port "api" {
        static = 7443
      }
      port "metrics" {
        static = 9464
      }
    }

    service {
      name     = "hostagent"
      port     = "api"
      provider = "consul"
      tags     = ["grpc", "connect", "mtls"]
      meta {
        # The control plane lists hosts from the catalog (see OPERATIONS.md).
        node = "${node.unique.name}"
      }
      check {
        # gRPC health over mTLS (grpc.health.v1.Health/Check).
        type            = "grpc"
        port            = "api"
        interval        = "10s"
        timeout         = "2s"
        grpc_use_tls    = true
        tls_skip_verify = false
      }
    }

    task "hostagent" {
      driver       = "raw_exec"
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      config {
        command = "/usr/sbin/hostagent"
        args = [
          "--config", "/etc/hostagent/hostagent.conf",
          "--listen", "0.0.0.0:${NOMAD_PORT_api}",
          "--tls-cert", "${NOMAD_SECRETS_DIR}/server.pem",
          "--tls-key", "${NOMAD_SECRETS_DIR}/server.key",
          "--client-ca", "${NOMAD_SECRETS_DIR}/ca.pem",
          "--metrics-listen", "127.0.0.1:${NOMAD_PORT_metrics}",
          "--state-dir", "/var/lib/hostagent",
          "--run-dir", "/run/hostagent",
          "--log-format", "json",
        ]
      }

      # Certificates from Vault's PKI engine; on renewal Nomad re-renders the
      # files and sends SIGHUP, which hostagent handles by reloading them
      # (open connections keep their old certificate).
      vault {
        policies = ["hostagent-pki"]
      }
      template {
        data        = <<-EOT
          {{ with secret "pki/issue/hostagent" (printf "common_name=%s" (env "node.unique.name")) "ttl=72h" }}{{ .Data.certificate }}{{ end }}
        EOT
        destination = "secrets/server.pem"
        change_mode = "signal"
        change_signal = "SIGHUP"
      }
      template {
        data        = <<-EOT
          {{ with secret "pki/issue/hostagent" (printf "common_name=%s" (env "node.unique.name")) "ttl=72h" }}{{ .Data.private_key }}{{ end }}
        EOT
        destination = "secrets/server.key"
        perms       = "0600"
        change_mode = "signal"
        change_signal = "SIGHUP"
      }
      template {
        data        = <<-EOT
          {{ with secret "pki/cert/ca" }}{{ .Data.certificate }}{{ end }}
        EOT
        destination = "secrets/ca.pem"
        change_mode = "signal"
        change_signal = "SIGHUP"
      }

      resources {
        cpu    = 500       # the agent itself; guests are accounted by its own admission
        memory = 512
      }
    }
  }
}
