//! The console in a real browser: headless Chromium through chromedriver, or headless
//! Firefox through geckodriver with `CONSOLE_BROWSER=firefox` (WebDriver at
//! `WEBDRIVER_URL`, default `http://127.0.0.1:9515`). Ignored by a plain `cargo test` (it
//! needs the browser); `tests/e2e/console.sh` starts each driver and runs it with
//! `cargo test --test console_browser -- --ignored`.
//!
//! One operator's night, step by step: sign in; alerts posted through the API appear in
//! the open list without a reload; the incident's evidence graph names the root; it is
//! acknowledged; it is reached and opened by keyboard, and no page scrolls sideways at
//! 200% zoom; two incidents are merged; an alert is split out and both incidents show
//! it; a problem candidate is accepted; a viewer sees no action and a forged form post as
//! the viewer gets 403. A failing step leaves a screenshot and the page's HTML in
//! `CONSOLE_SCREENSHOTS` (default: the system temp dir).

mod common;
mod console_common;

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use common::{Backend, Db};
use console_common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// Every wait in the browser is bounded by this.
const WAIT: Duration = Duration::from_secs(20);

async fn browser() -> Client {
    let url = std::env::var("WEBDRIVER_URL")
        .or_else(|_| std::env::var("CHROMEDRIVER_URL"))
        .unwrap_or_else(|_| "http://127.0.0.1:9515".into());
    let firefox = std::env::var("CONSOLE_BROWSER").is_ok_and(|b| b == "firefox");
    let mut caps = serde_json::Map::new();
    if firefox {
        caps.insert(
            "moz:firefoxOptions".into(),
            json!({"args": ["-headless", "--width=1280", "--height=1600"]}),
        );
    } else {
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                            "--disable-dev-shm-usage", "--window-size=1280,1600"]}),
        );
    }
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&url)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot open a browser session at {url} (is the WebDriver server running?): {e}")
        })
}

/// Runs one step; when it fails, keeps a screenshot and the page source, then panics
/// naming the step.
async fn step<F: Future<Output = Result<()>>>(c: &Client, name: &str, f: F) {
    let t = Instant::now();
    match f.await {
        Ok(()) => eprintln!("step ok ({:.1}s): {name}", t.elapsed().as_secs_f64()),
        Err(e) => {
            let dir = std::env::var("CONSOLE_SCREENSHOTS")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|_| std::env::temp_dir());
            let _ = std::fs::create_dir_all(&dir);
            let slug: String = name
                .chars()
                .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' })
                .collect();
            let png = dir.join(format!("{slug}.png"));
            if let Ok(shot) = c.screenshot().await {
                let _ = std::fs::write(&png, shot);
            }
            if let Ok(src) = c.source().await {
                let _ = std::fs::write(dir.join(format!("{slug}.html")), src);
            }
            let url = c
                .current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default();
            panic!(
                "step {name:?} failed at {url}: {e:#}\nscreenshot: {}",
                png.display()
            );
        }
    }
}

