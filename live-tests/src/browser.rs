//! A headless Chromium (Debian `chromium` and `chromium-driver`) driven over
//! WebDriver, for the tests that look at the HTML report in a real browser.
//!
//! Nothing outlives a [`Driver`]: chromedriver runs in a process group of
//! its own, which Chromium and its helpers inherit, and the whole group is
//! killed on drop (after a clean `quit` when the test got that far), even
//! when the test fails; the browser profile is a temporary directory removed
//! with it.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use base64::Engine as _;
use serde_json::{json, Value};

/// A WebDriver session on a headless Chromium.
#[derive(Debug)]
pub struct Driver {
    child: Child,
    base: String,
    session: Option<String>,
    http: reqwest::Client,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The negative pid names the process group: chromedriver, Chromium
        // and every helper process Chromium started.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| std::env::split_paths(&path).map(|d| d.join(n)).find(|p| p.is_file()))
}

impl Driver {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start() -> anyhow::Result<Self> {
        let driver = which(&["chromedriver"]).context(
            "chromedriver not found: install Debian's chromium and chromium-driver (`apt-get install chromium chromium-driver`)",
        )?;
        let browser = which(&["chromium", "chromium-browser", "google-chrome"])
            .context("chromium not found: `apt-get install chromium`")?;
        let port = fourleg_lab::free_port()?;
        let profile = std::env::temp_dir().join(format!("fourleg-chromium-{}-{port}", std::process::id()));
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        let http = reqwest::Client::builder().no_proxy().build()?;
        let base = format!("http://127.0.0.1:{port}");
        // From here on, Drop cleans up whatever fails.
        let mut me = Self { child, base, session: None, http, profile };
        let deadline = Instant::now() + Duration::from_secs(20);
        while me.http.get(format!("{}/status", me.base)).send().await.is_err() {
            if Instant::now() > deadline {
                bail!("chromedriver did not answer on {}", me.base);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": browser,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--window-size=1400,1000", format!("--user-data-dir={}", me.profile.display())]
            }
        }}});
        let resp: Value = me.http.post(format!("{}/session", me.base)).json(&caps).send().await?.json().await?;
        me.session =
            Some(resp["value"]["sessionId"].as_str().with_context(|| format!("no session: {resp}"))?.to_owned());
        Ok(me)
    }

    /// A WebDriver command of the session.
    pub async fn cmd(&self, method: reqwest::Method, path: &str, body: Value) -> anyhow::Result<Value> {
        let session = self.session.as_deref().context("no session")?;
        let url = format!("{}/session/{session}/{path}", self.base);
        let mut req = self.http.request(method, url);
        if !body.is_null() {
            req = req.json(&body);
        }
        let resp: Value = req.send().await?.json().await?;
        if let Some(e) = resp["value"].get("error") {
            bail!("webdriver {path}: {e}: {}", resp["value"]["message"]);
        }
        Ok(resp["value"].clone())
    }

    /// Opens a URL (`file://…` for a report).
    pub async fn open(&self, url: &str) -> anyhow::Result<()> {
        self.cmd(reqwest::Method::POST, "url", json!({"url": url})).await.map(|_| ())
    }

    /// Runs `script` in the page and returns its value.
    pub async fn js(&self, script: &str) -> anyhow::Result<Value> {
        self.cmd(reqwest::Method::POST, "execute/sync", json!({"script": script, "args": []})).await
    }

    /// Saves a PNG under `target/report-screenshots/`.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<()> {
        let png = self.cmd(reqwest::Method::GET, "screenshot", Value::Null).await?;
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/report-screenshots");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join(name),
            base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default())?,
        )?;
        Ok(())
    }

    /// Console messages at level SEVERE.
    pub async fn severe_logs(&self) -> anyhow::Result<Vec<String>> {
        let logs = self.cmd(reqwest::Method::POST, "se/log", json!({"type": "browser"})).await?;
        Ok(logs
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| l["level"] == "SEVERE")
            .map(|l| l["message"].to_string())
            .collect())
    }

    /// Ends the session cleanly (Chromium exits); drop does the rest.
    pub async fn quit(mut self) {
        if let Some(session) = self.session.take() {
            let _ = self.http.delete(format!("{}/session/{session}", self.base)).send().await;
        }
    }
}
