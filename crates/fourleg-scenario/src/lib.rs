//! Scenarios of fourleg: the format ([`scenario`]), the rule registry
//! ([`requirement`]), the engine that runs a scenario against a target
//! ([`engine`]), the named checks ([`checks`]), hostile tokens ([`forge`]),
//! the runner ([`runner`]) and the results every report renders ([`result`]).

pub mod checks;
pub mod engine;
pub mod forge;
pub mod requirement;
pub mod result;
pub mod runner;
pub mod scenario;

pub use engine::{Engine, TargetDown};
pub use requirement::{Level, Registry};
pub use result::{IdentityRecord, IdentitySource, Prelude, Run, ScenarioResult, Status};
pub use scenario::Scenario;
