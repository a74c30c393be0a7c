path "a" { capabilities = ["fly"] }
