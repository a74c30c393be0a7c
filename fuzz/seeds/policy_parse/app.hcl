# Application policy: read its own secrets, list the tree.
path "secret/data/app/*" {
  capabilities = ["create", "read", "update", "patch", "delete"]
}

path "secret/metadata/app/*" {
  capabilities = ["list", "read"]
}

path "secret/data/app/admin" {
  capabilities = ["deny"]
}
