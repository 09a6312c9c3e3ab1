//! The guided labs: `fourleg lab <n>`.
//!
//! A lab is data (`labs/<n>/lab.toml`, see [`def`]): steps a learner does
//! in the browser, with `curl` or with `fourleg`, each checked against the
//! real lab ([`check`]): the demo chain's journal, Keycloak's events. `--auto`
//! performs every step itself ([`auto`]) through the same checks.

pub mod auto;
pub mod check;
pub mod def;
pub mod progress;

pub use check::{Env, KeycloakAdmin, Outcome, Since};
pub use def::{Action, Check, Lab, Step};
pub use progress::Progress;

/// Runs every check of `step`.
pub async fn check_step(step: &Step, env: &Env, since: Since) -> Vec<Outcome> {
    let mut out = Vec::new();
    for c in &step.checks {
        out.push(check::run(c, env, since).await);
    }
    out
}
