//! The token store.
//!
//! A token is 32 random bytes shown once as `cairn.<base64url>`. Only its salted
//! HMAC-SHA256 is stored (`id/<hmac hex>`), so a storage dump yields no usable
//! token, and lookups compare HMACs rather than tokens. Indexes: `accessor/<id>`
//! -> token hash, `parent/<parent hash>/<child hash>` for revoking a tree.

mod entry;
mod params;
mod store;

pub use entry::{TokenEntry, TokenType};
pub use params::{CreateParams, DurationParam};
pub use store::{IssuedToken, RevocationHook, TokenError, TokenStore, DEFAULT_TTL};
