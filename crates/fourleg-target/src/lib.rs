//! Targets of fourleg: the profile format ([`profile`]) and a connected
//! [`Target`] that makes the requests scenarios need, each with redacted
//! [`evidence`].

pub mod contract;
pub mod evidence;
pub mod load;
pub mod login;
pub mod profile;
mod target;

pub use contract::{Contract, Gap, Identity, Recipe, TokenFacts};
pub use evidence::HttpEvidence;
pub use load::{Connection, ExchangeRequest, Reply};
pub use profile::{Profile, ProfileError};
pub use target::{
    token_type, ClientAuthMode, FormValue, LabContext, Outcome, ResolvedEndpoints, Target, TargetError,
    TOKEN_EXCHANGE_GRANT,
};
