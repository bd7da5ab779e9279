//! The status page at `/`: one self-contained HTML document (inline CSS and
//! SVG, no script, no external asset, so it works offline and behind any
//! proxy) rendered from an [`Assessment`]: the overall verdict, each
//! source's last backup and last drill, the objectives table with the
//! measured values, the readiness checklist, and per source a chart of
//! backup sizes and durations over time. It reloads itself every minute.
//!
//! Every text that comes from the configuration or the repository goes
//! through [`esc`]. The page shows no secret: the assessment holds none.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use lifeboat_dr::readiness::{Kind, State};
use lifeboat_dr::status::{SnapshotInfo, SourceInput, SourceStatus, Verdict, human};
use lifeboat_ops::assess::Assessment;

use crate::output::human_bytes;

/// HTML-escapes text for element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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

fn badge(class: &str, text: &str) -> String {
    format!("<span class=\"badge {class}\">{}</span>", esc(text))
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

/// The status page for an assessment.
pub fn render(a: &Assessment) -> String {
    let st = &a.status;
    let mut h = String::with_capacity(32 * 1024);
    let word = st.verdict.as_str();
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"60\">\
         <title>Lifeboat: {}</title><style>{STYLE}</style></head><body>",
        esc(word)
    );
    let _ = writeln!(
        h,
        "<header><h1>Lifeboat status</h1><span class=\"muted small\">assessed {} \
         &middot; refreshes every minute</span></header>",
        utc(st.now)
    );
    h.push_str(&banner(a));
    h.push_str(&sources(&st.sources));
    h.push_str(&objectives(a));
    h.push_str(&history(&a.sources));
    h.push_str(&readiness(a));
    let _ = writeln!(
        h,
        "<footer>lifeboat {} &middot; the same assessment as <code>lifeboat status</code> and \
         <code>lifeboat readiness</code>, read from the repository at {}.</footer>\n</body></html>",
        env!("CARGO_PKG_VERSION"),
        utc(st.now)
    );
    h
}

fn banner(a: &Assessment) -> String {
    let st = &a.status;
    let r = &a.readiness;
    let failed = r.items.iter().filter(|i| i.state == State::Fail).count();
    let auto = r.items.iter().filter(|i| i.kind == Kind::Automated).count();
    let ready = if r.ready {
        format!("ready: all {auto} automated checks pass")
    } else {
        format!("not ready: {failed} of {auto} automated checks fail")
    };
    // Every other reason too: the first one alone could hide an uncovered
    // objective behind a late backup.
    let more: String = st
        .reasons
        .iter()
        .skip(1)
        .map(|r| format!("<li>{}</li>", esc(r)))
        .collect();
    let more = if more.is_empty() {
        String::new()
    } else {
        format!("<ul class=\"small\">{more}</ul>")
    };
    format!(
        "<section id=\"verdict\" class=\"banner {cls}\" aria-label=\"overall verdict\">\
         <div class=\"word\">{word}</div><div><div class=\"why\">{why}</div>{more}\
         <div class=\"small muted\">Readiness: {ready}</div></div></section>\n",
        cls = verdict_class(st.verdict),
        word = esc(st.verdict.as_str()),
        why = esc(&st.reason),
        ready = esc(&ready),
    )
}

/// ", 2 partial (not counted)" after a snapshot count; empty for none.
fn partial_note(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(", {n} partial (not counted)")
    }
}

