//! `--auto`: performs a step as a learner would, through the demo chain's
//! web app and the real login page (no shortcut to a token endpoint).

use std::collections::BTreeMap;

use fourleg_core::Secret;
use fourleg_target::login::LoginPage;
use fourleg_target::profile::LoginForm;
use reqwest::header;

use crate::def::Action;

/// A scripted browser session on lab-web: one cookie jar for the whole lab.
#[derive(Debug)]
pub struct Browser {
    http: reqwest::Client,
    web: url::Url,
    passwords: BTreeMap<String, Secret>,
    fourleg: Option<Fourleg>,
}

/// How to run `fourleg` on this lab: the binary and its state directory.
#[derive(Debug, Clone)]
pub struct Fourleg {
    pub bin: std::path::PathBuf,
    pub state_dir: std::path::PathBuf,
}

/// Why an automatic action could not be done (the check that follows says
/// what is missing in the lab).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AutoError(String);

impl Browser {
    /// A session on the web app at `web`, logging in with `passwords`.
    pub fn new(web: &str, passwords: BTreeMap<String, Secret>, fourleg: Option<Fourleg>) -> Result<Self, AutoError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .cookie_store(true)
            .timeout(std::time::Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a TLS backend is compiled in");
        let web = url::Url::parse(web).map_err(|e| AutoError(format!("the web app's URL {web}: {e}")))?;
        Ok(Self { http, web, passwords, fourleg })
    }

    /// Sends `req` and follows redirects (resolving relative `Location`s),
    /// returning the final page's URL, status and body.
    async fn follow(&self, mut req: reqwest::RequestBuilder) -> Result<(url::Url, u16, String), AutoError> {
        for _ in 0..12 {
            let resp = req.send().await.map_err(|e| AutoError(format!("request failed: {}", e.without_url())))?;
            let url = resp.url().clone();
            if resp.status().is_redirection() {
                let loc = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| AutoError(format!("a redirect from {} without Location", url.path())))?;
                let next = url.join(loc).map_err(|e| AutoError(format!("a redirect to a bad URL: {e}")))?;
                req = self.http.get(next).header(header::ACCEPT, "text/html");
                continue;
            }
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            return Ok((url, status, body));
        }
        Err(AutoError("more than 12 redirects".into()))
    }

    fn at(&self, path: &str) -> url::Url {
        self.web.join(path).expect("a path joins a base URL")
    }

    /// Performs one action.
    pub async fn perform(&self, action: &Action) -> Result<(), AutoError> {
        match action {
            Action::Login { user } => self.login(user).await,
            Action::Ask { what } => {
                let (_, status, _) =
                    self.follow(self.http.post(self.at("/ask")).form(&[("action", what.as_str())])).await?;
                ok_page(status, "asking the agent")
            }
            Action::Replay => {
                let (_, status, _) = self.follow(self.http.post(self.at("/replay"))).await?;
                ok_page(status, "the replay")
            }
            Action::LogoutEverywhere => {
                let (_, status, _) = self.follow(self.http.post(self.at("/logout-everywhere"))).await?;
                ok_page(status, "the logout")
            }
            Action::Fourleg { args } => {
                let f = self.fourleg.as_ref().ok_or_else(|| AutoError("no fourleg binary to run".into()))?;
                let out = tokio::process::Command::new(&f.bin)
                    .args(args)
                    .arg("--state-dir")
                    .arg(&f.state_dir)
                    .output()
                    .await
                    .map_err(|e| AutoError(format!("cannot run {}: {e}", f.bin.display())))?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(AutoError(format!(
                        "`fourleg {}` failed ({}): {}",
                        args.join(" "),
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    )))
                }
            }
        }
    }

    async fn login(&self, user: &str) -> Result<(), AutoError> {
        let password = self
            .passwords
            .get(user)
            .ok_or_else(|| AutoError(format!("no password for {user} in the lab's credentials")))?;
        let (page_url, status, html) =
            self.follow(self.http.get(self.at("/login")).header(header::ACCEPT, "text/html")).await?;
        if page_url.origin() == self.web.origin() {
            // Already logged in at the login server: back at the app.
            return ok_page(status, "the login");
        }
        let form = LoginPage::parse(&html, &LoginForm::default())
            .ok_or_else(|| AutoError(format!("no login form on {} (status {status})", page_url.path())))?;
        let action = page_url
            .join(form.action.as_deref().unwrap_or(""))
            .map_err(|e| AutoError(format!("the login form's action: {e}")))?;
        let fields = form.filled(user, password.expose());
        let (end, status, _) =
            self.follow(self.http.post(action).header(header::ACCEPT, "text/html").form(&fields)).await?;
        if end.origin() != self.web.origin() {
            return Err(AutoError(format!(
                "the login did not return to lab-web (ended on {} with {status})",
                end.path()
            )));
        }
        ok_page(status, "the login")
    }
}

fn ok_page(status: u16, what: &str) -> Result<(), AutoError> {
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(AutoError(format!("{what} ended on a page with status {status}")))
    }
}
