path "a" {
  capabilities = ["read"
