//! The status page at `/`: one self-contained HTML document (inline CSS and
//! SVG, no script, no external asset, so it works offline and behind any
//! proxy) rendered from an [`Assessment`]: the overall verdict, each
//! source's last backup and last drill, the objectives table with the
//! measured values, the readiness checklist, and per source a chart of
//! backup sizes and durations over time. It reloads itself every minute.
//!
//! The page is built with [maud](https://maud.lambda.xyz/), which escapes
//! every value spliced into it (element text and attribute values alike),
//! so a text from the configuration or the repository cannot become markup
//! by being forgotten. The only unescaped parts are the page's own
//! stylesheet ([`STYLE`]) and maud's `DOCTYPE`. The page shows no secret:
//! the assessment holds none.
//!
//! The markup is written to the byte what the page was before maud (the
//! newlines between sections keep the page source readable), except that
//! `&middot;` and `&mdash;` are now the characters themselves and SVG
//! elements are closed with an end tag (`<line …></line>`: maud writes no
//! `/>`).

use chrono::{DateTime, Utc};
use lifeboat_dr::readiness::{Item, Kind, State};
use lifeboat_dr::status::{
    ObjectiveStatus, SnapshotInfo, SourceInput, SourceStatus, Verdict, human,
};
use lifeboat_ops::assess::Assessment;
use maud::{DOCTYPE, Markup, PreEscaped, Render, html};

use crate::output::human_bytes;

/// A text from the configuration or the repository (a source name, a
/// snapshot id, a reason). maud escapes `&`, `<`, `>` and `"`, which is all
/// HTML needs: maud quotes every attribute with `"`. This also writes `'`
/// as `&#39;`, as the page always has, so the bytes people and tests match
/// on stay the same (the 502 page's "repository&#39;s evidence"); the
/// escaping itself is maud's.
struct Text<'a>(&'a str);

impl Render for Text<'_> {
    fn render_to(&self, buffer: &mut String) {
        let mut parts = self.0.split('\'');
        if let Some(first) = parts.next() {
            first.render_to(buffer);
        }
        for part in parts {
            buffer.push_str("&#39;");
            part.render_to(buffer);
        }
    }
}

fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A duration for a person: tenths below 10 s (backups of small sources
/// take a second), [`human`] above.
fn dur(seconds: f64) -> String {
    if seconds < 10.0 {
        format!("{:.1}s", seconds.max(0.0))
    } else {
        human(seconds)
    }
}

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Ok => "ok",
        Verdict::AtRisk => "risk",
        Verdict::Failing => "fail",
    }
}

fn badge(class: &str, text: &str) -> Markup {
    html! { span class={ "badge " (class) } { (Text(text)) } }
}

const STYLE: &str = r#"
:root{--fg:#1f2328;--muted:#59636e;--bg:#ffffff;--panel:#f6f8fa;--line:#d1d9e0;
--ok:#1a7f37;--ok-bg:#dafbe1;--risk:#9a6700;--risk-bg:#fff8c5;--fail:#cf222e;--fail-bg:#ffebe9;
--info:#0969da;--info-bg:#ddf4ff;--read:#0969da;--stored:#1a7f37;--dur:#bc4c00}
@media (prefers-color-scheme: dark){:root{--fg:#e6edf3;--muted:#9198a1;--bg:#0d1117;--panel:#151b23;
--line:#3d444d;--ok:#3fb950;--ok-bg:#12261e;--risk:#d29922;--risk-bg:#272115;--fail:#f85149;
--fail-bg:#2d1517;--info:#4493f8;--info-bg:#121d2f;--read:#4493f8;--stored:#3fb950;--dur:#db6d28}}
*{box-sizing:border-box}
body{margin:0;padding:24px 32px 48px;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--fg);background:var(--bg)}
header{display:flex;justify-content:space-between;align-items:baseline;flex-wrap:wrap;gap:8px}
h1{font-size:22px;margin:0}
h2{font-size:18px;margin:32px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
.muted{color:var(--muted)}
.small{font-size:13px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
.banner{margin:16px 0 8px;padding:16px 20px;border-radius:8px;border:2px solid;display:flex;gap:20px;align-items:center}
.banner .word{font-size:30px;font-weight:700;letter-spacing:.04em;text-transform:uppercase;white-space:nowrap}
.banner .why{font-size:16px}
.banner.ok{border-color:var(--ok);background:var(--ok-bg)}.banner.ok .word{color:var(--ok)}
.banner.risk{border-color:var(--risk);background:var(--risk-bg)}.banner.risk .word{color:var(--risk)}
.banner.fail{border-color:var(--fail);background:var(--fail-bg)}.banner.fail .word{color:var(--fail)}
table{border-collapse:collapse;width:100%;margin:4px 0}
th,td{text-align:left;vertical-align:top;padding:7px 10px;border-bottom:1px solid var(--line)}
th{font-size:13px;font-weight:600;color:var(--muted);background:var(--panel)}
td.num{white-space:nowrap}
tr.reasons td{border-bottom:1px solid var(--line);padding-top:0;color:var(--muted);font-size:13px}
tr.reasons ul{margin:0;padding-left:18px}
tr.has-reasons td{border-bottom:none}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;white-space:nowrap;border:1px solid}
.badge.ok{color:var(--ok);background:var(--ok-bg);border-color:var(--ok)}
.badge.risk{color:var(--risk);background:var(--risk-bg);border-color:var(--risk)}
.badge.fail{color:var(--fail);background:var(--fail-bg);border-color:var(--fail)}
.badge.info{color:var(--info);background:var(--info-bg);border-color:var(--info)}
.badge.none{color:var(--muted);background:var(--panel);border-color:var(--line)}
.charts{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0;padding:12px;border:1px solid var(--line);border-radius:8px;background:var(--panel);flex:1 1 560px;max-width:760px}
figcaption{font-weight:600;margin-bottom:6px}
svg{display:block;width:100%;height:auto}
svg text{fill:var(--muted);font:11px system-ui,sans-serif}
svg .grid{stroke:var(--line);stroke-width:1}
svg .read{stroke:var(--read);fill:none;stroke-width:2}
svg .stored{stroke:var(--stored);fill:none;stroke-width:2}
svg .dur{stroke:var(--dur);fill:none;stroke-width:2}
svg circle.read{fill:var(--read)}svg circle.stored{fill:var(--stored)}svg circle.dur{fill:var(--dur)}
.legend span{display:inline-block;margin-right:14px;font-size:12px;color:var(--muted)}
.legend i{display:inline-block;width:12px;height:3px;margin-right:5px;vertical-align:middle}
footer{margin-top:36px;font-size:12px;color:var(--muted)}
"#;

/// `<head>` of both pages: charset, viewport, the one-minute refresh, the
/// title and the stylesheet.
fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta http-equiv="refresh" content="60";
            title { "Lifeboat: " (Text(title)) }
            style { (PreEscaped(STYLE)) }
        }
    }
}