fn sources(list: &[SourceStatus]) -> String {
    let mut h = String::from(
        "<section id=\"sources\"><h2>Sources</h2>\n<table><thead><tr><th>Source</th>\
         <th>Schedule</th><th>Last full backup</th><th>RPO exposure / objective</th>\
         <th>Last drill</th><th>RTO objective</th><th>Verdict</th></tr></thead><tbody>\n",
    );
    if list.is_empty() {
        h.push_str("<tr><td colspan=\"7\">no sources are configured</td></tr>\n");
    }
    for s in list {
        let backup = match &s.last_backup {
            Some(b) => format!(
                "{}<br><span class=\"muted small\">{} ago &middot; <span class=\"mono\">{}</span> \
                 &middot; {} snapshot(s){}</span>",
                utc(b.time),
                human(b.age_seconds),
                esc(&b.snapshot[..b.snapshot.len().min(8)]),
                s.snapshots,
                partial_note(s.partial_snapshots)
            ),
            None if s.partial_snapshots > 0 => format!(
                "{}<br><span class=\"muted small\">{} partial snapshot(s) only</span>",
                badge("fail", "never"),
                s.partial_snapshots
            ),
            None => badge("fail", "never"),
        };
        let rpo = match (s.rpo_exposure_seconds, &s.objectives.rpo) {
            (Some(e), Some(t)) => {
                let cls = if e > t.seconds as f64 { "risk" } else { "ok" };
                format!(
                    "{} / {}<br><span class=\"muted small\">{}</span>",
                    badge(cls, &human(e)),
                    esc(&human(t.seconds as f64)),
                    esc(&t.scenario)
                )
            }
            (Some(e), None) => format!("{} / none", esc(&human(e))),
            (None, Some(t)) => format!(
                "&mdash; / {}<br><span class=\"muted small\">{}</span>",
                esc(&human(t.seconds as f64)),
                esc(&t.scenario)
            ),
            (None, None) => "&mdash;".into(),
        };
        let drill = match &s.last_drill {
            None => badge("risk", "never"),
            Some(d) if d.ok => format!(
                "{} {}<br><span class=\"muted small\">{} ago &middot; RTO {} &middot; RPO {}</span>",
                badge("ok", "ok"),
                utc(d.started),
                human(d.age_seconds),
                esc(&human(d.rto_seconds)),
                esc(&human(d.rpo_seconds))
            ),
            Some(d) => format!(
                "{} {}<br><span class=\"muted small\">{}</span>",
                badge("fail", "failed"),
                utc(d.started),
                esc(d.failure.as_deref().unwrap_or("no reason recorded"))
            ),
        };
        let rto = match &s.objectives.rto {
            Some(t) => format!(
                "{}<br><span class=\"muted small\">{}</span>",
                esc(&human(t.seconds as f64)),
                esc(&t.scenario)
            ),
            None => "none".into(),
        };
        let row_cls = if s.reasons.is_empty() {
            ""
        } else {
            " class=\"has-reasons\""
        };
        let _ = writeln!(
            h,
            "<tr{row_cls}><td><strong>{name}</strong><br><span class=\"muted small\">{kind}</span></td>\
             <td class=\"mono\">{sched}</td><td>{backup}</td><td>{rpo}</td><td>{drill}</td>\
             <td>{rto}</td><td>{verdict}</td></tr>",
            name = esc(&s.source),
            kind = esc(&s.kind),
            sched = s
                .schedule
                .as_deref()
                .map(esc)
                .unwrap_or_else(|| "none (API only)".into()),
            verdict = badge(verdict_class(s.verdict), s.verdict.as_str()),
        );
        if !s.reasons.is_empty() {
            h.push_str("<tr class=\"reasons\"><td colspan=\"7\"><ul>");
            for r in &s.reasons {
                let _ = write!(h, "<li>{}</li>", esc(r));
            }
            h.push_str("</ul></td></tr>\n");
        }
    }
    h.push_str("</tbody></table></section>\n");
    h
}

fn objectives(a: &Assessment) -> String {
    let mut h = String::from(
        "<section id=\"objectives\"><h2>Objectives</h2>\n<table><thead><tr><th>Scenario</th>\
         <th>Priority</th><th>RTO objective</th><th>Measured RTO</th><th>RPO objective</th>\
         <th>RPO exposure</th><th>Covered by</th><th>Met</th></tr></thead><tbody>\n",
    );
    if a.status.objectives.is_empty() {
        h.push_str(
            "<tr><td colspan=\"8\">no objectives are configured \
             (<code>objectives:</code> scenario, rto, rpo)</td></tr>\n",
        );
    }
    for o in &a.status.objectives {
        let measured = |v: Option<f64>| v.map(|s| esc(&human(s))).unwrap_or("&mdash;".into());
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
        let note = o
            .note
            .as_deref()
            .map(|n| format!("<br><span class=\"muted small\">{}</span>", esc(n)))
            .unwrap_or_default();
        let covered = if o.sources.is_empty() {
            match &o.objective.covered_elsewhere {
                Some(c) => format!("<em>{}</em>", esc(&c.covered_by)),
                None => "&mdash;".to_string(),
            }
        } else {
            o.sources
                .iter()
                .map(|s| esc(s))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            h,
            "<tr><td><strong>{scenario}</strong></td><td>{prio}</td><td class=\"num\">{rto}</td>\
             <td class=\"num\">{mrto}</td><td class=\"num\">{rpo}</td><td class=\"num\">{mrpo}</td>\
             <td>{covered}</td><td>{met}{note}</td></tr>",
            scenario = esc(&o.objective.scenario),
            prio = o
                .objective
                .priority
                .as_deref()
                .map(esc)
                .unwrap_or_else(|| "&mdash;".into()),
            rto = esc(&human(o.objective.rto.num_seconds() as f64)),
            mrto = measured(o.measured_rto_seconds),
            rpo = if o.objective.rpo.num_seconds() <= 0 {
                "0 (no data loss)".to_string()
            } else {
                esc(&human(o.objective.rpo.num_seconds() as f64))
            },
            mrpo = measured(o.rpo_exposure_seconds),
        );
    }
    h.push_str(
        "</tbody></table><p class=\"muted small\">Measured RTO: the slowest of the covering \
         sources' last successful drills. RPO exposure: the oldest of their last backups, \
         now. An objective nothing measures puts the verdict at risk unless the configuration \
         says what covers it elsewhere, who attested it and when.</p></section>\n",
    );
    h
}

