//! The dashboard in a real browser: headless Chromium driven through chromedriver (WebDriver),
//! against a real host. A user creates a schedule through the form, sees it fire in the
//! executions view, edits, pauses and deletes through the buttons, sees a plugin go hot with its
//! instance, and every page is checked on a laptop and a phone screen. Any console error fails
//! the test. Screenshots of every page land in `<target>/tmp/dashboard/` (`CARGO_TARGET_TMPDIR`).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::host::TestHost;

/// How long a page may take to show what is waited for.
const WAIT: Duration = Duration::from_secs(20);

/// chromedriver's log endpoint: the browser's console messages since the last read.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

/// A headless Chromium with its own profile, through its own chromedriver.
struct Browser {
    client: Option<Client>,
    driver: std::process::Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
    /// Console errors seen so far.
    errors: Vec<Value>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    async fn start(name: &str) -> Self {
        let port = free_port();
        // A group of its own: Chromium's processes are the driver's children, and a test that
        // fails must not leave them behind (killing the driver alone orphans them).
        let driver = std::process::Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver) must be installed");
        let profile = tempfile::tempdir().unwrap();
        let mut caps = Capabilities::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1366,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let webdriver = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&webdriver)
                .await
            {
                Ok(c) => break c,
                Err(e) => {
                    assert!(Instant::now() < deadline, "no browser session: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("dashboard")
            .join(name);
        std::fs::create_dir_all(&shots).unwrap();
        Self {
            client: Some(client),
            driver,
            _profile: profile,
            shots,
            errors: Vec::new(),
        }
    }

    fn c(&self) -> &Client {
        self.client.as_ref().expect("an open session")
    }

    async fn goto(&self, url: &str) {
        self.c().goto(url).await.unwrap();
    }

    /// Waits for an element.
    async fn el(&self, css: &str) -> fantoccini::elements::Element {
        self.c()
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
    }

    /// Waits for an element by XPath.
    async fn xpath(&self, path: &str) -> fantoccini::elements::Element {
        self.c()
            .wait()
            .at_most(WAIT)
            .for_element(Locator::XPath(path))
            .await
            .unwrap_or_else(|e| panic!("no `{path}` on the page: {e}"))
    }

    /// Clicks an element; one that a live update replaced between finding and clicking is
    /// found again.
    async fn click(&self, css: &str) {
        for _ in 0..5 {
            match self.el(css).await.click().await {
                Ok(()) => return,
                Err(e) if e.to_string().contains("stale element") => continue,
                Err(e) => panic!("cannot click `{css}`: {e}"),
            }
        }
        panic!("`{css}` kept being replaced");
    }

    /// Replaces an input's text.
    async fn type_into(&self, css: &str, text: &str) {
        let el = self.el(css).await;
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    async fn select(&self, css: &str, value: &str) {
        self.el(css).await.select_by_value(value).await.unwrap();
    }

    async fn js(&self, script: &str) -> Value {
        self.c().execute(script, vec![]).await.unwrap()
    }

    /// Waits until a script returns true.
    async fn until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            if self.js(script).await == json!(true) {
                return;
            }
            assert!(Instant::now() < deadline, "never true: {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the header says the host answers.
    async fn live(&self, what: &str) {
        self.until(
            what,
            "return document.getElementById('conn').dataset.state === 'online'",
        )
        .await;
    }

    /// Waits until the schedule form has closed (the host took it).
    async fn form_closed(&self) {
        self.until(
            "the form closes",
            "return !document.getElementById('schedule-dialog').open",
        )
        .await;
    }

    /// Reads the console since the last read, keeping the errors.
    async fn read_console(&mut self) {
        let entries = self.c().issue_cmd(BrowserLog).await.unwrap();
        for e in entries.as_array().cloned().unwrap_or_default() {
            if e["level"] == "SEVERE" {
                self.errors.push(e);
            }
        }
    }

    /// Saves a screenshot as `<name>.png`; it must be a real, non-blank image.
    async fn shot(&mut self, name: &str) {
        // Let the page settle (fonts, the last poll) before the picture.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = self.c().screenshot().await.unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 5_000,
            "screenshot {name}: {} bytes",
            png.len()
        );
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
        self.read_console().await;
    }

    /// Fails on any console error seen so far.
    async fn assert_no_console_errors(&mut self) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.read_console().await;
        assert!(self.errors.is_empty(), "console errors: {:#?}", self.errors);
    }

    async fn close(mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(group) = rustix::process::Pid::from_raw(self.driver.id() as i32) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn schedule_state(host: &TestHost, id: &str) -> Value {
    let (status, body) = host.get(&format!("/api/v1/schedules/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn the_dashboard_runs_a_schedule_from_its_form_to_its_executions() {
    // History sampled twice a second, so the charts fill within the test.
    let mut host = TestHost::start_with_config(
        "[server]\nhistory_interval = \"500ms\"\nremote_ping_interval = \"500ms\"\n",
    );
    // A remote handler for the handlers page: the Python example over ZeroMQ.
    let (_, info) = host.get("/api/v1/host").await;
    let zmq = info["zmq_endpoint"].as_str().unwrap().to_owned();
    let _python = tokio::process::Command::new("python3")
        .arg(crate::support::repo_root().join("examples/python/hello_handler.py"))
        .env("SCHEDULEZERO_ZMQ", &zmq)
        .env("HANDLER_ID", "py-hello")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("python3");
    // A failing job, for the errors view.
    let (status, body) = host
        .post(
            "/api/v1/schedules",
            &json!({"id": "trap-every-second", "handler": "misbehave", "method": "trap",
                    "trigger": {"type": "interval", "seconds": 1}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let mut b = Browser::start("laptop").await;
    b.goto(&format!("{}/", host.url)).await;
    b.el(".cards .card").await;
    b.live("the connection shows live").await;

    // Before any job of it ran, ding-dong is cold: nothing in memory.
    b.click("a[data-page='handlers']").await;
    b.xpath("//article[@data-plugin='ding-dong'][@data-state='cold']//td[contains(., 'Cold: nothing in memory.')]")
        .await;
    b.shot("handlers-cold").await;

    // --- create a schedule through the form -----------------------------------------------
    b.click("a[data-page='schedules']").await;
    b.click("#new-schedule").await;
    b.el("#schedule-dialog[open]").await;
    b.type_into("#f-id", "browser-tick").await;
    b.select("#f-handler", "ding-dong").await;
    b.select("#f-method", "ping").await;
    // A bad cron expression is refused with the host's own message, before anything is sent.
    b.type_into("#f-cron", "* * *").await;
    b.xpath("//p[@id='f-preview-state'][contains(@class,'error')][contains(., 'invalid cron expression')]")
        .await;
    b.shot("schedule-form-invalid").await;
    // A good one lists its next five fire times.
    b.type_into("#f-cron", "*/5 * * * *").await;
    b.until(
        "five fire times for the cron",
        "const t = document.getElementById('f-preview-table'); \
         return !t.hidden && t.tBodies[0].rows.length === 5",
    )
    .await;
    // Interval: every second.
    b.click("#schedule-form input[name='kind'][value='interval']")
        .await;
    b.type_into("#f-every", "1").await;
    b.select("#f-unit", "seconds").await;
    b.until(
        "the interval's fire times, a second apart",
        "const rows = document.getElementById('f-preview-table').tBodies[0].rows; \
         return !document.getElementById('f-preview-table').hidden && rows.length === 5 \
           && document.getElementById('f-preview-state').textContent.includes('interval[0:00:01]')",
    )
    .await;
    // Params that are not JSON stop the form.
    b.type_into("#f-params", "{oops").await;
    b.xpath("//p[@id='f-params-error'][contains(., 'not valid JSON')]")
        .await;
    b.click("#f-submit").await;
    b.xpath("//p[@id='f-error'][contains(., 'not valid JSON')]")
        .await;
    assert_eq!(
        host.get("/api/v1/schedules/browser-tick").await.0,
        404,
        "nothing sent"
    );
    b.type_into("#f-params", "{}").await;
    b.shot("schedule-form").await;
    b.click("#f-submit").await;
    b.el("#schedules-table tr[data-id='browser-tick']").await;
    b.form_closed().await;
    let created = schedule_state(&host, "browser-tick").await;
    assert_eq!(created["handler"], "ding-dong");
    assert_eq!(created["method"], "ping");
    assert_eq!(created["trigger"]["every_seconds"], 1.0);

    // --- it fires: the executions view shows it, with its detail --------------------------
    b.click("a[data-page='executions']").await;
    let done = b
        .xpath(
            "//table[@id='executions-table']//tr[@data-status='success'][td[2][.='browser-tick']]",
        )
        .await;
    done.find(Locator::Css("button.link"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.xpath("//dialog[@id='detail-dialog'][@open]//pre[contains(., '\"pong\": true')]")
        .await;
    b.xpath("//dialog[@id='detail-dialog']//dd[contains(., 'ding-dong.ping')]")
        .await;
    b.shot("execution-detail").await;
    b.click("#detail-dialog [data-close]").await;
    // The errors view: only failures, with their code.
    b.click(".tabs button[data-errors='1']").await;
    b.xpath("//table[@id='executions-table']//tr[@data-status='error'][td[2][.='trap-every-second']]//td[contains(., 'trap')]")
        .await;
    b.until(
        "only errors listed",
        "return [...document.querySelectorAll('#executions-table tbody tr')] \
           .every(r => r.dataset.status === 'error')",
    )
    .await;
    b.shot("executions-errors").await;
    // Filter by schedule.
    b.click(".tabs button[data-errors='0']").await;
    b.el("#filter-schedule option[value='browser-tick']").await;
    b.select("#filter-schedule", "browser-tick").await;
    b.until(
        "only browser-tick's executions",
        "const rows = [...document.querySelectorAll('#executions-table tbody tr')]; \
         return rows.length > 0 && rows.every(r => r.cells[1].textContent === 'browser-tick')",
    )
    .await;
    assert!(
        b.c()
            .current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with("#/executions?schedule=browser-tick"),
        "the filter is in the address"
    );
    b.shot("executions").await;

    // --- edit, pause, run now, delete ------------------------------------------------------
    b.click("a[data-page='schedules']").await;
    b.click("button[aria-label='Edit browser-tick']").await;
    b.el("#schedule-dialog[open]").await;
    b.until(
        "the form shows the schedule, without the create-only choices",
        "return document.getElementById('f-every').value === '1' \
           && document.getElementById('f-unit').value === 'seconds' \
           && document.getElementById('f-method').value === 'ping' \
           && document.getElementById('f-id').disabled \
           && document.getElementById('f-paused').offsetParent === null",
    )
    .await;
    b.type_into("#f-every", "2").await;
    b.until(
        "the new interval's preview",
        "return document.getElementById('f-preview-state').textContent.includes('interval[0:00:02]')",
    )
    .await;
    b.click("#f-submit").await;
    b.form_closed().await;
    assert_eq!(
        schedule_state(&host, "browser-tick").await["trigger"]["every_seconds"],
        2.0
    );
    // An edit that leaves the trigger alone keeps it as it was (its phase included).
    let start = schedule_state(&host, "browser-tick").await["trigger"]["start_time"].clone();
    b.click("button[aria-label='Edit browser-tick']").await;
    b.el("#schedule-dialog[open]").await;
    b.until(
        "the form shows the new interval",
        "return document.getElementById('f-every').value === '2'",
    )
    .await;
    b.click("#schedule-form details.advanced summary").await;
    b.type_into("#f-attempts", "2").await;
    b.click("#f-submit").await;
    b.form_closed().await;
    let edited = schedule_state(&host, "browser-tick").await;
    assert_eq!(edited["policy"]["max_attempts"], 2);
    assert_eq!(edited["trigger"]["start_time"], start);

    b.click("button[aria-label='Pause browser-tick']").await;
    b.xpath("//tr[@data-id='browser-tick']//span[contains(@class,'badge')][.='paused']")
        .await;
    assert_eq!(schedule_state(&host, "browser-tick").await["paused"], true);
    // Paused: no more fires.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = host.executions_of("browser-tick").await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(host.executions_of("browser-tick").await.len(), before);
    // Run now still runs it once.
    b.click("button[aria-label='Run browser-tick now']").await;
    host.wait_for(WAIT, || async {
        (host.executions_of("browser-tick").await.len() == before + 1).then_some(())
    })
    .await;
    b.click("button[aria-label='Resume browser-tick']").await;
    b.xpath("//tr[@data-id='browser-tick']//span[contains(@class,'badge')][.='active']")
        .await;
    assert_eq!(schedule_state(&host, "browser-tick").await["paused"], false);

    // Delete asks first: cancel keeps it, confirm removes it.
    b.click("button[aria-label='Delete trap-every-second']")
        .await;
    b.el("#confirm-dialog[open]").await;
    b.click("#confirm-dialog button[value='cancel']").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(host.get("/api/v1/schedules/trap-every-second").await.0, 200);
    b.click("button[aria-label='Delete trap-every-second']")
        .await;
    b.el("#confirm-dialog[open]").await;
    b.shot("schedule-delete-confirm").await;
    b.click("#confirm-ok").await;
    b.until(
        "the row goes",
        "return !document.querySelector(\"#schedules-table tr[data-id='trap-every-second']\")",
    )
    .await;
    assert_eq!(host.get("/api/v1/schedules/trap-every-second").await.0, 404);
    b.shot("schedules").await;

    // --- the plugin went hot, with its instance; the remote handler is listed ---------------
    b.click("a[data-page='handlers']").await;
    b.el("article[data-plugin='ding-dong'][data-state='hot'] tr[data-instance]")
        .await;
    b.xpath("//table[@id='remote-table']//tr[@data-handler='py-hello']//span[contains(@class,'badge')][.='online']")
        .await;
    b.shot("handlers").await;
    // A handler that went away for good is forgotten from here (an online one cannot be).
    register_gone(&zmq).await;
    b.el("#remote-table tr[data-handler='gone'] button[aria-label='Forget gone']")
        .await;
    let online_forget = b
        .js("return document.querySelectorAll(\"#remote-table tr[data-handler='py-hello'] button\").length")
        .await;
    assert_eq!(online_forget, 0);
    b.click("#remote-table tr[data-handler='gone'] button[aria-label='Forget gone']")
        .await;
    b.el("#confirm-dialog[open]").await;
    b.click("#confirm-ok").await;
    b.until(
        "the forgotten handler's row to go",
        "return !document.querySelector(\"#remote-table tr[data-handler='gone']\")",
    )
    .await;
    assert_eq!(host.get("/api/v1/handlers/gone").await.0, 404);

    // --- the overview's figures and charts --------------------------------------------------
    b.click("a[data-page='overview']").await;
    b.el(".charts svg rect.c-success").await;
    b.el(".charts svg rect.c-error").await;
    b.el(".charts svg circle.c-call").await;
    b.el(".charts svg polyline.c-p0").await;
    b.shot("overview").await;

    // --- every page on a phone: nothing wider than the screen -------------------------------
    b.c().set_window_size(390, 844).await.unwrap();
    for page in ["", "schedules", "handlers", "executions", "fleet"] {
        b.goto(&format!("{}/#/{page}", host.url)).await;
        b.el("main h1").await;
        b.live("the page has loaded").await;
        let wide = b
            .js("return document.documentElement.scrollWidth - window.innerWidth")
            .await;
        assert!(
            wide.as_i64().unwrap_or(i64::MAX) <= 0,
            "page `{page}` is wider than the phone by {wide}px"
        );
        let name = if page.is_empty() { "overview" } else { page };
        b.shot(&format!("phone-{name}")).await;
    }

    b.assert_no_console_errors().await;

    // The host goes away: the page says so (its failed polls are the only console errors).
    host.kill();
    b.xpath("//div[@id='conn'][@data-state='offline']//span[@id='conn-text'][.='Reconnecting…']")
        .await;
    b.shot("phone-offline").await;
    b.close().await;
}

/// What the dashboard shows beyond the lists: what runs next and what failed last, a paused
/// schedule without a next fire time, a loaded plugin without instances not called hot, the
/// params skeleton and its checks from the method's schema, an execution's link to its schedule
/// and its retry; and, on a phone, folded filters, compact lists and a form whose errors and
/// button stay in view.
#[tokio::test]
async fn the_dashboard_shows_what_runs_next_and_what_failed_and_fits_a_phone() {
    let host = TestHost::start();
    for (id, handler, method, paused) in [
        ("next-up", "ding-dong", "ping", false),
        ("on-hold", "ding-dong", "ping", true),
        ("breaks", "misbehave", "trap", false),
    ] {
        let (status, body) = host
            .post(
                "/api/v1/schedules",
                &json!({"id": id, "handler": handler, "method": method, "paused": paused,
                        "trigger": {"type": "cron", "expression": "0 0 1 1 *"}}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, ran) = host
        .post("/api/v1/schedules/breaks/run?wait=true", &Value::Null)
        .await;
    assert_eq!(
        (status, ran["error"]["code"].clone()),
        (200, json!("trap")),
        "{ran}"
    );

    let mut b = Browser::start("glance").await;
    b.goto(&format!("{}/", host.url)).await;
    b.live("the overview loads").await;
    b.el("#upcoming li[data-id='next-up']").await;
    b.xpath("//section[@id='failures']//li[contains(., 'breaks')][contains(., 'trap')]")
        .await;
    assert!(
        b.js("return !document.querySelector(\"#upcoming li[data-id='on-hold']\")")
            .await
            == json!(true),
        "a paused schedule has no upcoming run"
    );
    // The nodes: this host alone on its SQLite store.
    b.xpath("//section[@id='nodes']//tr[@data-state='live'][contains(., '(this host)')]")
        .await;
    b.shot("overview-lists").await;

    // A paused schedule shows no next fire time.
    b.goto(&format!("{}/#/schedules?id=on-hold", host.url))
        .await;
    b.xpath("//tr[@data-id='on-hold'][contains(@class, 'focus')]/td[contains(@class, 'next-fire')][normalize-space(.)='paused']")
        .await;

    // The trap discarded misbehave's instance: loaded, not hot.
    b.goto(&format!("{}/#/handlers", host.url)).await;
    b.el("article[data-plugin='misbehave'][data-state='loaded']")
        .await;

    // The params box starts from the method's schema, and checks against it.
    b.goto(&format!("{}/#/schedules", host.url)).await;
    b.click("#new-schedule").await;
    b.el("#schedule-dialog[open]").await;
    b.select("#f-handler", "ding-dong").await;
    b.select("#f-method", "play_quarter_chime").await;
    b.until(
        "the skeleton has the schema's field",
        "return document.getElementById('f-params').value.includes('\"quarter\"')",
    )
    .await;
    b.type_into("#f-params", r#"{"quarter": "four"}"#).await;
    b.xpath("//p[@id='f-params-error'][contains(., 'schema says')][contains(., '/quarter')]")
        .await;
    b.click("#f-submit").await;
    b.xpath("//p[@id='f-error'][contains(., 'schema says')]")
        .await;
    b.click("#schedule-dialog [data-close]").await;

    // An execution's detail links to its schedule, says why it was not retried, and runs the
    // schedule again.
    b.goto(&format!("{}/#/executions?status=error", host.url))
        .await;
    b.click("#executions-table tbody tr[data-status='error'] button.link")
        .await;
    b.el("#detail-dialog[open] #detail-schedule-link[href='#/schedules?id=breaks']")
        .await;
    b.xpath("//p[@id='not-retried'][contains(., 'retry_on')]")
        .await;
    b.click("#detail-schedule").await;
    b.xpath("//div[@id='toast'][contains(., 'A run of breaks started')]")
        .await;
    b.shot("execution-retried").await;

    // --- a phone ------------------------------------------------------------------------------
    b.c().set_window_size(390, 844).await.unwrap();
    b.goto(&format!("{}/#/executions", host.url)).await;
    b.live("executions on a phone").await;
    assert_eq!(
        b.js("return document.querySelector('details.filters-fold').open")
            .await,
        json!(false),
        "the filters fold away"
    );
    assert_eq!(
        b.js(
            "const c = document.querySelector('#executions-table td.optional'); \
              return !c || getComputedStyle(c).display === 'none'"
        )
        .await,
        json!(true),
        "the list is compact"
    );
    // The handlers page with live instances fits.
    host.run_schedule("next-up").await;
    b.goto(&format!("{}/#/handlers", host.url)).await;
    b.el("article[data-plugin='ding-dong'][data-state='hot'] tr[data-instance]")
        .await;
    let wide = b
        .js("return document.documentElement.scrollWidth - window.innerWidth")
        .await;
    assert!(
        wide.as_i64().unwrap_or(i64::MAX) <= 0,
        "wider than the phone by {wide}px"
    );
    // The form's error and its button stay in view however long the form.
    b.goto(&format!("{}/#/schedules", host.url)).await;
    b.click("#new-schedule").await;
    b.el("#schedule-dialog[open]").await;
    b.js("document.querySelector('#schedule-form details.advanced').open = true; return true")
        .await;
    b.type_into("#f-params", "{oops").await;
    b.click("#f-submit").await;
    b.el("#f-error:not([hidden])").await;
    assert_eq!(
        b.js(
            "const r = (id) => document.getElementById(id).getBoundingClientRect(); \
              return r('f-submit').bottom <= window.innerHeight && r('f-error').top >= 0 \
                && r('f-error').bottom <= window.innerHeight"
        )
        .await,
        json!(true),
        "the error and the submit button are in view"
    );
    b.shot("phone-form-error").await;
    b.assert_no_console_errors().await;
    b.close().await;
}

#[tokio::test]
async fn the_dashboard_asks_for_the_token_and_uses_it() {
    let token = "dashboard-token-0123456789";
    let host = TestHost::start_with(&["--api-token", token]);
    let mut b = Browser::start("token").await;
    b.goto(&format!("{}/", host.url)).await;
    b.el("#token-dialog[open]").await;
    b.xpath("//div[@id='conn'][@data-state='unauthorized']")
        .await;
    b.shot("token-prompt").await;
    b.type_into("#token-input", token).await;
    b.click("#token-form button[type='submit']").await;
    b.el(".cards .card").await;
    b.live("live with the token").await;
    b.xpath("//span[@id='host-name'][contains(., 'schedulezero')]")
        .await;
    // Kept for the next visit.
    b.c().refresh().await.unwrap();
    b.el(".cards .card").await;
    b.until(
        "live again without asking",
        "return document.getElementById('conn').dataset.state === 'online' \
           && !document.getElementById('token-dialog').open",
    )
    .await;
    b.assert_no_console_errors().await;
    b.close().await;
}

/// The Handlers page shows what each plugin asks for beside what it is granted, and grants and
/// revokes through the API with the change recorded as the dashboard's; an execution's detail
/// says which directories a run was given.
#[tokio::test]
async fn the_dashboard_grants_and_revokes_capabilities() {
    let host = TestHost::start();
    let input = tempfile::tempdir().unwrap();
    std::fs::write(input.path().join("a.txt"), "1 2 3\n").unwrap();
    let mut b = Browser::start("capabilities").await;
    b.goto(&format!("{}/#/handlers", host.url)).await;
    let row = "section[data-plugin='cloud-processor'] tr[data-kind='directory'][data-name='input']";
    b.xpath("//section[@data-plugin='cloud-processor']//tr[@data-kind='secret']//span[contains(@class,'badge')][.='missing']")
        .await;
    b.shot("capabilities-missing").await;
    b.type_into(
        &format!("{row} input[name='value']"),
        &input.path().display().to_string(),
    )
    .await;
    b.click(&format!("{row} button[type='submit']")).await;
    b.xpath(&format!(
        "//section[@data-plugin='cloud-processor']//tr[@data-kind='directory']//td[contains(., '{}')]",
        input.path().display()
    ))
    .await;
    let (_, grants) = host.get("/api/v1/plugins/cloud-processor/grants").await;
    assert_eq!(grants["events"][0]["actor"], "dashboard", "{grants}");
    // The history of changes is read when it is opened.
    b.click("section[data-plugin='cloud-processor'] details summary")
        .await;
    b.xpath("//section[@data-plugin='cloud-processor']//ul[contains(@class,'changes')]/li[contains(., 'granted directory input') and contains(., 'by dashboard')]")
        .await;
    // A grant the component cannot take is refused with the host's reason.
    let secret_row = "section[data-plugin='cloud-processor'] tr[data-kind='secret']";
    b.type_into(&format!("{secret_row} input[name='value']"), "hunter2")
        .await;
    b.click(&format!("{secret_row} button[type='submit']"))
        .await;
    b.xpath("//*[contains(@class,'toast')][contains(., 'by reference')]")
        .await;
    b.shot("capabilities-granted").await;
    // The browser logs the refused request (400) as an error of its own: that one is expected.
    b.errors.retain(|e| {
        !e["message"].as_str().is_some_and(|m| {
            m.contains("/api/v1/plugins/cloud-processor/grants") && m.contains("status of 400")
        })
    });

    // A call now gets the directory (and fails for the missing secret): the detail says so.
    let (_, called) = host
        .post(
            "/api/v1/handlers/cloud-processor/call",
            &json!({"method": "process_and_upload", "params": {}}),
        )
        .await;
    assert_eq!(called["error"]["code"], "capability_denied", "{called}");
    b.goto(&format!("{}/#/executions", host.url)).await;
    b.click("#executions-table tbody tr[data-id] button").await;
    b.xpath("//*[@id='detail-usage'][contains(., '/input')]")
        .await;
    b.shot("execution-usage").await;
    b.click("#detail-dialog button[data-close]").await;
    b.until(
        "the detail closes",
        "return !document.getElementById('detail-dialog').open",
    )
    .await;
    b.click("a[data-page='handlers']").await;
    b.click(&format!("{row} button.danger")).await;
    b.el("#confirm-dialog[open]").await;
    b.click("#confirm-ok").await;
    b.xpath("//section[@data-plugin='cloud-processor']//tr[@data-kind='directory']//span[contains(@class,'badge')][.='missing']")
        .await;
    let (_, grants) = host.get("/api/v1/plugins/cloud-processor/grants").await;
    assert_eq!(grants["events"][0]["action"], "revoked", "{grants}");
    b.assert_no_console_errors().await;
    b.close().await;
}

/// The Handlers page's catalog: a reference inspected shows what the component is, who signed it
/// and what it asks for; installing sends the reviewed digest; then update and roll back, each
/// seen in the installed table.
#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_installs_updates_and_rolls_back_from_the_catalog() {
    use crate::catalog::{Operator, Registry, built, keygen, push, signed};
    let built = tokio::task::spawn_blocking(built).await.unwrap();
    let registry = Registry::start();
    let vendor = tempfile::tempdir().unwrap();
    let (key, public) = keygen(vendor.path(), "acme");
    let reference = registry.reference("acme/greeter", "0.1.0");
    push(
        vendor.path(),
        &signed(vendor.path(), "a.wasm", &built.v1, &key),
        &reference,
    );
    push(
        vendor.path(),
        &signed(vendor.path(), "b.wasm", &built.v2, &key),
        &registry.reference("acme/greeter", "0.2.0"),
    );
    let operator = Operator::new(&registry, &public, "");
    let host = TestHost::start_with_config(&std::fs::read_to_string(&operator.config).unwrap());
    let mut b = Browser::start("catalog").await;
    b.goto(&format!("{}/#/handlers", host.url)).await;
    b.xpath("//*[@id='catalog-table']//td[contains(., 'Nothing installed')]")
        .await;
    b.type_into("#catalog-reference", &reference).await;
    b.click("#catalog-inspect button[type='submit']").await;
    b.xpath("//*[@id='review-signature'][contains(., 'signed by acme')]")
        .await;
    b.xpath("//*[@id='review-requests']//li[contains(., 'config greeting')]")
        .await;
    b.shot("catalog-review").await;
    b.click("#review-install").await;
    b.el("#catalog-table tr[data-plugin='acme-greeter'][data-state='verified']")
        .await;
    let (_, p) = host.get("/api/v1/plugins/acme-greeter").await;
    assert_eq!(p["version"], "0.1.0", "{p}");
    assert_eq!(p["signature"]["key"], "acme", "{p}");

    b.click("#catalog-table tr[data-plugin='acme-greeter'] button[aria-label^='Check']")
        .await;
    b.xpath("//button[@id='review-install'][contains(., 'Update to 0.2.0')]")
        .await;
    b.click("#review-install").await;
    b.xpath(
        "//*[@id='catalog-table']//tr[@data-plugin='acme-greeter']/td[starts-with(., '0.2.0')]",
    )
    .await;
    b.shot("catalog-updated").await;
    b.click("#catalog-table tr[data-plugin='acme-greeter'] button[aria-label^='Roll']")
        .await;
    b.el("#confirm-dialog[open]").await;
    b.click("#confirm-ok").await;
    b.xpath(
        "//*[@id='catalog-table']//tr[@data-plugin='acme-greeter']/td[starts-with(., '0.1.0')]",
    )
    .await;
    let (_, p) = host.get("/api/v1/plugins/acme-greeter").await;
    assert_eq!(p["version"], "0.1.0", "{p}");
    b.assert_no_console_errors().await;
    b.close().await;
}

/// The console check can fail: an error logged by a page is seen.
#[tokio::test]
async fn console_errors_are_caught() {
    let host = TestHost::start();
    let mut b = Browser::start("canary").await;
    b.goto(&format!("{}/", host.url)).await;
    b.el(".cards .card").await;
    b.js("console.error('canary: deliberately broken'); return null")
        .await;
    // A missing file is an error too.
    b.js("fetch('/assets/missing.js'); return null").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.read_console().await;
    let text = format!("{:?}", b.errors);
    assert!(text.contains("canary: deliberately broken"), "{text}");
    assert!(text.contains("missing.js"), "{text}");
    b.close().await;
}

/// The dashboard's files are served from the binary with their types, validators and a
/// policy that allows this origin only; they need no token, the API behind them does.
#[tokio::test]
async fn the_dashboard_files_are_embedded_and_open() {
    let token = "dashboard-token-0123456789";
    let host = TestHost::start_with(&["--api-token", token]);
    let bare = {
        schedulezero::install_crypto_provider();
        reqwest::Client::new()
    };
    let page = bare.get(format!("{}/", host.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"));
    let html = page.text().await.unwrap();
    assert!(html.contains("/assets/app.js"));
    for (file, kind) in [
        ("app.js", "javascript"),
        ("style.css", "text/css"),
        ("icon.svg", "image/svg+xml"),
        ("pages/schedules.js", "javascript"),
    ] {
        let r = bare
            .get(format!("{}/assets/{file}", host.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{file}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.contains(kind), "{file}: {ct}");
        let etag = r.headers()["etag"].clone();
        let again = bare
            .get(format!("{}/assets/{file}", host.url))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{file} revalidates");
    }
    let missing = bare
        .get(format!("{}/assets/nope.js", host.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "asset_not_found");
    // The health check tells the page a token is needed; the API still wants it.
    let (_, health) = host.get("/api/v1/health").await;
    assert_eq!(health["auth"], "token");
    let denied = bare
        .get(format!("{}/api/v1/host", host.url))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
}

/// Registers a remote handler `gone` at a closed port, then reports it offline.
async fn register_gone(zmq: &str) {
    use zeromq::{Socket, SocketRecv, SocketSend, ZmqMessage};
    for msg in [
        json!({"method": "register", "params": {"handler_id": "gone",
               "address": "tcp://127.0.0.1:9", "methods": ["work"]}}),
        json!({"method": "report_status", "params": {"handler_id": "gone", "status": "offline"}}),
    ] {
        let mut socket = zeromq::ReqSocket::new();
        socket.connect(zmq).await.expect("connect");
        socket
            .send(ZmqMessage::from(msg.to_string()))
            .await
            .expect("send");
        let reply = tokio::time::timeout(std::time::Duration::from_secs(10), socket.recv())
            .await
            .expect("a reply in time")
            .expect("a reply");
        let reply: Value = serde_json::from_slice(reply.get(0).expect("frame")).expect("JSON");
        assert_eq!(reply["success"], true, "{reply}");
    }
}

/// The Fleet page: how to set the conductor up while it has never run; the fleet view granted
/// from the Handlers page; then the conductor's latest results, health over time included.
#[tokio::test]
async fn the_fleet_page_shows_what_the_conductor_saw() {
    let host = TestHost::start();
    let mut b = Browser::start("fleet").await;
    b.goto(&format!("{}/#/fleet", host.url)).await;
    b.xpath("//*[@id='fleet-never']//pre[contains(., 'plugins grant conductor fleet')]")
        .await;
    b.shot("fleet-never-ran").await;

    // Granted from the Handlers page: the fleet view has no value, a choice of plugin calls.
    b.goto(&format!("{}/#/handlers", host.url)).await;
    let row = "section[data-plugin='conductor'] tr[data-kind='fleet']";
    b.click(&format!("{row} input[name='call_plugins']")).await;
    b.click(&format!("{row} button[type='submit']")).await;
    b.xpath("//section[@data-plugin='conductor']//tr[@data-kind='fleet']//td[contains(., 'pings may call plugins')]")
        .await;
    let (_, grants) = host.get("/api/v1/plugins/conductor/grants").await;
    assert_eq!(grants["events"][0]["actor"], "dashboard", "{grants}");

    for method in [
        "health_check",
        "collect_metrics",
        "get_system_metrics",
        "health_check",
    ] {
        let (status, v) = host
            .post(
                "/api/v1/handlers/conductor/call",
                &json!({"method": method, "params": {}}),
            )
            .await;
        assert_eq!((status, &v["error"]), (200, &Value::Null), "{v}");
    }
    b.goto(&format!("{}/#/fleet", host.url)).await;
    b.xpath("//*[@id='fleet-health']//tr[@data-handler='ding-dong'][@data-alive='true']")
        .await;
    b.xpath("//*[@id='fleet-health']//*[contains(., '100.0 %')]")
        .await;
    b.xpath("//*[@id='fleet-metrics']//tr[@data-handler='conductor'][@data-kind='plugin']")
        .await;
    b.xpath("//*[@id='fleet-system']//*[contains(., 'cores')]")
        .await;
    // Two health checks: a line of two points.
    b.el(".charts svg polyline.c-health").await;
    b.shot("fleet").await;
    // The last health check's detail: how many fleet requests it made and the time they took.
    b.goto(&format!("{}/#/executions", host.url)).await;
    b.click("#executions-table tbody tr[data-id] button").await;
    b.xpath("//*[@id='detail-usage'][contains(., '4 fleet requests (')][contains(., ' ms)')]")
        .await;
    b.assert_no_console_errors().await;
    b.close().await;
}

/// With many handlers, the Fleet page shows the ones down first and folds the others away (a
/// fold the user opened stays open as newer results come in).
#[tokio::test]
async fn the_fleet_page_puts_handlers_down_first_and_folds_the_rest_when_many() {
    let plugins = tempfile::tempdir().unwrap();
    let builtin = crate::support::builtin_plugins();
    std::fs::copy(
        builtin.join("conductor.wasm"),
        plugins.path().join("conductor.wasm"),
    )
    .unwrap();
    // Copies of ding-dong under names of the same length, each a plugin of its own.
    let ding_dong = std::fs::read(builtin.join("ding-dong.wasm")).unwrap();
    for i in 1..=14 {
        let name = format!("copy-{i:04}");
        let mut bytes = ding_dong.clone();
        let mut at = 0;
        while let Some(p) = bytes[at..].windows(9).position(|w| w == b"ding-dong") {
            bytes[at + p..at + p + 9].copy_from_slice(name.as_bytes());
            at += p + 9;
        }
        std::fs::write(plugins.path().join(format!("{name}.wasm")), bytes).unwrap();
    }
    let host = TestHost::start_configured(
        "[plugins.conductor]\nfleet = true\n[plugins.conductor.limits]\nfleet_ping_timeout = \"300ms\"\n",
        &["--plugins-dir", plugins.path().to_str().unwrap()],
    );
    // A remote handler registered at a port nobody listens on: down.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let zmq = crate::bridge::endpoint(&host).await;
    let registered = crate::bridge::request(&zmq, &crate::bridge::register("gone", closed)).await;
    assert_eq!(registered["success"], true, "{registered}");
    let run = |method: &'static str| {
        let host = &host;
        async move {
            let (status, v) = host
                .post(
                    "/api/v1/handlers/conductor/call",
                    &json!({"method": method, "params": {}}),
                )
                .await;
            assert_eq!((status, &v["error"]), (200, &Value::Null), "{v}");
            v["result"].clone()
        }
    };
    let health = run("health_check").await;
    assert_eq!(
        (health["healthy"].as_u64(), health["total"].as_u64()),
        (Some(14), Some(15)),
        "{health}"
    );
    run("collect_metrics").await;

    let mut b = Browser::start("fleet-many").await;
    b.goto(&format!("{}/#/fleet", host.url)).await;
    // The one down is shown; the 14 alive are folded.
    b.xpath("//*[@id='fleet-health']/div[contains(@class,'table-wrap')]//tr[@data-handler='gone'][@data-alive='false']")
        .await;
    b.xpath(
        "//details[@id='fleet-alive'][not(@open)]/summary[contains(., '14 more handlers alive')]",
    )
    .await;
    b.xpath("//details[@id='fleet-figures'][not(@open)]/summary[contains(., 'more plugins, alive and without errors')]")
        .await;
    b.xpath("//*[@id='fleet-metrics']/div[contains(@class,'table-wrap')]//tr[@data-handler='gone'][@data-kind='remote']")
        .await;
    b.shot("fleet-many").await;
    b.click("#fleet-alive > summary").await;
    b.xpath(
        "//details[@id='fleet-alive'][@open]//tr[@data-handler='copy-0014'][@data-alive='true']",
    )
    .await;
    // A newer health check redraws the card (a new fold replaces the marked one): it stays open.
    b.js("document.getElementById('fleet-alive').dataset.seen = 'yes'; return true")
        .await;
    run("health_check").await;
    b.until(
        "the newer health check is drawn",
        "const f = document.getElementById('fleet-alive'); return f !== null && f.dataset.seen === undefined",
    )
    .await;
    b.xpath("//details[@id='fleet-alive'][@open]//tr[@data-handler='copy-0001']")
        .await;
    b.assert_no_console_errors().await;
    b.close().await;
}