/// The status page for an assessment.
pub fn render(a: &Assessment) -> String {
    let st = &a.status;
    html! {
        (DOCTYPE) "\n"
        html lang="en" {
            (head(st.verdict.as_str()))
            body {
                "\n"
                header {
                    h1 { "Lifeboat status" }
                    span class="muted small" {
                        "assessed " (utc(st.now)) " · refreshes every minute"
                    }
                }
                "\n"
                (banner(a))
                (sources(&st.sources))
                (objectives(a))
                @if let Some(r) = &st.regions {
                    (regions(r))
                }
                (history(&a.sources))
                (readiness(a))
                footer {
                    "lifeboat " (env!("CARGO_PKG_VERSION"))
                    " · the same assessment as " code { "lifeboat status" } " and "
                    code { "lifeboat readiness" } ", read from the repository at "
                    (utc(st.now)) "."
                }
                "\n"
            }
        }
        "\n"
    }
    .into_string()
}

fn banner(a: &Assessment) -> Markup {
    let st = &a.status;
    let r = &a.readiness;
    let failed = r.items.iter().filter(|i| i.state == State::Fail).count();
    let auto = r.items.iter().filter(|i| i.kind == Kind::Automated).count();
    let ready = if r.ready {
        format!("ready: all {auto} automated checks pass")
    } else {
        format!("not ready: {failed} of {auto} automated checks fail")
    };
    html! {
        section id="verdict" class={ "banner " (verdict_class(st.verdict)) }
            aria-label="overall verdict" {
            div class="word" { (Text(st.verdict.as_str())) }
            div {
                div class="why" { (Text(&st.reason)) }
                // Every other reason too: the first one alone could hide an
                // uncovered objective behind a late backup.
                @if st.reasons.len() > 1 {
                    ul class="small" {
                        @for r in st.reasons.iter().skip(1) {
                            li { (Text(r)) }
                        }
                    }
                }
                div class="small muted" { "Readiness: " (Text(&ready)) }
            }
        }
        "\n"
    }
}

/// ", 2 partial (not counted)" after a snapshot count; empty for none.
fn partial_note(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(", {n} partial (not counted)")
    }
}

fn sources(list: &[SourceStatus]) -> Markup {
    html! {
        section id="sources" {
            h2 { "Sources" }
            "\n"
            table {
                thead {
                    tr {
                        th { "Source" } th { "Schedule" } th { "Last full backup" }
                        th { "RPO exposure / objective" } th { "Last drill" }
                        th { "RTO objective" } th { "Verdict" }
                    }
                }
                tbody {
                    "\n"
                    @if list.is_empty() {
                        tr { td colspan="7" { "no sources are configured" } }
                        "\n"
                    }
                    @for s in list {
                        (source_row(s))
                    }
                }
            }
        }
        "\n"
    }
}

/// The newest physical base backup under the last backup, for a source
/// that has one or `physical.schedule`; nothing otherwise.
fn physical_backup(s: &SourceStatus) -> Markup {
    html! {
        @match (&s.last_physical_backup, &s.physical_schedule) {
            (Some(b), _) => {
                br;
                span class="muted small physical" {
                    "physical: " (utc(b.time)) " · " (human(b.age_seconds)) " ago · "
                    span class="mono" { (Text(&b.snapshot[..b.snapshot.len().min(8)])) }
                    " · " (s.physical_snapshots) " base backup(s)"
                    @if let Some(c) = &s.physical_schedule {
                        " · " span class="mono" { (Text(c)) }
                    }
                }
            }
            (None, Some(c)) => {
                br;
                span class="small physical" {
                    (badge("risk", "no base backup")) " physical: "
                    span class="mono" { (Text(c)) }
                }
            }
            (None, None) => {}
        }
    }
}

