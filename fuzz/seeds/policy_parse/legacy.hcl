path "secret/*" {
  policy = "write"
}
path "sys/*" {
  policy = "deny"
}
path "auth/token/lookup-self" {
  policy = "read"
}
