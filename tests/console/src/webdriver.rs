//! A small W3C WebDriver client: the commands the console tests use, over
//! reqwest, against a chromedriver this module starts.
//!
//! <https://www.w3.org/TR/webdriver2/> is the reference; each method names
//! its endpoint. Waiting is polling ([`Browser::wait`]), so every wait has
//! a deadline and a description for its failure message.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// The key under which WebDriver sends an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one headless Chromium session in it; both
/// end when dropped (or, checked, with [`Browser::close`]).
pub struct Browser {
    driver: Child,
    /// `http://127.0.0.1:<port>/session/<id>`.
    session: String,
    http: reqwest::Client,
}

/// A WebDriver error answer, or a transport failure.
#[derive(Debug)]
pub struct WebDriverError {
    /// `no such element`, `stale element reference`, …; `transport` when
    /// chromedriver did not answer.
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

type Result<T> = std::result::Result<T, WebDriverError>;

/// The first of the candidates that exists, or of `PATH` for a bare name.
fn find_program(env: &str, candidates: &[&str]) -> Option<String> {
    if let Some(path) = std::env::var_os(env) {
        return Some(path.to_string_lossy().into_owned());
    }
    candidates
        .iter()
        .find(|c| {
            if c.contains('/') {
                Path::new(c).is_file()
            } else {
                std::env::var_os("PATH").is_some_and(|paths| {
                    std::env::split_paths(&paths).any(|dir| dir.join(c).is_file())
                })
            }
        })
        .map(|c| c.to_string())
}

impl Browser {
    /// Starts chromedriver on a free port (`--port=0`; it prints the one it
    /// took) and a headless Chromium session at `width`×`height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        const HOW: &str = "install Debian's chromium and chromium-driver \
                           (`apt-get install -y chromium chromium-driver`; tests/rig/install.sh does)";
        let chromedriver = find_program("CHROMEDRIVER", &["chromedriver", "/usr/bin/chromedriver"])
            .unwrap_or_else(|| panic!("chromedriver not found: {HOW}"));
        // The real binary, not Debian's /usr/bin/chromium wrapper script.
        let chromium = find_program(
            "CHROMIUM",
            &["/usr/lib/chromium/chromium", "chromium", "chromium-browser"],
        )
        .unwrap_or_else(|| panic!("chromium not found: {HOW}"));