/// A source's row in the sources table, and under it a row of its
/// reasons when it has any.
fn source_row(s: &SourceStatus) -> Markup {
    let backup = html! {
        @match &s.last_backup {
            Some(b) => {
                (utc(b.time)) br;
                span class="muted small" {
                    (human(b.age_seconds)) " ago · "
                    span class="mono" { (Text(&b.snapshot[..b.snapshot.len().min(8)])) }
                    " · " (s.snapshots) " snapshot(s)" (partial_note(s.partial_snapshots))
                }
            }
            None if s.partial_snapshots > 0 => {
                (badge("fail", "never")) br;
                span class="muted small" { (s.partial_snapshots) " partial snapshot(s) only" }
            }
            None => { (badge("fail", "never")) }
        }
        (physical_backup(s))
    };
    let rpo = html! {
        @match (s.rpo_exposure_seconds, &s.objectives.rpo) {
            (Some(e), Some(t)) => {
                (badge(if e > t.seconds as f64 { "risk" } else { "ok" }, &human(e)))
                " / " (human(t.seconds as f64)) br;
                span class="muted small" { (Text(&t.scenario)) }
            }
            (Some(e), None) => { (human(e)) " / none" }
            (None, Some(t)) => {
                "— / " (human(t.seconds as f64)) br;
                span class="muted small" { (Text(&t.scenario)) }
            }
            (None, None) => { "—" }
        }
    };
    let drill = html! {
        @match &s.last_drill {
            None => { (badge("risk", "never")) }
            Some(d) if d.ok => {
                (badge("ok", "ok")) " " (utc(d.started)) br;
                span class="muted small" {
                    (human(d.age_seconds)) " ago · RTO " (human(d.rto_seconds))
                    " · RPO " (human(d.rpo_seconds))
                }
            }
            Some(d) => {
                (badge("fail", "failed")) " " (utc(d.started)) br;
                span class="muted small" {
                    (Text(d.failure.as_deref().unwrap_or("no reason recorded")))
                }
            }
        }
    };
    let rto = html! {
        @match &s.objectives.rto {
            Some(t) => {
                (human(t.seconds as f64)) br;
                span class="muted small" { (Text(&t.scenario)) }
            }
            None => { "none" }
        }
    };
    let has_reasons = !s.reasons.is_empty();
    html! {
        tr class=[has_reasons.then_some("has-reasons")] {
            td {
                strong { (Text(&s.source)) } br;
                span class="muted small" { (Text(&s.kind)) }
            }
            td class="mono" {
                @match &s.schedule {
                    Some(sched) => { (Text(sched)) }
                    None => { "none (API only)" }
                }
            }
            td { (backup) }
            td { (rpo) }
            td { (drill) }
            td { (rto) }
            td { (badge(verdict_class(s.verdict), s.verdict.as_str())) }
        }
        "\n"
        @if has_reasons {
            tr class="reasons" {
                td colspan="7" {
                    ul { @for r in &s.reasons { li { (Text(r)) } } }
                }
            }
            "\n"
        }
    }
}

fn objectives(a: &Assessment) -> Markup {
    html! {
        section id="objectives" {
            h2 { "Objectives" }
            "\n"
            table {
                thead {
                    tr {
                        th { "Scenario" } th { "Priority" } th { "RTO objective" }
                        th { "Measured RTO" } th { "RPO objective" } th { "RPO exposure" }
                        th { "Covered by" } th { "Met" }
                    }
                }
                tbody {
                    "\n"
                    @if a.status.objectives.is_empty() {
                        tr {
                            td colspan="8" {
                                "no objectives are configured ("
                                code { "objectives:" } " scenario, rto, rpo)"
                            }
                        }
                        "\n"
                    }
                    @for o in &a.status.objectives {
                        (objective_row(o))
                    }
                }
            }
            p class="muted small" {
                "Measured RTO: the slowest of the covering sources' last successful drills. \
                 RPO exposure: the oldest of their last backups, now. An objective nothing \
                 measures puts the verdict at risk unless the configuration says what covers \
                 it elsewhere, who attested it and when."
            }
        }
        "\n"
    }
}