fn readiness(a: &Assessment) -> String {
    let r = &a.readiness;
    let mut h = format!(
        "<section id=\"readiness\"><h2>Readiness checklist</h2>\n<p>{} <span class=\"muted small\">\
         assessed {}</span></p>\n<table><thead><tr><th>State</th><th>Item</th><th>Detail</th>\
         <th>Judged</th></tr></thead><tbody>\n",
        if r.ready {
            badge("ok", "ready")
        } else {
            badge("fail", "not ready")
        },
        utc(r.now)
    );
    for it in &r.items {
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
        let _ = writeln!(
            h,
            "<tr id=\"item-{id}\"><td>{state}</td><td><strong>{title}</strong><br>\
             <span class=\"muted small\">checklist line: {seed}</span></td><td>{detail}</td>\
             <td class=\"muted small\">{kind}</td></tr>",
            id = esc(it.id),
            state = badge(cls, it.state.as_str()),
            title = esc(&it.title),
            seed = esc(it.seed),
            detail = if it.detail.is_empty() {
                "&mdash;".into()
            } else {
                esc(&it.detail)
            },
        );
    }
    h.push_str("</tbody></table></section>\n");
    h
}

fn history(inputs: &[SourceInput]) -> String {
    let mut h = String::from(
        "<section id=\"history\"><h2>Backup history</h2>\n<div class=\"legend\">\
         <span><i style=\"background:var(--read)\"></i>bytes read</span>\
         <span><i style=\"background:var(--stored)\"></i>bytes stored (after dedup and \
         compression)</span><span><i style=\"background:var(--dur)\"></i>duration</span>\
         </div>\n<div class=\"charts\">\n",
    );
    if inputs.is_empty() {
        h.push_str("<p class=\"muted\">no sources are configured</p>\n");
    }
    for s in inputs {
        let _ = writeln!(
            h,
            "<figure><figcaption>{} <span class=\"muted small\">{} snapshot(s) in the \
             repository</span></figcaption>{}</figure>",
            esc(&s.name),
            s.snapshots.len(),
            chart(&s.name, &s.snapshots)
        );
    }
    h.push_str("</div></section>\n");
    h
}

/// Dots carry a tooltip each up to this many snapshots; beyond, lines only.
const MAX_DOTS: usize = 200;

