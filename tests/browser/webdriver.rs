//! A small W3C WebDriver client for ChromeDriver: HTTP/1.1 with JSON over a loopback socket, only the
//! commands the browser test uses. A command that fails panics with ChromeDriver's answer (the test fails).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
    selector: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn request(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to chromedriver");
    stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let status: u16 = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status code");
    let mut length = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            }
        }
    }
    let mut bytes = Vec::new();
    match length {
        Some(n) => {
            bytes.resize(n, 0);
            reader.read_exact(&mut bytes).expect("body");
        }
        None => {
            reader.read_to_end(&mut bytes).expect("body");
        }
    }
    let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("json answer") };
    (status, value)
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium that accepts the edge's own certificate (the browser of a
    /// plant PC is told to trust it once; the test has no such PC).
    pub fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start /usr/bin/chromedriver (apt-get install chromium chromium-driver)");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok()
                && request(port, "GET", "/status", None).1["value"]["ready"] == true
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not become ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--no-first-run", "--disable-extensions"]
            }
        }}});
        let (status, answer) = request(port, "POST", "/session", Some(&capabilities));
        assert_eq!(status, 200, "new session: {answer}");
        let session = answer["value"]["sessionId"].as_str().expect("session id").to_string();
        let browser = Browser { driver, port, session };
        // A find waits up to 5 s for its element (the page after a form post may still be loading).
        browser.command("POST", "/timeouts", Some(json!({"implicit": 5000})));
        browser
    }

    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let full = format!("/session/{}{path}", self.session);
        let (status, answer) = request(self.port, method, &full, body.as_ref());
        assert_eq!(status, 200, "{method} {path}: {answer}");
        answer["value"].clone()
    }

    pub fn go(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn url(&self) -> String {
        self.command("GET", "/url", None).as_str().expect("url").to_string()
    }

    /// Waits (at most 10 s) until the current address satisfies `ok`: a click that submits a form returns
    /// before the browser has always finished following the answer's redirect.
    pub fn wait_for_url(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let url = self.url();
            if ok(&url) {
                return url;
            }
            assert!(Instant::now() < deadline, "still on {url}, waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (at most 10 s) until an element matching `selector` shows `needle` (the new page, not the one
    /// being left).
    pub fn wait_for_text(&self, selector: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let path = format!("/session/{}/element", self.session);
            let (status, answer) =
                request(self.port, "POST", &path, Some(&json!({"using": "css selector", "value": selector})));
            if status == 200 {
                if let Some(id) = answer["value"][ELEMENT].as_str() {
                    let (status, text) =
                        request(self.port, "GET", &format!("/session/{}/element/{id}/text", self.session), None);
                    if let (200, Some(text)) = (status, text["value"].as_str()) {
                        if text.contains(needle) {
                            return text.to_string();
                        }
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "{selector} never showed {needle:?} on {}:\n{}",
                self.url(),
                self.source()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn source(&self) -> String {
        self.command("GET", "/source", None).as_str().expect("source").to_string()
    }

    pub fn find(&self, selector: &str) -> Element<'_> {
        let path = format!("/session/{}/element", self.session);
        let (status, answer) =
            request(self.port, "POST", &path, Some(&json!({"using": "css selector", "value": selector})));
        assert_eq!(status, 200, "no element {selector:?} on {}: {answer}\n{}", self.url(), self.source());
        let id = answer["value"][ELEMENT].as_str().unwrap_or_else(|| panic!("element id in {answer}")).to_string();
        Element { browser: self, id, selector: selector.to_string() }
    }

    pub fn find_all(&self, selector: &str) -> Vec<Element<'_>> {
        let found = self.command("POST", "/elements", Some(json!({"using": "css selector", "value": selector})));
        found
            .as_array()
            .expect("elements")
            .iter()
            .map(|e| Element {
                browser: self,
                id: e[ELEMENT].as_str().expect("id").to_string(),
                selector: selector.into(),
            })
            .collect()
    }

    /// Console errors and CSP violations logged since the session started (ChromeDriver's browser log).
    pub fn console_problems(&self) -> Vec<String> {
        let entries = self.command("POST", "/se/log", Some(json!({"type": "browser"})));
        entries
            .as_array()
            .expect("log entries")
            .iter()
            .filter(|e| {
                let message = e["message"].as_str().unwrap_or("");
                e["level"] == "SEVERE" || message.contains("Content Security Policy") || message.contains("Refused to")
            })
            .map(|e| e["message"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// The visible page as PNG, written to `path`.
    pub fn screenshot(&self, path: &std::path::Path) {
        let encoded = self.command("GET", "/screenshot", None);
        let png = base64_decode(encoded.as_str().expect("base64 screenshot"));
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(path, png).expect("write the screenshot");
    }

    pub fn quit(mut self) {
        let _ = request(self.port, "DELETE", &format!("/session/{}", self.session), None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Element<'_> {
    pub fn click(&self) {
        self.browser.command("POST", &format!("/element/{}/click", self.id), Some(json!({})));
    }

    pub fn type_text(&self, text: &str) {
        self.browser.command("POST", &format!("/element/{}/value", self.id), Some(json!({ "text": text })));
    }

    /// The element's text. An element of the page being left (a click that submits a form returns before the
    /// next page has always replaced it) is found again by its selector on the new page.
    pub fn text(&self) -> String {
        let b = self.browser;
        let mut id = self.id.clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, answer) = request(b.port, "GET", &format!("/session/{}/element/{id}/text", b.session), None);
            if status == 200 {
                return answer["value"].as_str().unwrap_or_else(|| panic!("text of {}", self.selector)).to_string();
            }
            let stale = answer["value"]["error"] == "stale element reference";
            assert!(stale && Instant::now() < deadline, "text of {}: {answer}", self.selector);
            std::thread::sleep(Duration::from_millis(50));
            id = b.find(&self.selector).id;
        }
    }
}

/// Standard base64 (with padding), as WebDriver sends screenshots.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut bits, mut n) = (0u32, 0);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        bits = (bits << 6) | u32::from(value(c));
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}
