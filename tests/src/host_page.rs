//! What the widget's browser tests need besides [`crate::browser`]: a customer's page on an
//! origin of its own, and a way to look into the widget's *closed* shadow root.
//!
//! - [`HostSite`] serves test-chosen HTML (optionally with a `Content-Security-Policy` or
//!   `Content-Security-Policy-Report-Only` header) from `http://localhost:<port>`: another
//!   origin than the app on `http://127.0.0.1:<port>`.
//! - [`Shadow`] drives the widget through the Chrome DevTools Protocol, via chromedriver's
//!   vendor endpoint `POST /session/{id}/goog/cdp/execute`. Neither WebDriver's element
//!   lookups nor page JavaScript can enter a closed shadow root; CDP can:
//!   `DOM.getDocument {pierce: true}` lists closed shadow roots too, `DOM.resolveNode` turns
//!   the widget's root into a JavaScript handle, and `Runtime.callFunctionOn` runs a function
//!   with `this` bound to it. Clicks and keys are real input events (`Input.*`), hit-tested
//!   by the browser like a person's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use fantoccini::Client;
use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::{Value, json};

/// One page of the host site.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub html: String,
    /// An enforced `Content-Security-Policy`.
    pub csp: Option<String>,
    /// A `Content-Security-Policy-Report-Only` (violations are reported, nothing is blocked).
    pub csp_report_only: Option<String>,
}

impl Page {
    pub fn html(html: impl Into<String>) -> Page {
        Page {
            html: html.into(),
            ..Page::default()
        }
    }
}

#[derive(Default)]
struct SiteState {
    pages: HashMap<String, Page>,
    requests: Vec<String>,
}

/// A customer's web site: static pages on `http://localhost:<port>`.
pub struct HostSite {
    pub port: u16,
    state: Arc<Mutex<SiteState>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for HostSite {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl HostSite {
    /// Listens on 127.0.0.1 (and on ::1 at the same port where IPv6 is there, since browsers
    /// may try `localhost` over IPv6 first).
    pub async fn start() -> HostSite {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(SiteState::default()));
        let router = {
            let state = state.clone();
            Router::new().fallback(move |method: Method, uri: Uri| {
                let state = state.clone();
                async move { serve(&state, &method, &uri) }
            })
        };
        let mut tasks = vec![tokio::spawn({
            let router = router.clone();
            async move {
                let _ = axum::serve(listener, router).await;
            }
        })];
        if let Ok(v6) =
            tokio::net::TcpListener::bind(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)))
                .await
        {
            tasks.push(tokio::spawn(async move {
                let _ = axum::serve(v6, router).await;
            }));
        }
        HostSite { port, state, tasks }
    }

    /// `http://localhost:<port>`, as the browser names this site's origin.
    pub fn origin(&self) -> String {
        format!("http://localhost:{}", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    pub fn set_page(&self, path: &str, page: Page) {
        self.state
            .lock()
            .unwrap()
            .pages
            .insert(path.to_owned(), page);
    }

    /// Every request this site received, as `METHOD /path`.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn serve(state: &Mutex<SiteState>, method: &Method, uri: &Uri) -> Response {
    let mut s = state.lock().unwrap();
    s.requests.push(format!("{method} {uri}"));
    let Some(page) = s.pages.get(uri.path()).cloned() else {
        return (StatusCode::NOT_FOUND, "no such page\n").into_response();
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(csp) = &page.csp {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp.parse().unwrap());
    }
    if let Some(csp) = &page.csp_report_only {
        headers.insert(
            header::CONTENT_SECURITY_POLICY_REPORT_ONLY,
            csp.parse().unwrap(),
        );
    }
    (headers, page.html).into_response()
}

/// A minimal, accessible host page with `body` inside `<main>` and `head` in `<head>`. Its
/// icon is inline, so the browser fetches no `/favicon.ico`.
pub fn page_html(title: &str, head: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"icon\" href=\"data:,\"><title>{title}</title>{head}</head>\
         <body><main><h1>{title}</h1>{body}</main></body></html>"
    )
}

/// A POST to one of chromedriver's vendor endpoints of the session (`goog/cdp/execute` runs
/// a Chrome DevTools Protocol command, `se/log` reads a log).
#[derive(Debug)]
struct VendorPost {
    path: &'static str,
    body: Value,
}