/// Two panels on one time axis: sizes (read, stored) above, duration below.
fn chart(name: &str, snaps: &[SnapshotInfo]) -> String {
    if snaps.is_empty() {
        return "<p class=\"muted small\">no snapshots yet</p>".into();
    }
    let mut snaps: Vec<&SnapshotInfo> = snaps.iter().collect();
    snaps.sort_by_key(|s| s.time);
    const W: f64 = 640.0;
    const L: f64 = 72.0;
    const R: f64 = 16.0;
    const PH: f64 = 80.0;
    const TOP1: f64 = 16.0;
    const TOP2: f64 = TOP1 + PH + 34.0;
    const H: f64 = TOP2 + PH + 30.0;
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

    let mut g = format!(
        "<svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"backup sizes and durations of {}\" \
         xmlns=\"http://www.w3.org/2000/svg\">",
        esc(name)
    );
    // Axes and labels of both panels.
    for (top, label_max, title) in [
        (TOP1, human_bytes(max_bytes as u64), "size"),
        (TOP2, dur(max_dur), "duration"),
    ] {
        let _ = write!(
            g,
            "<line class=\"grid\" x1=\"{L}\" y1=\"{top}\" x2=\"{x2}\" y2=\"{top}\" stroke-dasharray=\"3 3\"/>\
             <line class=\"grid\" x1=\"{L}\" y1=\"{b}\" x2=\"{x2}\" y2=\"{b}\"/>\
             <text x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\">{max}</text>\
             <text x=\"{tx}\" y=\"{b}\" text-anchor=\"end\">0</text>\
             <text x=\"{L}\" y=\"{cy}\">{title}</text>",
            x2 = W - R,
            b = top + PH,
            tx = L - 6.0,
            ty = top + 4.0,
            max = esc(&label_max),
            cy = top - 5.0,
        );
    }
    let bottom = TOP2 + PH + 18.0;
    if span <= 0.0 {
        let _ = write!(
            g,
            "<text x=\"{}\" y=\"{bottom}\" text-anchor=\"middle\">{}</text>",
            L + pw / 2.0,
            esc(&t0.format("%Y-%m-%d %H:%M UTC").to_string())
        );
    } else {
        let _ = write!(
            g,
            "<text x=\"{L}\" y=\"{bottom}\">{}</text>\
             <text x=\"{}\" y=\"{bottom}\" text-anchor=\"end\">{}</text>",
            esc(&t0.format("%Y-%m-%d %H:%M UTC").to_string()),
            W - R,
            esc(&t1.format("%Y-%m-%d %H:%M UTC").to_string())
        );
    }
    type Value<'a> = &'a dyn Fn(&SnapshotInfo) -> f64;
    let series: [(&str, f64, f64, Value); 3] = [
        ("read", TOP1, max_bytes, &|s| s.bytes_read as f64),
        ("stored", TOP1, max_bytes, &|s| s.bytes_stored as f64),
        ("dur", TOP2, max_dur, &|s| s.duration_seconds),
    ];
    for (cls, top, max, value) in series {
        if snaps.len() > 1 {
            let points: Vec<String> = snaps
                .iter()
                .map(|s| format!("{:.1},{:.1}", x(s.time), y(top, value(s), max)))
                .collect();
            let _ = write!(
                g,
                "<polyline class=\"{cls}\" points=\"{}\"/>",
                points.join(" ")
            );
        }
        if snaps.len() <= MAX_DOTS {
            for s in &snaps {
                let _ = write!(
                    g,
                    "<circle class=\"{cls}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"><title>{}</title></circle>",
                    x(s.time),
                    y(top, value(s), max),
                    esc(&format!(
                        "{} · {}: read {}, stored {}, took {}",
                        utc(s.time),
                        &s.id[..s.id.len().min(8)],
                        human_bytes(s.bytes_read),
                        human_bytes(s.bytes_stored),
                        dur(s.duration_seconds)
                    ))
                );
            }
        }
    }
    g.push_str("</svg>");
    g
}

/// The page when the assessment cannot be made: what failed, as HTML.
pub fn render_error(what: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"60\">\
         <title>Lifeboat: cannot assess</title><style>{STYLE}</style></head><body>\n\
         <header><h1>Lifeboat status</h1><span class=\"muted small\">{now}</span></header>\n\
         <section id=\"verdict\" class=\"banner fail\"><div class=\"word\">unknown</div>\
         <div><div class=\"why\">The status cannot be assessed: {what}</div>\
         <div class=\"small muted\">Backups may still be running; the daemon's log and \
         <code>/metrics</code> say more. This page retries every minute.</div></div></section>\n\
         </body></html>\n",
        now = utc(Utc::now()),
        what = esc(what)
    )
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
            drill_schedule: None,
            covers: vec!["database-corruption".into()],
            retention: None,
            snapshots: snaps,
            drills,
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

    #[test]
    fn escapes_every_special_character() {
        assert_eq!(
            esc(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(esc("plain-name_1"), "plain-name_1");
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

    #[test]
    fn durations_are_human() {
        assert_eq!(dur(0.34), "0.3s");
        assert_eq!(dur(95.0), "1m 35s");
        assert_eq!(dur(4000.0), "1h 6m");
    }
}