/// The regions: the authority, every region's role and lag, the last
/// change of primary against the region-failure objective, the warnings.
fn regions(o: &lifeboat_dr::regions::RegionsOverview) -> Markup {
    let primary = o.authority.as_ref().and_then(|a| a.primary.as_deref());
    let secs = |v: Option<f64>| v.map(dur).unwrap_or_else(|| "-".into());
    html! {
        section id="regions" {
            h2 { "Regions" }
            "\n"
            @for w in &o.warnings {
                p { (badge("fail", "warning")) " " (Text(w)) }
            }
            @if let Some(a) = &o.authority {
                p {
                    @match (&a.error, &a.primary, a.epoch) {
                        (Some(e), _, _) => {
                            (badge("fail", "etcd unreachable")) " " (Text(e))
                        }
                        (None, Some(p), Some(epoch)) => {
                            "Authority: primary " strong { (Text(p)) } ", epoch " strong { (epoch) }
                            @if let Some(t) = a.changed_at { " since " (utc(t)) }
                            @if let Some(by) = &a.changed_by { " (" (Text(by)) ")" }
                            ". Leases: "
                            @if a.leases.is_empty() { "none" }
                            @for (i, l) in a.leases.iter().enumerate() {
                                @if i > 0 { ", " }
                                (Text(&l.region)) " (" (l.ttl_remaining_seconds) "s left"
                                @if let Some(h) = &l.holder { ", " (Text(h)) }
                                ")"
                            }
                            "."
                        }
                        _ => { "Authority: not initialized in etcd yet." }
                    }
                }
                @if let Some(l) = &a.last_change {
                    p {
                        "Last change of primary: " (Text(&l.kind)) " " (Text(&l.from)) " → "
                        (Text(&l.to)) " (epoch " (l.epoch) ") " (Text(&l.outcome)) " at "
                        (utc(l.started_at)) ": RTO " (secs(l.rto_seconds))
                        @if let Some(o) = l.rto_objective_seconds { " of " (dur(o)) }
                        ", RPO " (secs(l.rpo_seconds))
                        @if !l.rpo_exact { " (upper bound)" }
                        @if let Some(o) = l.rpo_objective_seconds { " of " (dur(o)) }
                        " "
                        @match l.met {
                            Some(true) => { (badge("ok", "met")) }
                            Some(false) => { (badge("fail", "missed")) }
                            None => { (badge("risk", "not judged")) }
                        }
                    }
                }
            }
            table {
                thead {
                    tr {
                        th { "Region" } th { "Authority" } th { "Server" } th { "Streaming" }
                        th { "Lag" } th { "Heartbeat age" }
                    }
                }
                tbody {
                    "\n"
                    @for r in &o.regions {
                        tr {
                            td { (Text(&r.name)) }
                            td {
                                @match primary {
                                    Some(p) if p == r.name => { "primary" }
                                    Some(_) => { "standby" }
                                    None => { (Text(&r.declared_role)) " (declared)" }
                                }
                            }
                            td {
                                @match r.observed_role.as_str() {
                                    "unreachable" => { (badge("fail", "unreachable")) }
                                    other => { (Text(other)) }
                                }
                                @if let Some(why) = &r.reason { br; span class="muted small" { (Text(why)) } }
                            }
                            td {
                                @if r.observed_role == "standby" {
                                    @if r.streaming { (badge("ok", "yes")) } @else { (badge("fail", "no")) }
                                } @else { "-" }
                            }
                            td { (secs(r.lag_seconds)) }
                            td { (secs(r.heartbeat_age_seconds)) }
                        }
                        "\n"
                    }
                }
            }
            p class="muted small" {
                "Server: what each region's PostgreSQL answers now. Authority: what etcd says                  (the only primary that may take writes). Heartbeat age: what a failover to the                  standby would lose now."
            }
        }
        "\n"
    }
}

/// A measured value, or a dash when nothing measured it.
fn measured(v: Option<f64>) -> Markup {
    html! {
        @match v {
            Some(s) => { (human(s)) }
            None => { "—" }
        }
    }
}

fn objective_row(o: &ObjectiveStatus) -> Markup {
    // Not measured and not attested as covered elsewhere: at risk.
    let met = match (o.met, &o.risk) {
        (Some(true), _) => badge("ok", "met"),
        (Some(false), _) => badge("fail", "missed"),
        (None, Some(_)) => badge("risk", "not measured"),
        (None, None) if o.objective.covered_elsewhere.is_some() => {
            badge("info", "covered elsewhere")
        }
        (None, None) => badge("none", "not measured"),
    };
    let covered = html! {
        @if o.sources.is_empty() {
            @match &o.objective.covered_elsewhere {
                Some(c) => { em { (Text(&c.covered_by)) } }
                None => { "—" }
            }
        } @else {
            @for (i, s) in o.sources.iter().enumerate() {
                @if i > 0 { ", " }
                (Text(s))
            }
        }
    };
    let rpo = o.objective.rpo.num_seconds();
    html! {
        tr {
            td { strong { (Text(&o.objective.scenario)) } }
            td {
                @match &o.objective.priority {
                    Some(p) => { (Text(p)) }
                    None => { "—" }
                }
            }
            td class="num" { (human(o.objective.rto.num_seconds() as f64)) }
            td class="num" { (measured(o.measured_rto_seconds)) }
            td class="num" {
                @if rpo <= 0 { "0 (no data loss)" } @else { (human(rpo as f64)) }
            }
            td class="num" { (measured(o.rpo_exposure_seconds)) }
            td { (covered) }
            td {
                (met)
                @if let Some(n) = &o.note {
                    br;
                    span class="muted small" { (Text(n)) }
                }
            }
        }
        "\n"
    }
}

fn readiness(a: &Assessment) -> Markup {
    let r = &a.readiness;
    html! {
        section id="readiness" {
            h2 { "Readiness checklist" }
            "\n"
            p {
                @if r.ready { (badge("ok", "ready")) } @else { (badge("fail", "not ready")) }
                " "
                span class="muted small" { "assessed " (utc(r.now)) }
            }
            "\n"
            table {
                thead {
                    tr { th { "State" } th { "Item" } th { "Detail" } th { "Judged" } }
                }
                tbody {
                    "\n"
                    @for it in &r.items {
                        (readiness_row(it))
                    }
                }
            }
        }
        "\n"
    }
}

fn readiness_row(it: &Item) -> Markup {
    let cls = match it.state {
        State::Pass => "ok",
        State::Fail => "fail",
        State::Attested => "info",
        State::Unattested | State::NotConfigured => "none",
    };
    let kind = match it.kind {
        Kind::Automated => "automatically",
        Kind::Manual => "by a person",
        Kind::NotConfigured => "not configured",
    };
    html! {
        tr id={ "item-" (Text(it.id)) } {
            td { (badge(cls, it.state.as_str())) }
            td {
                strong { (Text(&it.title)) } br;
                span class="muted small" { "checklist line: " (Text(it.seed)) }
            }
            td {
                @if it.detail.is_empty() { "—" } @else { (Text(&it.detail)) }
            }
            td class="muted small" { (kind) }
        }
        "\n"
    }
}