        let mut driver = Command::new(&chromedriver)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{chromedriver} does not start: {e}"));
        let stdout = driver.stdout.take().expect("piped stdout");
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // "ChromeDriver was started successfully on port 41234." (an
            // earlier line says "on port 0").
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if let Some(port) = line
                    .split("started successfully on port ")
                    .nth(1)
                    .and_then(|rest| rest.trim_end_matches('.').trim().parse::<u16>().ok())
                {
                    let _ = port_tx.send(port);
                }
            }
        });
        let port = match port_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(port) => port,
            Err(_) => {
                let _ = driver.kill();
                panic!("{chromedriver} did not report its port within 20 s");
            }
        };
        let driver_url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .expect("an HTTP client");
        let mut browser = Browser {
            driver,
            session: String::new(),
            http,
        };
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                    "--disable-background-networking", "--disable-sync", "--lang=en-US",
                    format!("--window-size={width},{height}"),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
            "unhandledPromptBehavior": "dismiss",
        }}});
        let created = browser
            .raw("POST", &format!("{driver_url}/session"), Some(capabilities))
            .await
            .unwrap_or_else(|e| panic!("no Chromium session ({chromium}): {e}"));
        let id = created["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        browser.session = format!("{driver_url}/session/{id}");
        browser
    }

    async fn raw(&self, method: &str, url: &str, body: Option<Value>) -> Result<Value> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut req = self.http.request(method.clone(), url);
        // POSTs carry a JSON object, even an empty one.
        if method == reqwest::Method::POST {
            req = req.json(&body.unwrap_or_else(|| json!({})));
        }
        let transport = |e: reqwest::Error| WebDriverError {
            error: "transport".into(),
            message: e.to_string(),
        };
        let response = req.send().await.map_err(transport)?;
        let ok = response.status().is_success();
        let value: Value = response.json().await.map_err(transport)?;
        let value = value.get("value").cloned().unwrap_or(Value::Null);
        if ok {
            Ok(value)
        } else {
            Err(WebDriverError {
                error: value["error"].as_str().unwrap_or("unknown").to_owned(),
                message: value["message"]
                    .as_str()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned(),
            })
        }
    }

    /// A command of this session: `path` is relative to `/session/{id}`.
    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        self.raw(method, &format!("{}{path}", self.session), body)
            .await
    }

    /// Navigate To (`POST /url`).
    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .await
            .unwrap_or_else(|e| panic!("navigate to {url}: {e}"));
    }

    /// Get Current URL.
    pub async fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .await
            .expect("the current URL")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Find Elements by CSS selector (none: an empty list).
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element<'_>>> {
        let found = self
            .cmd(
                "POST",
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        Ok(found
            .as_array()
            .map(|all| {
                all.iter()
                    .filter_map(|e| e[ELEMENT].as_str())
                    .map(|id| Element {
                        browser: self,
                        id: id.to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Find Element by CSS selector.
    pub async fn find(&self, css: &str) -> Result<Element<'_>> {
        let found = self
            .cmd(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        Ok(Element {
            browser: self,
            id: found[ELEMENT].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// Execute Script (synchronous); `arguments[i]` in the script.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// The visible text of the first element matching `css` ("" if none).
    pub async fn text(&self, css: &str) -> String {
        match self.find(css).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Polls `check` every 100 ms until it returns `Some`, for at most
    /// `timeout`; on timeout panics with `what` and the last page text.
    pub async fn wait<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = check().await {
                return value;
            }
            if Instant::now() > deadline {
                let page = self.text("body").await;
                panic!(
                    "timed out after {timeout:?} waiting for {what}; at {}; the page reads:\n{page}",
                    self.url().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for an element matching `css` and returns it.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Element<'_> {
        self.wait(&format!("an element `{css}`"), timeout, || async {
            self.find(css).await.ok()
        })
        .await
    }

    /// Waits until the text of `css` satisfies `ok`; returns that text.
    pub async fn wait_text(
        &self,
        css: &str,
        what: &str,
        timeout: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> String {
        self.wait(&format!("{what} (`{css}`)"), timeout, || async {
            let text = self.find(css).await.ok()?.text().await.ok()?;
            ok(&text).then_some(text)
        })
        .await
    }

    /// A screenshot of the whole page, not only the viewport, written as a
    /// PNG file: Chromium's `Page.captureScreenshot` through chromedriver's
    /// CDP passthrough (W3C Take Screenshot stops at the viewport).
    pub async fn screenshot(&self, path: &Path) {
        let metrics = self.cdp("Page.getLayoutMetrics", json!({})).await;
        let size = &metrics["cssContentSize"];
        let (width, height) = (
            size["width"].as_f64().unwrap_or(1280.0).ceil(),
            size["height"].as_f64().unwrap_or(800.0).ceil(),
        );
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true,
                       "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("base64 text"))
            .expect("valid base64");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// A Chrome DevTools Protocol command (chromedriver's `goog/cdp/execute`).
    async fn cdp(&self, command: &str, params: Value) -> Value {
        self.cmd(
            "POST",
            "/goog/cdp/execute",
            Some(json!({"cmd": command, "params": params})),
        )
        .await
        .unwrap_or_else(|e| panic!("{command}: {e}"))
    }

    /// Get Window Handle: the current tab.
    pub async fn window(&self) -> String {
        let v = self
            .cmd("GET", "/window", None)
            .await
            .expect("a window handle");
        v.as_str().unwrap_or_default().to_owned()
    }

    /// New Window of type tab (not switched to): its handle.
    pub async fn new_tab(&self) -> String {
        let v = self
            .cmd("POST", "/window/new", Some(json!({"type": "tab"})))
            .await
            .expect("a new tab");
        v["handle"].as_str().unwrap_or_default().to_owned()
    }

    /// Switch To Window: the tab `handle` comes to the front.
    pub async fn switch_to(&self, handle: &str) {
        self.cmd("POST", "/window", Some(json!({ "handle": handle })))
            .await
            .expect("switch tabs");
    }

    /// Close Window: the current tab.
    pub async fn close_tab(&self) {
        self.cmd("DELETE", "/window", None)
            .await
            .expect("close the tab");
    }

    /// Set Window Rect.
    pub async fn resize(&self, width: u32, height: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await
        .expect("resize the window");
    }

    /// The browser's console messages since the last call (chromedriver's
    /// `goog:loggingPrefs` log): `(level, message)`.
    pub async fn console_log(&self) -> Vec<(String, String)> {
        let entries = self
            .cmd("POST", "/se/log", Some(json!({"type": "browser"})))
            .await
            .expect("the browser log");
        entries
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|e| {
                        (
                            e["level"].as_str().unwrap_or("").to_owned(),
                            e["message"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Ends the session (Chromium quits) and chromedriver.
    pub async fn close(mut self) {
        let _ = self.cmd("DELETE", "", None).await;
        self.session.clear();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    /// After a panic: end the session with a blocking request (no runtime
    /// to await on here), so Chromium does not outlive the test.
    fn drop(&mut self) {
        if !self.session.is_empty()
            && let Some(rest) = self.session.strip_prefix("http://")
            && let Some((host, path)) = rest.split_once('/')
            && let Ok(mut stream) = std::net::TcpStream::connect(host)
        {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                stream,
                "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.read(&mut [0u8; 512]);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// An element of the page (a WebDriver element reference).
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Element<'_> {
    fn path(&self, rest: &str) -> String {
        format!("/element/{}{rest}", self.id)
    }

    /// Element Click (scrolls it into view first, as the spec says).
    pub async fn click(&self) -> Result<()> {
        self.browser
            .cmd("POST", &self.path("/click"), None)
            .await
            .map(drop)
    }

    /// Element Clear.
    pub async fn clear(&self) -> Result<()> {
        self.browser
            .cmd("POST", &self.path("/clear"), None)
            .await
            .map(drop)
    }

    /// Element Send Keys: typed as a user would.
    pub async fn type_text(&self, text: &str) -> Result<()> {
        self.browser
            .cmd("POST", &self.path("/value"), Some(json!({ "text": text })))
            .await
            .map(drop)
    }

    /// Get Element Text (the rendered, visible text).
    pub async fn text(&self) -> Result<String> {
        let v = self.browser.cmd("GET", &self.path("/text"), None).await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// Get Element Attribute (`None` when absent).
    pub async fn attr(&self, name: &str) -> Result<Option<String>> {
        let v = self
            .browser
            .cmd("GET", &self.path(&format!("/attribute/{name}")), None)
            .await?;
        Ok(v.as_str().map(str::to_owned))
    }

    /// Get Element Property, e.g. `value` or `checked`.
    pub async fn prop(&self, name: &str) -> Result<Value> {
        self.browser
            .cmd("GET", &self.path(&format!("/property/{name}")), None)
            .await
    }

    /// Is Element Displayed.
    pub async fn displayed(&self) -> Result<bool> {
        let v = self
            .browser
            .cmd("GET", &self.path("/displayed"), None)
            .await?;
        Ok(v.as_bool().unwrap_or(false))
    }
}
