//! Authentication: who is calling. Tokens are the one credential every request
//! carries; auth methods (Kubernetes, later) exchange other proofs for tokens.

pub mod token;
