//! A real browser for the portal's tests: Debian's headless Chromium driven through
//! chromedriver (WebDriver), with blocking helpers and numbered screenshots.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use super::service::{free_port, wait_for, Proc};

/// A browser session. Everything waits for what it looks for (up to `timeout`), so
/// that tests read as steps, not as sleeps.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    _driver: Proc,
    base: String,
    shots: PathBuf,
    taken: usize,
    pub timeout: Duration,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium that trusts the server's
    /// self-signed certificate. Screenshots go to `shots`.
    pub fn start(base: &str, shots: PathBuf) -> Browser {
        Browser::start_with(base, shots, &[])
    }

    /// As [`Browser::start`], with more Chromium switches (`--force-dark-mode`).
    pub fn start_with(base: &str, shots: PathBuf, extra_args: &[&str]) -> Browser {
        for tool in ["chromium", "chromedriver"] {
            assert!(
                Command::new("sh")
                    .args(["-c", &format!("command -v {tool}")])
                    .stdout(Stdio::null())
                    .status()
                    .unwrap()
                    .success(),
                "{tool} is needed for the portal's tests: run scripts/install-deps.sh (Debian packages chromium and chromium-driver)"
            );
        }
        std::fs::create_dir_all(&shots).unwrap();
        let port = free_port();
        let driver = Proc(
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_for("chromedriver", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut args = vec![
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1280,1000",
            "--lang=en-US",
        ];
        args.extend_from_slice(extra_args);
        let caps = json!({
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args }
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let client = rt
            .block_on(
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps)
                    .connect(&format!("http://127.0.0.1:{port}")),
            )
            .expect("a Chromium session");
        Browser {
            rt,
            client: Some(client),
            _driver: driver,
            base: base.trim_end_matches('/').to_string(),
            shots,
            taken: 0,
            timeout: Duration::from_secs(30),
        }
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    pub fn goto(&self, path: &str) {
        self.rt
            .block_on(self.c().goto(&format!("{}{path}", self.base)))
            .unwrap();
    }

    /// The path (and query) of the page shown.
    pub fn path(&self) -> String {
        let u = self.rt.block_on(self.c().current_url()).unwrap();
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        }
    }

    /// Waits for `css` and returns its element.
    fn find(&self, css: &str) -> fantoccini::elements::Element {
        let started = Instant::now();
        loop {
            match self.rt.block_on(self.c().find(Locator::Css(css))) {
                Ok(e) => return e,
                Err(e) if started.elapsed() > self.timeout => {
                    panic!("no {css} on {} after {:?}: {e}", self.path(), self.timeout)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    pub fn exists(&self, css: &str) -> bool {
        self.rt
            .block_on(self.c().find_all(Locator::Css(css)))
            .map(|v| !v.is_empty())
            .unwrap_or(false)
    }

    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.rt.block_on(e.click()).unwrap();
    }

    /// Clicks the link or button whose text contains `text`.
    pub fn click_text(&self, text: &str) {
        let xpath = format!(
            "//a[contains(normalize-space(.), {q})] | //button[contains(normalize-space(.), {q})] | //summary[contains(normalize-space(.), {q})]",
            q = xpath_literal(text)
        );
        let started = Instant::now();
        loop {
            match self.rt.block_on(self.c().find(Locator::XPath(&xpath))) {
                Ok(e) => {
                    self.rt.block_on(e.click()).unwrap();
                    return;
                }
                Err(e) if started.elapsed() > self.timeout => {
                    panic!("nothing to click saying {text:?} on {}: {e}", self.path())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Replaces an input's value by typing.
    pub fn fill(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.rt.block_on(e.clear()).unwrap();
        self.rt.block_on(e.send_keys(text)).unwrap();
    }

    /// Sets an input's value directly (date pickers, whose typing depends on the locale).
    pub fn set_value(&self, css: &str, value: &str) {
        self.find(css);
        self.js(
            "const e = document.querySelector(arguments[0]); e.value = arguments[1]; e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true}));",
            vec![json!(css), json!(value)],
        );
    }

    pub fn select(&self, css: &str, value: &str) {
        let e = self.find(css);
        self.rt.block_on(e.select_by_value(value)).unwrap();
    }

    pub fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.rt.block_on(e.text()).unwrap()
    }

    /// The text of the whole page.
    pub fn page_text(&self) -> String {
        self.text("body")
    }

    /// Waits until `css`'s text contains `needle`; returns the text.
    pub fn wait_text(&self, css: &str, needle: &str) -> String {
        let started = Instant::now();
        loop {
            let t = self
                .rt
                .block_on(async {
                    let e = self.c().find(Locator::Css(css)).await?;
                    e.text().await
                })
                .unwrap_or_default();
            if t.contains(needle) {
                return t;
            }
            assert!(
                started.elapsed() < self.timeout,
                "{css} on {} never said {needle:?}; it says {t:?}",
                self.path()
            );
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    pub fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.rt.block_on(self.c().execute(script, args)).unwrap()
    }

    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        let e = self.find(css);
        self.rt.block_on(e.attr(name)).unwrap()
    }

    /// Screen-reader basics of the page shown: one `h1`, every control labelled,
    /// every table header scoped. Returns what is wrong.
    pub fn accessibility_problems(&self) -> Vec<String> {
        let v = self.js(
            "const out = [];
             const h1 = document.querySelectorAll('h1').length;
             if (h1 !== 1) out.push(`${h1} h1 elements`);
             for (const c of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
               if (c.labels.length === 0 && !c.getAttribute('aria-label') && !c.getAttribute('aria-labelledby'))
                 out.push(`unlabelled ${c.tagName.toLowerCase()} ${c.id || c.name}`);
             }
             for (const th of document.querySelectorAll('thead th')) {
               if (!th.getAttribute('scope')) out.push(`th without scope: ${th.textContent.trim()}`);
             }
             for (const b of document.querySelectorAll('button, a')) {
               if (!b.textContent.trim() && !b.getAttribute('aria-label')) out.push(`${b.tagName.toLowerCase()} without a name`);
             }
             return out;",
            vec![],
        );
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Saves a screenshot of the page as `NN-name.png`, after checking the page's
    /// screen-reader basics (every screenshot is of a page a person must be able to use).
    pub fn shot(&mut self, name: &str) {
        let problems = self.accessibility_problems();
        assert!(
            problems.is_empty(),
            "{} ({name}): {problems:?}",
            self.path()
        );
        self.taken += 1;
        let png = self.rt.block_on(self.c().screenshot()).unwrap();
        let path = self.shots.join(format!("{:02}-{name}.png", self.taken));
        std::fs::write(&path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(c.close());
        }
    }
}

/// A string as an XPath literal, whatever quotes it holds.
fn xpath_literal(s: &str) -> String {
    if !s.contains('"') {
        format!("\"{s}\"")
    } else if !s.contains('\'') {
        format!("'{s}'")
    } else {
        let parts: Vec<String> = s.split('"').map(|p| format!("\"{p}\"")).collect();
        format!("concat({})", parts.join(", '\"', "))
    }
}
