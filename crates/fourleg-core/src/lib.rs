//! Shared vocabulary of fourleg.
//!
//! Everything that more than one crate needs and that carries a rule of the
//! house: secrets are types that never print or serialise themselves
//! ([`secret`]), the OAuth vocabulary is enums ([`oauth`]), and signed tokens
//! are verified and signed in one place ([`jose`]).

pub mod hash;
pub mod jose;
pub mod jwt;
pub mod oauth;
pub mod secret;

pub use secret::Secret;