impl WebDriverCompatibleCommand for VendorPost {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.unwrap_or_default();
        base_url.join(&format!("session/{session}/{}", self.path))
    }

    fn method_and_body(&self, _: &url::Url) -> (Method, Option<String>) {
        (Method::POST, Some(self.body.to_string()))
    }
}

/// Runs one CDP command; its result object.
pub async fn cdp(client: &Client, cmd: &str, params: Value) -> Result<Value, String> {
    client
        .issue_cmd(VendorPost {
            path: "goog/cdp/execute",
            body: json!({ "cmd": cmd, "params": params }),
        })
        .await
        .map_err(|e| format!("CDP {cmd}: {e}"))
}

/// The console messages chromedriver collected since the last call (`LEVEL message`).
pub async fn console_log(client: &Client) -> Vec<String> {
    match client
        .issue_cmd(VendorPost {
            path: "se/log",
            body: json!({ "type": "browser" }),
        })
        .await
    {
        Ok(Value::Array(entries)) => entries
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["level"].as_str().unwrap_or("?"),
                    e["message"].as_str().unwrap_or("")
                )
            })
            .collect(),
        Ok(other) => vec![format!("(unexpected console log answer: {other})")],
        Err(e) => vec![format!("(no console log: {e})")],
    }
}

/// The widget as a visitor sees it, looked at through CDP. The widget's host element is
/// `<parlo-widget>`; `shadow_root_type` says how its root was attached.
#[derive(Clone)]
pub struct Shadow {
    pub client: Client,
    /// What every `wait_*` waits at most before failing.
    pub timeout: Duration,
}

/// A JS function run with `this` = the widget's shadow root, returning the element matching
/// `arguments[0]` as something `clickable` can use.
const RECT_OF: &str = "function (sel) {\
    const e = this.querySelector(sel);\
    if (!e) return null;\
    e.scrollIntoView({block: 'nearest'});\
    const r = e.getBoundingClientRect();\
    const x = r.left + r.width / 2, y = r.top + r.height / 2;\
    const hit = this.elementFromPoint(x, y);\
    return {x, y, w: r.width, h: r.height, hit: !!hit && (hit === e || e.contains(hit)),\
            top: hit ? hit.outerHTML.slice(0, 200) : null};\
}";

impl Shadow {
    pub fn new(client: &Client) -> Shadow {
        Shadow {
            client: client.clone(),
            timeout: Duration::from_secs(45),
        }
    }

    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        cdp(&self.client, cmd, params)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The `<parlo-widget>` node's first shadow root in the pierced DOM tree: its node id and
    /// its type (`open` or `closed`). `None` while there is no widget.
    pub async fn root_node(&self) -> Option<(i64, String)> {
        let doc = cdp(
            &self.client,
            "DOM.getDocument",
            json!({ "depth": -1, "pierce": true }),
        )
        .await
        .ok()?;
        fn find(node: &Value) -> Option<(i64, String)> {
            if node["nodeName"].as_str() == Some("PARLO-WIDGET")
                && let Some(root) = node["shadowRoots"].get(0)
            {
                return Some((
                    root["nodeId"].as_i64()?,
                    root["shadowRootType"].as_str().unwrap_or("").to_owned(),
                ));
            }
            ["children", "shadowRoots"]
                .iter()
                .filter_map(|k| node[*k].as_array())
                .flatten()
                .find_map(find)
        }
        find(&doc["root"])
    }

    /// Runs `function` (JS source of a function) with `this` bound to the widget's shadow
    /// root and the given arguments; its value (awaited if a promise). `None` when there is
    /// no widget on the page (yet); a thrown exception panics.
    pub async fn eval(&self, function: &str, args: &[Value]) -> Option<Value> {
        let (node, _) = self.root_node().await?;
        let object = cdp(
            &self.client,
            "DOM.resolveNode",
            json!({ "nodeId": node, "objectGroup": "parlo-tests" }),
        )
        .await
        .ok()?;
        let id = object["object"]["objectId"].as_str()?.to_owned();
        let result = cdp(
            &self.client,
            "Runtime.callFunctionOn",
            json!({
                "objectId": id,
                "functionDeclaration": function,
                "arguments": args.iter().map(|a| json!({ "value": a })).collect::<Vec<_>>(),
                "returnByValue": true,
                "awaitPromise": true,
            }),
        )
        .await
        // The document can change under us (navigation); then there is nothing to see yet.
        .ok()?;
        if let Some(ex) = result.get("exceptionDetails") {
            panic!("JavaScript in the shadow root threw: {ex}\nfunction: {function}");
        }
        Some(result["result"]["value"].clone())
    }

