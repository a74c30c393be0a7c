path "secret/+/team/+/config" {
  capabilities = ["read"]
}

path "secret/data/team-*" {
  capabilities = ["read", "list"]
  required_parameters = ["owner"]
  allowed_parameters = {
    "owner" = ["alice", "bob*"]
    "*"     = []
  }
  denied_parameters = {
    "admin" = []
  }
  min_wrapping_ttl = "1m"
  max_wrapping_ttl = "90s"
}

path "sys/policies/acl/*" {
  capabilities = ["create", "read", "update", "delete", "list", "sudo"]
}
