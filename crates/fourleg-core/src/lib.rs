//! Shared vocabulary of fourleg.
//!
//! Everything that more than one crate needs and that carries a rule of the
//! house: secrets are types that never print themselves.

pub mod hash;
pub mod jose;
pub mod jwt;
pub mod secret;

pub use secret::Secret;
