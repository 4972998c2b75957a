//! Bearer tokens: 256 random bits shown to the user once, stored as SHA-256.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// A freshly issued token and the hash to store.
pub struct IssuedToken {
    /// What the user sends in `authorization: token <token>`; never stored.
    pub token: String,
    /// `token_hash(token)`, what the database keeps.
    pub hash: String,
}

/// Issues a new random token.
pub fn issue_token() -> IssuedToken {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let hash = token_hash(&token);
    IssuedToken { token, hash }
}

/// The stored form of a token. Tokens carry 256 bits of entropy, so a plain
/// SHA-256 is enough: there is nothing to brute-force.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = issue_token();
        let b = issue_token();
        assert_eq!(a.token.len(), 64);
        assert_ne!(a.token, b.token);
        assert_eq!(a.hash, token_hash(&a.token));
        assert_ne!(a.hash, a.token);
    }
}