/// Polls `f` until it yields `Some`, for at most `WAIT`.
async fn until<T, F, Fut>(what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let end = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        if Instant::now() > end {
            bail!("timed out after {WAIT:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn text_of(c: &Client, css: &str) -> Result<String> {
    Ok(c.find(Locator::Css(css))
        .await
        .with_context(|| format!("no {css}"))?
        .text()
        .await?)
}

async fn click(c: &Client, css: &str) -> Result<()> {
    c.find(Locator::Css(css))
        .await
        .with_context(|| format!("no {css}"))?
        .click()
        .await?;
    Ok(())
}

/// Clicks a submit button whose form asks first (merge, split) and says yes.
async fn click_and_confirm(c: &Client, css: &str) -> Result<()> {
    click(c, css).await?;
    until("the confirmation dialog", || async {
        Ok(c.accept_alert().await.ok())
    })
    .await
}

async fn page_has(c: &Client, what: &str) -> Result<bool> {
    Ok(c.source().await?.contains(what))
}

async fn wait_text(c: &Client, what: &str) -> Result<()> {
    until(&format!("{what:?} on the page"), || async {
        Ok(page_has(c, what).await?.then_some(()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a browser and its WebDriver server: run tests/e2e/console.sh"]
async fn an_operators_night_in_the_browser() {
    let db = Db::new(Backend::Sqlite).await.expect("sqlite");
    let s = start(&db);
    let c = browser().await;
    let base = s.base.clone();
    let url = |p: &str| format!("{base}{p}");

    step(&c, "sign in", async {
        c.goto(&url("/")).await?;
        c.wait()
            .at_most(WAIT)
            .for_element(Locator::Css("#token"))
            .await?;
        c.find(Locator::Css("#token"))
            .await?
            .send_keys(OPERATOR)
            .await?;
        click(&c, "form.signin button[type=submit]").await?;
        c.wait()
            .at_most(WAIT)
            .for_element(Locator::Css("form.filters"))
            .await?;
        let who = text_of(&c, ".who").await?;
        if !who.contains("alice-oncall (operator)") {
            bail!("signed in as {who:?}");
        }
        Ok(())
    })
    .await;

    let mut id = String::new();
    step(&c, "an incident appears live without a reload", async {
        until("the live stream to connect", || async {
            Ok(text_of(&c, "#live-status")
                .await?
                .contains("Live")
                .then_some(()))
        })
        .await?;
        c.execute("window.__sameDocument = 'yes';", vec![]).await?;
        send(
            &s,
            vec![
                alert("PostgresDown", "db-01", "critical", "fp-db", -120),
                alert("HighErrorRate", "orders-api", "error", "fp-api", -60),
                alert("CheckoutSLOBurn", "checkout", "warning", "fp-checkout", -30),
            ],
        )
        .await;
        id = incident_of(&s, "fp-db").await;
        let row = format!("#incidents tr[data-id=\"{id}\"]");
        until("the incident's row", || async {
            Ok(c.find(Locator::Css(&row)).await.ok())
        })
        .await?;
        let same = c
            .execute("return window.__sameDocument || 'reloaded';", vec![])
            .await?;
        if same != json!("yes") {
            bail!("the page was reloaded: {same}");
        }
        Ok(())
    })
    .await;

    step(&c, "the evidence graph names the root", async {
        click(&c, &format!("a[href=\"/incidents/{id}\"]")).await?;
        c.wait()
            .at_most(WAIT)
            .for_element(Locator::Css("figure.graph"))
            .await?;
        let root = c.find(Locator::Css("figure.graph g.node.root")).await?;
        let ci = root.attr("data-ci").await?.unwrap_or_default();
        if ci != "db-01" {
            bail!("the root drawn is {ci:?}");
        }
        let silent = c.find(Locator::Css("figure.graph g.node.silent")).await?;
        if silent.attr("data-ci").await?.as_deref() != Some("conn-pool") {
            bail!("the silent pool is not drawn as silent");
        }
        let caption = text_of(&c, "figure.graph figcaption").await?;
        if !caption.contains("Root db-01") {
            bail!("caption {caption:?}");
        }
        Ok(())
    })
    .await;

    step(&c, "acknowledge", async {
        click(&c, "button[value=acknowledged]").await?;
        wait_text(&c, "status-acknowledged").await?;
        if incident(&s, &id).await["status"] != "acknowledged" {
            bail!("the store does not say acknowledged");
        }
        Ok(())
    })
    .await;

    step(&c, "usable by keyboard and at 200% zoom", async {
        // Keyboard: from the top of the list, Tab reaches the incident's link and Enter
        // opens it (real links and buttons, no mouse-only controls).
        c.goto(&url("/")).await?;
        let href = format!("/incidents/{id}");
        let mut reached = false;
        for _ in 0..80 {
            c.active_element().await?.send_keys("\u{E004}").await?;
            let now = c
                .execute("return document.activeElement.getAttribute('href');", vec![])
                .await?;
            if now == json!(href) {
                reached = true;
                break;
            }
        }
        if !reached {
            bail!("Tab never reached the link to {id}");
        }
        c.active_element().await?.send_keys("\u{E007}").await?;
        until("Enter to open the incident", || async {
            Ok(c.current_url().await?.path().ends_with(&href).then_some(()))
        })
        .await?;
        // 200% zoom is a viewport half as wide: no page may need horizontal scrolling.
        c.set_window_size(640, 900).await?;
        for page in [href.as_str(), "/", "/problems", "/noise"] {
            c.goto(&url(page)).await?;
            let wide = c
                .execute(
                    "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
                    vec![],
                )
                .await?;
            if wide.as_i64().unwrap_or(i64::MAX) > 1 {
                bail!("{page} scrolls sideways by {wide} px at 200% zoom");
            }
        }
        c.set_window_size(1280, 1600).await?;
        c.goto(&url(&href)).await?;
        Ok(())
    })
    .await;

    let mut cache = String::new();
    step(&c, "merge two incidents", async {
        send(
            &s,
            vec![alert("RedisDown", "cache-01", "critical", "fp-cache", -10)],
        )
        .await;
        cache = incident_of(&s, "fp-cache").await;
        if cache == id {
            bail!("the cache alert joined the database incident");
        }
        c.goto(&url(&format!("/incidents/{cache}"))).await?;
        c.wait()
            .at_most(WAIT)
            .for_element(Locator::Css("input[name=into]"))
            .await?;
        c.find(Locator::Css("input[name=into]"))
            .await?
            .send_keys(&id)
            .await?;
        click_and_confirm(&c, "form[action$=\"/merge\"] button[type=submit]").await?;
        // The target's page, now holding the cache alert.
        wait_text(&c, &format!("data-id=\"{id}\"")).await?;
        wait_text(&c, "RedisDown").await?;
        if incident(&s, &cache).await["status"] != "closed" {
            bail!("the merged incident is not closed");
        }
        Ok(())
    })
    .await;

    step(
        &c,
        "split an alert out and see both incidents updated",
        async {
            click(&c, "input[type=checkbox][value=\"fp-cache\"]").await?;
            click_and_confirm(&c, "form[action$=\"/split\"] button[type=submit]").await?;
            let new = until("the split-out incident", || async {
                let n = incident_of(&s, "fp-cache").await;
                Ok((n != id).then_some(n))
            })
            .await?;
            wait_text(&c, &format!("data-id=\"{new}\"")).await?;
            if !page_has(&c, "RedisDown").await? {
                bail!("the new incident's page lacks the split-out alert");
            }
            c.goto(&url(&format!("/incidents/{id}"))).await?;
            c.wait()
                .at_most(WAIT)
                .for_element(Locator::Css("#alerts-h"))
                .await?;
            if page_has(&c, "data-fp=\"fp-cache\"").await? {
                bail!("the old incident still lists the split-out alert");
            }
            let h = text_of(&c, "#alerts-h").await?;
            if h != "Alerts (3)" {
                bail!("the old incident shows {h:?}");
            }
            Ok(())
        },
    )
    .await;

    step(&c, "accept a problem candidate", async {
        let ps = make_problem(&s).await;
        let p = ps
            .iter()
            .find(|p| p["suggested_root_cause"]["ci_id"] == "db-01")
            .ok_or_else(|| anyhow!("no db-01 problem in {ps:?}"))?;
        let pid = p["id"].as_str().unwrap_or_default().to_string();
        c.goto(&url("/problems")).await?;
        c.wait()
            .at_most(WAIT)
            .for_element(Locator::Css("article.problem"))
            .await?;
        let button =
            format!("article.problem[data-id=\"{pid}\"] form input[value=accepted] ~ button");
        click(&c, &button).await?;
        let badge = format!("article.problem[data-id=\"{pid}\"] .problem-accepted");
        until("the accepted badge", || async {
            Ok(c.find(Locator::Css(&badge)).await.ok())
        })
        .await?;
        Ok(())
    })
    .await;

    step(&c, "a viewer sees no actions and a forged post gets 403", async {
        click(&c, "form[action=\"/signout\"] button").await?;
        c.wait().at_most(WAIT).for_element(Locator::Css("#token")).await?;
        c.find(Locator::Css("#token")).await?.send_keys(VIEWER).await?;
        click(&c, "form.signin button[type=submit]").await?;
        c.wait().at_most(WAIT).for_element(Locator::Css("form.filters")).await?;
        c.goto(&url(&format!("/incidents/{id}"))).await?;
        c.wait().at_most(WAIT).for_element(Locator::Css("#alerts-h")).await?;
        let buttons = c.find_all(Locator::Css("main button, main input[type=checkbox]")).await?;
        if !buttons.is_empty() {
            bail!("a viewer sees {} buttons or checkboxes", buttons.len());
        }
        // The forged form: the viewer's own valid CSRF token (from the sign-out form).
        c.execute(
            "const f = document.createElement('form'); f.method = 'post';
             f.action = '/incidents/' + arguments[0] + '/status';
             for (const [k, v] of [['csrf', document.querySelector('input[name=csrf]').value], ['status', 'resolved']]) {
               const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i);
             }
             document.body.appendChild(f); f.submit();",
            vec![json!(id)],
        )
        .await?;
        wait_text(&c, "403 Forbidden").await?;
        if !page_has(&c, "role viewer may not do this").await? {
            bail!("the 403 page does not say why");
        }
        if incident(&s, &id).await["status"] != "acknowledged" {
            bail!("the viewer's forged post changed the incident");
        }
        Ok(())
    })
    .await;

    let _ = c.close().await;
}