fn history(inputs: &[SourceInput]) -> Markup {
    html! {
        section id="history" {
            h2 { "Backup history" }
            "\n"
            div class="legend" {
                span { i style="background:var(--read)" {} "bytes read" }
                span {
                    i style="background:var(--stored)" {}
                    "bytes stored (after dedup and compression)"
                }
                span { i style="background:var(--dur)" {} "duration" }
            }
            "\n"
            div class="charts" {
                "\n"
                @if inputs.is_empty() {
                    p class="muted" { "no sources are configured" }
                    "\n"
                }
                @for s in inputs {
                    figure {
                        figcaption {
                            (Text(&s.name)) " "
                            span class="muted small" {
                                (s.snapshots.len()) " snapshot(s) in the repository"
                            }
                        }
                        (chart(&s.name, &s.snapshots))
                    }
                    "\n"
                }
            }
        }
        "\n"
    }
}

/// Dots carry a tooltip each up to this many snapshots; beyond, lines only.
const MAX_DOTS: usize = 200;

// The chart's geometry, in SVG user units.
const W: f64 = 640.0;
const L: f64 = 72.0;
const R: f64 = 16.0;
const PH: f64 = 80.0;
const TOP1: f64 = 16.0;
const TOP2: f64 = TOP1 + PH + 34.0;
const H: f64 = TOP2 + PH + 30.0;