    /// The shadow root's whole markup (for failure messages).
    pub async fn html(&self) -> String {
        match self
            .eval("function () { return this.innerHTML; }", &[])
            .await
        {
            Some(Value::String(s)) => s,
            _ => "(no <parlo-widget> shadow root on the page)".to_owned(),
        }
    }

    /// Everything worth seeing when a wait fails: the shadow DOM, the console, the URL.
    pub async fn diagnostics(&self) -> String {
        let url = self
            .client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        format!(
            "page: {url}\nshadow root markup:\n{}\nconsole:\n{}",
            self.html().await,
            console_log(&self.client).await.join("\n")
        )
    }

    /// Polls `function` (see [`Shadow::eval`]) until it returns something other than `null`,
    /// `false`, `0` or `""`; that value. Panics after `self.timeout` with `what` and
    /// [`Shadow::diagnostics`].
    pub async fn wait_for(&self, what: &str, function: &str, args: &[Value]) -> Value {
        let start = Instant::now();
        loop {
            if let Some(v) = self.eval(function, args).await
                && truthy(&v)
            {
                return v;
            }
            if start.elapsed() > self.timeout {
                panic!(
                    "timed out after {:?} waiting for {what}\n{}",
                    self.timeout,
                    self.diagnostics().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for an element matching `selector` in the shadow root; its outer HTML.
    pub async fn wait_for_element(&self, selector: &str) -> String {
        let v = self
            .wait_for(
                &format!("`{selector}` in the widget's shadow root"),
                "function (sel) { const e = this.querySelector(sel); return e && e.outerHTML; }",
                &[json!(selector)],
            )
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// How many elements match `selector` in the shadow root right now.
    pub async fn count(&self, selector: &str) -> usize {
        self.eval(
            "function (sel) { return this.querySelectorAll(sel).length; }",
            &[json!(selector)],
        )
        .await
        .and_then(|v| v.as_u64())
        .unwrap_or(0) as usize
    }

    /// An attribute of the first element matching `selector`.
    pub async fn attr(&self, selector: &str, name: &str) -> Option<String> {
        self.eval(
            "function (sel, name) { const e = this.querySelector(sel); return e && e.getAttribute(name); }",
            &[json!(selector), json!(name)],
        )
        .await
        .and_then(|v| v.as_str().map(str::to_owned))
    }

    /// Clicks the centre of the element matching `selector` with real mouse events, after
    /// checking that it is visible and that the browser would hit it there (not something
    /// painted over it).
    pub async fn click(&self, selector: &str) {
        let start = Instant::now();
        let (x, y) = loop {
            let r = self
                .eval(RECT_OF, &[json!(selector)])
                .await
                .unwrap_or(Value::Null);
            if r["w"].as_f64().unwrap_or(0.0) > 0.0
                && r["h"].as_f64().unwrap_or(0.0) > 0.0
                && r["hit"] == json!(true)
            {
                break (r["x"].as_f64().unwrap(), r["y"].as_f64().unwrap());
            }
            if start.elapsed() > self.timeout {
                panic!(
                    "cannot click `{selector}`: not visible or covered ({r})\n{}",
                    self.diagnostics().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.cdp(
                "Input.dispatchMouseEvent",
                json!({
                    "type": kind, "x": x, "y": y, "button": "left",
                    "buttons": if kind == "mousePressed" { 1 } else { 0 },
                    "clickCount": 1,
                }),
            )
            .await;
        }
    }

    /// Types `text` into the element matching `selector` (clicked first to focus it), as
    /// text input events.
    pub async fn type_into(&self, selector: &str, text: &str) {
        self.click(selector).await;
        self.wait_for(
            &format!("`{selector}` to have the focus"),
            "function (sel) { return this.activeElement === this.querySelector(sel); }",
            &[json!(selector)],
        )
        .await;
        self.cdp("Input.insertText", json!({ "text": text })).await;
    }

    /// Presses and releases Enter in whatever has the focus.
    pub async fn press_enter(&self) {
        self.cdp(
            "Input.dispatchKeyEvent",
            json!({
                "type": "keyDown", "key": "Enter", "code": "Enter",
                "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13, "text": "\r",
            }),
        )
        .await;
        self.cdp(
            "Input.dispatchKeyEvent",
            json!({
                "type": "keyUp", "key": "Enter", "code": "Enter",
                "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13,
            }),
        )
        .await;
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}