/// Two panels on one time axis: sizes (read, stored) above, duration below.
fn chart(name: &str, snaps: &[SnapshotInfo]) -> Markup {
    if snaps.is_empty() {
        return html! { p class="muted small" { "no snapshots yet" } };
    }
    let mut snaps: Vec<&SnapshotInfo> = snaps.iter().collect();
    snaps.sort_by_key(|s| s.time);
    let pw = W - L - R;
    let (t0, t1) = (snaps[0].time, snaps[snaps.len() - 1].time);
    let span = (t1 - t0).num_milliseconds() as f64;
    let x = |t: DateTime<Utc>| {
        if span <= 0.0 {
            L + pw / 2.0
        } else {
            L + pw * (t - t0).num_milliseconds() as f64 / span
        }
    };
    let max_bytes = snaps
        .iter()
        .map(|s| s.bytes_read.max(s.bytes_stored))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let max_dur = snaps
        .iter()
        .map(|s| s.duration_seconds)
        .fold(0.0_f64, f64::max)
        .max(0.1);
    let y = |top: f64, v: f64, max: f64| top + PH - PH * (v / max).clamp(0.0, 1.0);
    let stamp = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    let bottom = TOP2 + PH + 18.0;
    type Value<'a> = &'a dyn Fn(&SnapshotInfo) -> f64;
    let series: [(&str, f64, f64, Value); 3] = [
        ("read", TOP1, max_bytes, &|s| s.bytes_read as f64),
        ("stored", TOP1, max_bytes, &|s| s.bytes_stored as f64),
        ("dur", TOP2, max_dur, &|s| s.duration_seconds),
    ];
    html! {
        svg viewBox={ "0 0 " (W) " " (H) } role="img"
            aria-label={ "backup sizes and durations of " (Text(name)) }
            xmlns="http://www.w3.org/2000/svg" {
            // Axes and labels of both panels.
            @for (top, label_max, title) in [
                (TOP1, human_bytes(max_bytes as u64), "size"),
                (TOP2, dur(max_dur), "duration"),
            ] {
                line class="grid" x1=(L) y1=(top) x2=(W - R) y2=(top) stroke-dasharray="3 3" {}
                line class="grid" x1=(L) y1=(top + PH) x2=(W - R) y2=(top + PH) {}
                text x=(L - 6.0) y=(top + 4.0) text-anchor="end" { (label_max) }
                text x=(L - 6.0) y=(top + PH) text-anchor="end" { "0" }
                text x=(L) y=(top - 5.0) { (title) }
            }
            @if span <= 0.0 {
                text x=(L + pw / 2.0) y=(bottom) text-anchor="middle" { (stamp(t0)) }
            } @else {
                text x=(L) y=(bottom) { (stamp(t0)) }
                text x=(W - R) y=(bottom) text-anchor="end" { (stamp(t1)) }
            }
            @for (cls, top, max, value) in series {
                @if snaps.len() > 1 {
                    polyline class=(cls) points={
                        @for (i, s) in snaps.iter().enumerate() {
                            @if i > 0 { " " }
                            (format_args!("{:.1},{:.1}", x(s.time), y(top, value(s), max)))
                        }
                    } {}
                }
                @if snaps.len() <= MAX_DOTS {
                    @for s in &snaps {
                        circle class=(cls) cx=(format_args!("{:.1}", x(s.time)))
                            cy=(format_args!("{:.1}", y(top, value(s), max))) r="3" {
                            title {
                                (utc(s.time)) " · " (Text(&s.id[..s.id.len().min(8)]))
                                ": read " (human_bytes(s.bytes_read)) ", stored "
                                (human_bytes(s.bytes_stored)) ", took "
                                (dur(s.duration_seconds))
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The page when the assessment cannot be made: what failed, as HTML.
pub fn render_error(what: &str) -> String {
    html! {
        (DOCTYPE) "\n"
        html lang="en" {
            (head("cannot assess"))
            body {
                "\n"
                header {
                    h1 { "Lifeboat status" }
                    span class="muted small" { (utc(Utc::now())) }
                }
                "\n"
                section id="verdict" class="banner fail" {
                    div class="word" { "unknown" }
                    div {
                        div class="why" { "The status cannot be assessed: " (Text(what)) }
                        div class="small muted" {
                            "Backups may still be running; the daemon's log and "
                            code { "/metrics" }
                            " say more. This page retries every minute."
                        }
                    }
                }
                "\n"
            }
        }
        "\n"
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;
    use lifeboat_dr::objectives::Objective;
    use lifeboat_dr::readiness::{self, Daemon};
    use lifeboat_dr::record::{DrillRecord, Stored};
    use lifeboat_dr::status::{self, Policy};

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + TimeDelta::hours(h)
    }

    fn source(
        name: &str,
        snaps: Vec<SnapshotInfo>,
        drills: Vec<Stored<DrillRecord>>,
    ) -> SourceInput {
        SourceInput {
            name: name.into(),
            kind: "postgres".into(),
            schedule: Some("0 * * * *".into()),
            physical_schedule: None,
            drill_schedule: None,
            covers: vec!["database-corruption".into()],
            retention: None,
            snapshots: snaps,
            drills,
            drill_kinds: vec![],
        }
    }

    fn snap(id: &str, t: DateTime<Utc>, read: u64) -> SnapshotInfo {
        SnapshotInfo {
            id: id.into(),
            time: t,
            bytes_read: read,
            bytes_stored: read / 10,
            duration_seconds: 2.5,
            scope: lifeboat_repo::retention::FULL_SCOPE.into(),
            physical: false,
        }
    }

    fn drill(source: &str, ok: bool, started: DateTime<Utc>) -> Stored<DrillRecord> {
        Stored {
            id: "d1".into(),
            record: DrillRecord {
                version: 1,
                source: source.into(),
                kind: "postgres".into(),
                snapshot: "s1".into(),
                snapshot_time: started,
                started,
                finished: started + TimeDelta::seconds(95),
                ok,
                failure: (!ok).then(|| "blob <7f> in pack data/ab/cd is corrupt".into()),
                rto_seconds: 95.0,
                rpo_seconds: 60.0,
                target: "throwaway PostgreSQL 15".into(),
                trigger: "cli".into(),
                hostname: "h".into(),
                program: "lifeboat".into(),
                steps: vec![],
                differences: vec![],
            },
        }
    }

    fn assess(sources: Vec<SourceInput>, now: DateTime<Utc>) -> Assessment {
        let objectives = vec![Objective {
            scenario: "database-corruption".into(),
            rto: TimeDelta::minutes(30),
            rpo: TimeDelta::hours(1),
            priority: Some("P1".into()),
            covered_elsewhere: None,
        }];
        assess_with(sources, objectives, now)
    }

    fn assess_with(
        sources: Vec<SourceInput>,
        objectives: Vec<Objective>,
        now: DateTime<Utc>,
    ) -> Assessment {
        let policy = Policy::default();
        let st = status::evaluate(&sources, &objectives, &policy, now);
        let none = |_: &str| None;
        let ready = readiness::evaluate(&readiness::Inputs {
            sources: &sources,
            status: &st,
            checks: &[],
            daemon: Daemon::Absent,
            encryption: Default::default(),
            attestation: &none,
            policy,
            now,
        });
        Assessment {
            status: st,
            readiness: ready,
            sources,
        }
    }

    /// A hostile source name and drill failure (markup, both quotes, an
    /// ampersand) come out as text wherever the page shows them: the
    /// sources table, the reasons, the objectives' "covered by", the chart's
    /// caption and its `aria-label` attribute; a plain name is unchanged.
    #[test]
    fn escapes_every_special_character() {
        let evil = r#"<script>alert("x" & 'y')</script>"#;
        let escaped = "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;";
        let mut failed = drill(evil, false, at(1));
        failed.record.failure = Some(format!("pg_restore said {evil}"));
        let a = assess(
            vec![
                source(evil, vec![snap("s1", at(1), 1000)], vec![failed]),
                source("plain-name_1", vec![], vec![]),
            ],
            at(2),
        );
        let page = render(&a);
        assert!(!page.contains("<script"), "a raw tag from the data");
        assert!(!page.contains("alert(\""), "a raw quote from the data");
        assert!(page.contains(&format!("<strong>{escaped}</strong>")));
        assert!(page.contains(&format!("pg_restore said {escaped}</span>")));
        assert!(page.contains(&format!("<figcaption>{escaped} ")));
        assert!(page.contains(&format!(
            "aria-label=\"backup sizes and durations of {escaped}\""
        )));
        assert!(page.contains("<strong>plain-name_1</strong>"));
        let p = render_error(evil);
        assert!(p.contains(&format!("The status cannot be assessed: {escaped}</div>")));
        assert!(!p.contains("<script"));
    }

    #[test]
    fn names_from_config_and_repository_are_escaped() {
        let evil = "<img src=x onerror=alert(1)>";
        let a = assess(
            vec![source(
                evil,
                vec![snap("<b>snap", at(1), 1000)],
                vec![drill(evil, false, at(1))],
            )],
            at(2),
        );
        let page = render(&a);
        assert!(!page.contains(evil), "raw source name in the page");
        assert!(!page.contains("<b>snap"), "raw snapshot id in the page");
        assert!(!page.contains("blob <7f>"), "raw drill failure in the page");
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(page.contains("blob &lt;7f&gt; in pack data/ab/cd is corrupt"));
        // The only elements are ours: no tag from the data.
        assert!(!page.contains("<img"));
        assert!(!page.contains("<b>"));
    }

    #[test]
    fn sources_objectives_history_and_checklist_appear() {
        let a = assess(
            vec![
                source(
                    "kubernaut-db",
                    vec![
                        snap("aaaaaaaa11", at(1), 10 << 20),
                        snap("bbbbbbbb22", at(2), 12 << 20),
                    ],
                    vec![drill("kubernaut-db", true, at(2))],
                ),
                source("configmaps", vec![], vec![]),
            ],
            at(2) + TimeDelta::minutes(5),
        );
        let page = render(&a);
        assert!(page.starts_with("<!DOCTYPE html>"));
        for needle in [
            "kubernaut-db",
            "configmaps",
            "database-corruption",
            "id=\"objectives\"",
            "id=\"sources\"",
            "id=\"readiness\"",
            "id=\"history\"",
            "Readiness checklist",
            "2026-11-01 02:00:00 UTC",
            "5m 0s ago",
            "30m 0s",
            "1h 0m",
            "1m 35s",
            "<svg",
            "<polyline class=\"read\"",
            "12.0 MiB",
            "item-restore-drills",
        ] {
            assert!(page.contains(needle), "{needle:?} missing from the page");
        }
        // Self-contained: nothing is fetched from anywhere.
        for external in [
            "src=\"http",
            "href=\"http",
            "<link",
            "<script",
            "@import",
            "url(",
        ] {
            assert!(!page.contains(external), "{external:?} in the page");
        }
        // The source without snapshots says so instead of drawing nothing.
        assert!(page.contains("no snapshots yet"));
        // configmaps has no backup: the whole verdict fails.
        assert!(page.contains("class=\"banner fail\""));
    }

    /// A `--table` snapshot newer than the full one: the page's last
    /// backup and RPO exposure are the full one's, and the partial one is
    /// named as not counted.
    #[test]
    fn a_partial_snapshot_is_not_the_last_backup_on_the_page() {
        let partial = SnapshotInfo {
            scope: "tables: public.audit".into(),
            ..snap("pppppppp22", at(3), 1 << 20)
        };
        let a = assess(
            vec![source(
                "kubernaut-db",
                vec![snap("ffffffff11", at(1), 10 << 20), partial],
                vec![drill("kubernaut-db", true, at(1))],
            )],
            at(3),
        );
        let page = render(&a);
        assert!(page.contains("Last full backup"));
        assert!(page.contains("<span class=\"mono\">ffffffff</span>"));
        assert!(page.contains("2 snapshot(s), 1 partial (not counted)"));
        assert!(page.contains("2026-11-01 01:00:00 UTC"));
        assert!(
            page.contains("2h 0m"),
            "the exposure is the full snapshot's age"
        );
    }

    #[test]
    fn the_newest_base_backup_is_shown_under_the_last_backup() {
        let base = SnapshotInfo {
            physical: true,
            ..snap("bbbbbbbb33", at(2), 10 << 20)
        };
        let mut src = source(
            "kubernaut-db",
            vec![snap("ffffffff11", at(1), 10 << 20), base],
            vec![drill("kubernaut-db", true, at(1))],
        );
        src.physical_schedule = Some("0 2 * * *".into());
        let page = render(&assess(vec![src.clone()], at(3)));
        assert!(
            page.contains("physical: 2026-11-01 02:00:00 UTC · 1h 0m ago · <span class=\"mono\">bbbbbbbb</span> · 1 base backup(s)"),
            "{page}"
        );
        assert!(page.contains("<span class=\"mono\">0 2 * * *</span>"));
        // Scheduled, never taken: said in the cell (and as a reason).
        src.snapshots.pop();
        let page = render(&assess(vec![src.clone()], at(3)));
        assert!(page.contains("no base backup"), "{page}");
        // Neither: nothing about physical backups.
        src.physical_schedule = None;
        let page = render(&assess(vec![src], at(3)));
        assert!(!page.contains("class=\"muted small physical\""));
        assert!(!page.contains("no base backup"));
    }

    #[test]
    fn a_failing_verdict_shows_in_the_banner_with_its_reason() {
        let a = assess(
            vec![source(
                "db",
                vec![snap("s1", at(1), 100)],
                vec![drill("db", false, at(1))],
            )],
            at(1) + TimeDelta::minutes(10),
        );
        assert_eq!(a.status.verdict, Verdict::Failing);
        let page = render(&a);
        assert!(page.contains("<title>Lifeboat: failing</title>"));
        assert!(page.contains("class=\"banner fail\""));
        assert!(page.contains("<div class=\"word\">failing</div>"));
        assert!(page.contains("the last drill (2026-11-01 01:00 UTC) failed"));
        assert!(page.contains("not ready"));
        assert!(page.contains(">failed</span>"));
    }

    #[test]
    fn at_risk_and_ok_banners_differ() {
        // No drill yet: at risk.
        let risky = assess(
            vec![source("db", vec![snap("s1", at(1), 100)], vec![])],
            at(1),
        );
        assert_eq!(risky.status.verdict, Verdict::AtRisk);
        let page = render(&risky);
        assert!(page.contains("class=\"banner risk\""));
        assert!(page.contains("no restore drill has been run"));
        // The drill column says never.
        assert!(page.contains(">never</span>"));
        let fine = assess(
            vec![source(
                "db",
                vec![snap("s1", at(1), 100)],
                vec![drill("db", true, at(1))],
            )],
            at(1) + TimeDelta::minutes(1),
        );
        assert_eq!(fine.status.verdict, Verdict::Ok);
        assert!(render(&fine).contains("class=\"banner ok\""));
    }

    /// A region-failure objective nothing covers: the page is at risk and
    /// says why, though the source is ok; attested as covered elsewhere, the
    /// page shows what covers it, who attested it and when.
    #[test]
    fn an_uncovered_objective_is_at_risk_on_the_page_until_attested() {
        let region = |covered: Option<lifeboat_dr::objectives::CoveredElsewhere>| Objective {
            scenario: "region-failure".into(),
            rto: TimeDelta::minutes(15),
            rpo: TimeDelta::minutes(5),
            priority: Some("P0".into()),
            covered_elsewhere: covered,
        };
        let corruption = Objective {
            scenario: "database-corruption".into(),
            rto: TimeDelta::minutes(30),
            rpo: TimeDelta::hours(1),
            priority: Some("P1".into()),
            covered_elsewhere: None,
        };
        let src = || {
            vec![source(
                "db",
                vec![snap("s1", at(1), 100)],
                vec![drill("db", true, at(1))],
            )]
        };
        let now = at(1) + TimeDelta::minutes(1);
        let a = assess_with(src(), vec![corruption.clone(), region(None)], now);
        assert_eq!(a.status.sources[0].verdict, Verdict::Ok);
        let page = render(&a);
        assert!(page.contains("class=\"banner risk\""));
        assert!(page.contains("objective region-failure (P0) is covered by nothing"));
        assert!(page.contains("<span class=\"badge risk\">not measured</span>"));

        let attested = lifeboat_dr::objectives::CoveredElsewhere {
            covered_by: "a <replica> in eu-west".into(),
            attested_by: "alice".into(),
            attested_at: chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
        };
        let a = assess_with(src(), vec![corruption, region(Some(attested))], now);
        assert_eq!(a.status.verdict, Verdict::Ok);
        let page = render(&a);
        assert!(page.contains("class=\"banner ok\""));
        assert!(page.contains("<span class=\"badge info\">covered elsewhere</span>"));
        assert!(page.contains("<em>a &lt;replica&gt; in eu-west</em>"));
        assert!(page.contains("(attested by alice on 2026-11-30)"));
    }

    #[test]
    fn error_page_says_what_failed_escaped() {
        let p = render_error("cannot read the repository's evidence: <boom>");
        assert!(p.contains("cannot read the repository&#39;s evidence: &lt;boom&gt;"));
        assert!(p.contains("class=\"banner fail\""));
    }

    /// The regions section: the authority with its epoch and leases, each
    /// region's role as etcd and as its server say, the last change against
    /// the objective, the warnings; names escaped. No section without
    /// regions.
    #[test]
    fn regions_show_the_authority_roles_and_the_last_change() {
        use lifeboat_dr::regions::{
            AuthorityOverview, LastChange, LeaseRow, RegionRow, RegionsOverview,
        };
        let plain = assess(
            vec![source("db", vec![snap("s1", at(1), 1000)], vec![])],
            at(2),
        );
        assert!(!render(&plain).contains("id=\"regions\""));
        let row = |name: &str, role: &str, reason: Option<&str>| RegionRow {
            name: name.into(),
            declared_role: "standby".into(),
            observed_role: role.into(),
            streaming: role == "standby",
            lag_seconds: Some(0.5),
            lag_bytes: Some(0),
            heartbeat_age_seconds: None,
            reason: reason.map(String::from),
        };
        let overview = RegionsOverview {
            regions: vec![
                row("us-east", "unreachable", Some("connection refused <&>")),
                row("eu-west", "primary", None),
            ],
            authority: Some(AuthorityOverview {
                error: None,
                primary: Some("eu-west".into()),
                epoch: Some(7),
                changed_at: Some(at(1)),
                changed_by: Some("eu-west@host".into()),
                leases: vec![LeaseRow {
                    region: "eu-west".into(),
                    holder: Some("host pid 42".into()),
                    ttl_remaining_seconds: 9,
                }],
                under_way: None,
                last_change: Some(LastChange {
                    kind: "automatic".into(),
                    from: "us-east".into(),
                    to: "eu-west".into(),
                    epoch: 7,
                    outcome: "done".into(),
                    started_at: at(1),
                    rto_seconds: Some(12.5),
                    rpo_seconds: Some(2.0),
                    rpo_exact: false,
                    rto_objective_seconds: Some(900.0),
                    rpo_objective_seconds: Some(300.0),
                    met: Some(true),
                }),
            }),
            warnings: vec!["a <warning>".into()],
        };
        let mut a = plain;
        a.status = status::with_regions(a.status, overview);
        let page = render(&a);
        assert!(page.contains("id=\"regions\""));
        assert!(
            page.contains("Authority: primary <strong>eu-west</strong>, epoch <strong>7</strong>"),
            "{page}"
        );
        assert!(page.contains("eu-west (9s left, host pid 42)"), "{page}");
        assert!(
            page.contains("Last change of primary: automatic us-east → eu-west (epoch 7) done"),
            "{page}"
        );
        assert!(page.contains("RPO 2.0s (upper bound)"), "{page}");
        assert!(page.contains("connection refused &lt;&amp;&gt;"), "{page}");
        assert!(page.contains("a &lt;warning&gt;"), "{page}");
        assert!(!page.contains("<warning>"));
    }

    #[test]
    fn durations_are_human() {
        assert_eq!(dur(0.34), "0.3s");
        assert_eq!(dur(95.0), "1m 35s");
        assert_eq!(dur(4000.0), "1h 6m");
    }
}
