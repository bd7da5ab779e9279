//! [`Config::validate`]: what spans several keys, checked after the file is
//! read (values are checked while it is read). Every problem is collected
//! and reported at once, each naming the key it is about; one function per
//! section of the file.

use std::collections::BTreeSet;

use chrono::TimeDelta;

use super::*;

impl Config {
    /// Checks what spans several keys; every problem is reported at once.
    /// [`parse`] and [`load`] call it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = self.repository.problems();
        if let Some(serve) = &self.serve {
            problems.extend(serve.problems());
        }
        if let Some(r) = &self.readiness {
            problems.extend(r.problems());
        }
        let scenarios = self.objectives_problems(&mut problems);
        for (name, s) in &self.sources {
            problems.extend(s.problems(name, &scenarios));
        }
        if let Some(w) = &self.wal {
            problems.extend(w.problems(&self.sources));
        }
        if let Some(f) = &self.failover {
            let names: Vec<&str> = self.regions.keys().map(String::as_str).collect();
            problems.extend(f.problems(&names));
            // Patroni and CloudNativePG start again a server Lifeboat
            // stops: a stop fence cannot hold there (region/managed_fence.rs).
            if matches!(f.fence, Some(super::FenceConfig::Stop)) {
                for (name, r) in &self.regions {
                    let (m, who, primary) = match r.postgres.manager() {
                        super::PgManager::Patroni => ("patroni", "Patroni", "the Patroni leader"),
                        super::PgManager::Cnpg => (
                            "cnpg",
                            "CloudNativePG",
                            "the Cluster's primary, through postgres.url",
                        ),
                        super::PgManager::Postgres => continue,
                    };
                    problems.push(format!(
                        "failover.fence is stop, but regions.{name}.postgres.manager is {m}: \
                         {who} starts again a server Lifeboat stops, so that fence cannot hold \
                         there; use fence: {{revoke_login: {{roles: [...]}}}} with the \
                         application's roles (the agent revokes their LOGIN on {primary} and \
                         terminates their sessions)"
                    ));
                }
            }
            if self.regions.len() < 2 {
                problems.push(
                    "failover: needs at least two regions in regions: (a primary and a standby to promote)"
                        .into(),
                );
            }
        }
        let mut regions = super::topology::Problems::default();
        self.regions_problems(&mut regions);
        problems.extend(regions.plain);
        if problems.is_empty() && regions.located.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                origin: self.origin.clone(),
                problems,
                located: regions.located,
            })
        }
    }

    /// `objectives:`: names present and unique, attestations complete and
    /// only where no source measures the scenario. Returns the scenario
    /// names, which sources' `covers` must name.
    fn objectives_problems(&self, problems: &mut Vec<String>) -> BTreeSet<&str> {
        let mut scenarios = BTreeSet::new();
        for (i, o) in self.objectives.iter().enumerate() {
            if o.scenario.trim().is_empty() {
                problems.push(format!("objectives[{i}]: the scenario name is empty"));
            } else if !scenarios.insert(o.scenario.as_str()) {
                problems.push(format!(
                    "objectives[{i}]: scenario {:?} is listed twice",
                    o.scenario
                ));
            }
            problems.extend(o.attestation_problems(i));
            let covering: Vec<&str> = self
                .sources
                .iter()
                .filter(|(_, s)| s.covers.contains(&o.scenario))
                .map(|(n, _)| n.as_str())
                .collect();
            if o.covered_by.is_some() && !covering.is_empty() && o.rpo > TimeDelta::zero() {
                problems.push(format!(
                    "objectives[{i}] ({}): covered_by is for what Lifeboat cannot measure, but \
                     sources {} cover this scenario and their backups and drills measure it: \
                     remove covered_by, or the scenario from their covers",
                    o.scenario,
                    covering.join(", ")
                ));
            }
        }
        scenarios
    }
}

impl RepositoryConfig {
    /// `repository:`: S3 settings only with an S3 URL, one kind of secret,
    /// a sane grace period and Object Lock retention.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.s3.is_some() && self.url.scheme() != "s3" {
            problems.push(format!(
                "repository.s3 is set but repository.url {} is not an s3:// URL",
                self.url
            ));
        }
        if self.password.is_some() && self.key_file.is_some() {
            problems.push("repository: give either password or key_file, not both".to_string());
        }
        if self.prune_grace.is_some_and(|d| d < TimeDelta::zero()) {
            problems.push("repository.prune_grace must not be negative".to_string());
        }
        if let Some(ol) = &self.object_lock {
            if self.url.scheme() != "s3" {
                problems.push(format!(
                    "repository.object_lock is set but repository.url {} is not an s3:// URL (Object Lock is an S3 feature)",
                    self.url
                ));
            }
            if ol.days == 0 || ol.days > 36_500 {
                problems
                    .push("repository.object_lock.days must be between 1 and 36500".to_string());
            }
        }
        problems
    }
}

impl ReadinessConfig {
    /// `readiness:`: attestations of known manual items, positive ages.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for id in self.attestations.keys() {
            let manual = lifeboat_dr::readiness::MANUAL.iter().map(|m| m.0);
            if !manual.clone().any(|m| m == id) {
                problems.push(format!(
                    "readiness.attestations.{id}: no manual checklist item has this id; the ids are {}",
                    manual.collect::<Vec<_>>().join(", ")
                ));
            }
        }
        for (k, v) in [
            ("drill_max_age", self.drill_max_age),
            ("check_max_age", self.check_max_age),
        ] {
            if v.is_some_and(|d| d <= TimeDelta::zero()) {
                problems.push(format!("readiness.{k} must be positive"));
            }
        }
        problems
    }
}

impl SourceConfig {
    /// `sources.NAME`: the sections of its kind and no other, and each
    /// section's settings; `scenarios` are the objectives' names.
    fn problems(&self, name: &str, scenarios: &BTreeSet<&str>) -> Vec<String> {
        let at = format!("sources.{name}");
        let mut problems = Vec::new();
        if name.trim().is_empty() {
            problems.push("sources: a source has an empty name".to_string());
        }
        problems.extend(self.kind_problems(&at));
        if let Some(pg) = &self.postgres {
            problems.extend(pg.problems(&at));
        }
        problems.extend(self.drill_and_restore_problems(&at));
        if let Some(st) = &self.stream {
            problems.extend(st.problems(&at));
        }
        problems.extend(self.schedule_problems(name, &at));
        if let Some(q) = &self.quiesce {
            problems.extend(q.problems(&at));
        }
        for c in &self.covers {
            if !scenarios.contains(c.as_str()) {
                problems.push(format!(
                    "{at}.covers: no objective has scenario {c:?}; add it to objectives or fix the name{}",
                    if scenarios.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (known: {})",
                            scenarios.iter().copied().collect::<Vec<_>>().join(", ")
                        )
                    }
                ));
            }
        }
        problems
    }

    /// The section of its kind is present, and no section of another kind.
    fn kind_problems(&self, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let sections = [
            (SourceKind::Postgres, self.postgres.is_some()),
            (SourceKind::Kube, self.kube.is_some()),
            (SourceKind::Stream, self.stream.is_some()),
        ];
        for (kind, present) in sections {
            if present && kind != self.kind {
                problems.push(format!(
                    "{at}: kind is {} but it has a {kind}: section; remove it or change the kind",
                    self.kind
                ));
            }
        }
        match self.kind {
            SourceKind::Postgres if self.postgres.is_none() => problems.push(format!(
                "{at}: kind is postgres but there is no postgres: section (with at least url:)"
            )),
            SourceKind::Kube if self.kube.is_none() => problems.push(format!(
                "{at}: kind is kube but there is no kube: section (namespaces, kinds, label_selector)"
            )),
            _ => {}
        }
        problems
    }

    /// `drill:` fits the kind (a scratch database or a namespace map, never
    /// the protected namespace); `restore:` only for PostgreSQL.
    fn drill_and_restore_problems(&self, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(d) = &self.drill {
            match self.kind {
                SourceKind::Postgres if !d.namespace_map.is_empty() => problems.push(format!(
                    "{at}.drill.namespace_map is for kube sources; a postgres drill restores into drill.scratch or a throwaway PostgreSQL"
                )),
                SourceKind::Kube if d.scratch.is_some() || d.scratch_is_copy => problems.push(format!(
                    "{at}.drill.scratch is a database; a kube drill restores into drill.namespace_map"
                )),
                SourceKind::Kube if d.namespace_map.is_empty() => problems.push(format!(
                    "{at}.drill: a kube drill needs namespace_map (e.g. {{kubernaut-system: kubernaut-test}}): it never restores into the namespaces it protects"
                )),
                SourceKind::Stream => problems.push(format!(
                    "{at}.drill: stream sources cannot be drilled (there is nothing to restore them into and verify)"
                )),
                _ => {}
            }
            for (from, to) in &d.namespace_map {
                if from == to {
                    problems.push(format!(
                        "{at}.drill.namespace_map maps {from} to itself: a drill must not restore into the namespace it protects"
                    ));
                }
            }
        }
        if self.restore.is_some() && self.kind != SourceKind::Postgres {
            problems.push(format!(
                "{at}.restore (jobs) is for postgres sources; remove it from this {} source",
                self.kind
            ));
        }
        if let Some(d) = &self.drill
            && d.scratch_is_copy
            && d.scratch.is_none()
            && self.kind == SourceKind::Postgres
        {
            problems.push(format!(
                "{at}.drill.scratch_is_copy is set but there is no drill.scratch: a drill without one restores into a throwaway PostgreSQL"
            ));
        }
        problems
    }

    /// A time zone needs a schedule to apply to; the daemon can run a
    /// stream source on a schedule only through its command.
    fn schedule_problems(&self, name: &str, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let drill_schedule = self.drill.as_ref().is_some_and(|d| d.schedule.is_some());
        if self.timezone.is_some()
            && self.schedule.is_none()
            && !drill_schedule
            && self.physical.is_none()
        {
            problems.push(format!(
                "{at}.timezone is set but the source has no schedule, drill.schedule or physical.schedule for it to apply to; remove it or add the schedule"
            ));
        }
        if self.physical.is_some() && self.kind != SourceKind::Postgres {
            problems.push(format!(
                "{at}.physical: physical base backups are of PostgreSQL servers; remove it from this {} source",
                self.kind
            ));
        }
        if self.kind == SourceKind::Stream
            && self.schedule.is_some()
            && self.stream.as_ref().is_none_or(|st| st.command.is_empty())
        {
            problems.push(format!(
                "{at}.schedule: the daemon backs up a stream source by running its stream.command, and there is none; give stream.command, or remove the schedule and feed it with `lifeboat backup stream --source {name}`"
            ));
        }
        problems
    }
}

impl PostgresSource {
    /// Verification queries have a name and SQL, and unique names.
    fn problems(&self, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let mut names = BTreeSet::new();
        for q in &self.verify_queries {
            if q.name.trim().is_empty() || q.sql.trim().is_empty() {
                problems.push(format!(
                    "{at}.postgres.verify_queries: every query needs a name and sql"
                ));
            } else if !names.insert(q.name.as_str()) {
                problems.push(format!(
                    "{at}.postgres.verify_queries: the name {:?} is used twice",
                    q.name
                ));
            }
        }
        match (&self.control, &self.pgdata) {
            (Some(_), None) => problems.push(format!(
                "{at}.postgres.control: set pgdata too: the control starts and stops the server \
                 whose data directory that is"
            )),
            (Some(super::ServerControl::Manager), Some(_)) => problems.push(format!(
                "{at}.postgres.control: `manager` is for regions managed by Patroni or \
                 CloudNativePG; a source's server is started and stopped with pg_ctl or systemd"
            )),
            (Some(super::ServerControl::Systemd(s)), Some(_)) if s.unit.trim().is_empty() => {
                problems.push(format!("{at}.postgres.control.systemd.unit is empty"))
            }
            _ => {}
        }
        problems
    }
}

impl StreamSource {
    /// A command to run, and environment variable names it may be given.
    fn problems(&self, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.command.first().is_none_or(|p| p.is_empty()) {
            problems.push(format!(
                "{at}.stream.command: give the program and its arguments, e.g. [tar, -cf, -, /data]"
            ));
        }
        problems.extend(env_names_problems(&self.env, &format!("{at}.stream.env")));
        problems
    }
}

impl ServeConfig {
    /// What is wrong with these settings.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(l) = &self.listen
            && l.parse::<std::net::SocketAddr>().is_err()
        {
            problems.push(format!(
                "serve.listen {l:?} is not an address with a port, e.g. 0.0.0.0:8080 or [::]:8080"
            ));
        }
        for (key, d, min) in [
            ("lease", self.lease, TimeDelta::seconds(2)),
            ("grace_period", self.grace_period, TimeDelta::zero()),
            ("prune_interval", self.prune_interval, TimeDelta::zero()),
        ] {
            if d.is_some_and(|d| d < min) {
                problems.push(format!(
                    "serve.{key} must be at least {}",
                    lifeboat_repo::retention::format_duration(min)
                ));
            }
        }
        if let Some(c) = &self.check
            && !(1..=256).contains(&c.read_data_parts)
        {
            problems.push(
                "serve.check.read_data_parts must be between 1 (read everything each run) and 256"
                    .into(),
            );
        }
        problems
    }
}

/// What is wrong with a list of environment variable names passed to a
/// child (`stream.env`): empty names, `=` in a name, duplicates, and
/// Lifeboat's own `LIFEBOAT_*` settings and secrets, which never reach a
/// child.
fn env_names_problems(names: &[String], at: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for n in names {
        if n.is_empty() || n.contains('=') || n.contains('\0') {
            problems.push(format!("{at}: {n:?} is not an environment variable name"));
        } else if n.starts_with("LIFEBOAT_") {
            problems.push(format!(
                "{at}: {n} is one of Lifeboat's own settings or secrets, which are never passed to a child; remove it"
            ));
        } else if n == "PATH" {
            problems.push(format!("{at}: PATH is always passed; remove it"));
        } else if !seen.insert(n.as_str()) {
            problems.push(format!("{at}: {n} is listed twice"));
        }
    }
    problems
}

impl Quiesce {
    /// What is wrong with these settings, each problem prefixed with `at`
    /// (e.g. `sources.kubernaut-db`).
    pub fn problems(&self, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let no_workloads = self.deployments.is_empty() && self.statefulsets.is_empty();
        if self
            .namespace
            .as_deref()
            .is_some_and(|n| n.trim().is_empty())
        {
            problems.push(format!(
                "{at}.quiesce.namespace is empty; remove it or name the namespace"
            ));
        } else if self.namespace.is_some() && no_workloads {
            problems.push(format!(
                "{at}.quiesce.namespace is set but no deployments or statefulsets are listed"
            ));
        }
        if let Some(c) = &self.commands {
            let no_program = |c: &QuiesceCommand| c.argv.first().is_none_or(|p| p.is_empty());
            for (which, list) in [("pre", &c.pre), ("post", &c.post)] {
                if list.iter().any(no_program) {
                    problems.push(format!(
                        "{at}.quiesce.commands.{which}: every command is a non-empty argument vector, e.g. [systemctl, stop, app]"
                    ));
                }
                for (i, cmd) in list.iter().enumerate() {
                    for name in &cmd.env {
                        if !is_env_name(name) {
                            problems.push(format!(
                                "{at}.quiesce.commands.{which}[{i}].env: {name:?} is not a variable name; \
                                 list names only (e.g. [KUBECONFIG, HOME]): the values come from \
                                 Lifeboat's own environment"
                            ));
                        }
                    }
                }
            }
        }
        for (key, names) in [
            ("deployments", &self.deployments),
            ("statefulsets", &self.statefulsets),
        ] {
            if names.iter().any(|d| d.trim().is_empty()) {
                problems.push(format!("{at}.quiesce.{key}: a name is empty"));
            }
            let mut seen = std::collections::BTreeSet::new();
            for n in names {
                if !n.trim().is_empty() && !seen.insert(n.as_str()) {
                    problems.push(format!("{at}.quiesce.{key}: {n:?} is listed twice"));
                }
            }
        }
        match self.timeout {
            Some(t) if t <= TimeDelta::zero() => problems.push(format!(
                "{at}.quiesce.timeout must be longer than 0s (e.g. 5m)"
            )),
            Some(_) if no_workloads => problems.push(format!(
                "{at}.quiesce.timeout is set but no deployments or statefulsets are listed"
            )),
            _ => {}
        }
        problems
    }
}

/// Whether `name` is an environment variable name a command may ask for:
/// letters, digits and `_`, not starting with a digit.
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Objective {
    /// `covered_by` is a statement someone answers for: all three keys or
    /// none, none of them blank.
    fn attestation_problems(&self, i: usize) -> Vec<String> {
        let blank = |v: &Option<String>| v.as_deref().is_some_and(|t| t.trim().is_empty());
        let mut p = Vec::new();
        for (key, v) in [
            ("covered_by", &self.covered_by),
            ("attested_by", &self.attested_by),
        ] {
            if blank(v) {
                p.push(format!(
                    "objectives[{i}] ({}): {key} is empty",
                    self.scenario
                ));
            }
        }
        let given = [
            self.covered_by.is_some(),
            self.attested_by.is_some(),
            self.attested_at.is_some(),
        ];
        if given.contains(&true) && given.contains(&false) {
            p.push(format!(
                "objectives[{i}] ({}): covered_by, attested_by and attested_at go together: \
                 say what covers the scenario elsewhere, who attests it and when (YYYY-MM-DD)",
                self.scenario
            ));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use crate::config::testing::*;
    use crate::config::*;

    #[test]
    fn serve_section() {
        let c = load(&examples_dir().join("kubernaut.yaml")).unwrap();
        let s = c
            .serve
            .as_ref()
            .expect("kubernaut.yaml has a serve: section");
        assert_eq!(s.listen.as_deref(), Some("0.0.0.0:8080"));
        assert_eq!(s.token, Some(SecretRef::Env("LIFEBOAT_API_TOKEN".into())));
        assert_eq!(s.lease, Some(TimeDelta::seconds(60)));
        assert_eq!(s.prune_interval, Some(TimeDelta::hours(24)));
        let e = parse_err("repository: {url: /r}\nserve: {listen: localhost, lease: 1s}\n");
        let all = e.to_string();
        assert!(all.contains("serve.listen \"localhost\""), "{all}");
        assert!(all.contains("serve.lease must be at least 2s"), "{all}");
        let e = parse_err("repository: {url: /r}\nserve:\n  lisen: 0.0.0.0:1\n");
        assert_eq!(location(&e).0, 3, "{e}");
        let e = parse_err("repository: {url: /r}\nserve: {token: hunter2}\n");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    /// A source's agent settings for `recover postgres`: `pgdata` with a
    /// control (pg_ctl by default), never a control alone or `manager`.
    #[test]
    fn source_pgdata_and_control() {
        let ok = parse(
            "repository: {url: /r}
sources:
  a:
    kind: postgres
    postgres: {url: \"postgresql://u@h/d\", pgdata: /srv/pg}
  b:
    kind: postgres
    postgres: {url: \"postgresql://u@h/d\", pgdata: /srv/pg, control: {systemd: {unit: pg.service}}}
",
            "test.yaml",
        )
        .unwrap();
        let pg = |n: &str| ok.sources[n].postgres.clone().unwrap();
        assert_eq!(
            pg("a").control(),
            Some(ServerControl::PgCtl(PgCtlControl::default()))
        );
        assert!(matches!(pg("b").control(), Some(ServerControl::Systemd(_))));
        assert_refused_with(
            "repository: {url: /r}
sources:
  c:
    kind: postgres
    postgres: {url: \"postgresql://u@h/d\", control: pg_ctl}
  m:
    kind: postgres
    postgres: {url: \"postgresql://u@h/d\", pgdata: /srv/pg, control: manager}
",
            &[
                "sources.c.postgres.control: set pgdata too",
                "sources.m.postgres.control: `manager` is for regions",
            ],
        );
    }

    #[test]
    fn drill_and_readiness_sections_are_checked() {
        let text = "\
repository: {url: /r}
sources:
  db:
    kind: postgres
    postgres: {url: \"postgresql://u@h/d\"}
    drill: {schedule: \"0 4 1 * *\", namespace_map: {a: b}}
  cfg:
    kind: kube
    kube: {}
    drill: {namespace_map: {kubernaut-system: kubernaut-system}}
  nomap:
    kind: kube
    kube: {}
    drill: {schedule: \"0 4 1 * *\"}
  s:
    kind: stream
    stream: {command: [cat]}
    drill: {}
readiness:
  drill_max_age: 0s
  attestations:
    on-call: {by: Jane Roe, date: 2026-11-01}
    oncall: {by: Jane Roe, date: 2026-11-01}
";
        assert_refused_with(
            text,
            &[
                "sources.db.drill.namespace_map is for kube sources",
                "sources.cfg.drill.namespace_map maps kubernaut-system to itself",
                "sources.nomap.drill: a kube drill needs namespace_map",
                "sources.s.drill: stream sources cannot be drilled",
                "readiness.drill_max_age must be positive",
                "readiness.attestations.oncall: no manual checklist item has this id; the ids are services-healthy, dr-plan, on-call",
            ],
        );
        // A date that is not YYYY-MM-DD is located like every parse error.
        let e = parse_err(
            "repository: {url: /r}\nreadiness:\n  attestations:\n    on-call: {by: J, date: yesterday}\n",
        );
        assert!(e.to_string().contains("test.yaml:4:"), "{e}");
    }

    /// `covered_by` on an objective: a statement with a name and a date,
    /// for what Lifeboat cannot measure; anything else is refused.
    #[test]
    fn objective_attestations_are_complete_and_only_where_nothing_measures() {
        let ok = parse(
            "repository: {url: /r}
objectives:
  - {scenario: single-pod-failure, rto: 1m, rpo: 0s, priority: P0,
     covered_by: \"Kubernetes restarts pods\", attested_by: alice, attested_at: 2026-11-30}
  - {scenario: region-failure, rto: 15m, rpo: 5m}
",
            "test.yaml",
        )
        .unwrap();
        let o = &ok.objectives[0];
        assert_eq!(o.covered_by.as_deref(), Some("Kubernetes restarts pods"));
        assert_eq!(o.attested_by.as_deref(), Some("alice"));
        assert_eq!(o.attested_at, chrono::NaiveDate::from_ymd_opt(2026, 11, 30));
        assert_eq!(ok.objectives[1].covered_by, None);

        assert_refused_with(
            "repository: {url: /r}
sources:
  db:
    kind: postgres
    postgres: {url: \"postgresql://u@h/d\"}
    covers: [database-corruption]
objectives:
  - {scenario: single-pod-failure, rto: 1m, rpo: 0s, covered_by: \"Kubernetes\"}
  - {scenario: service-failure, rto: 5m, rpo: 0s, covered_by: \" \", attested_by: bob, attested_at: 2026-11-30}
  - {scenario: database-corruption, rto: 30m, rpo: 1h, covered_by: x, attested_by: bob, attested_at: 2026-11-30}
",
            &[
            "objectives[0] (single-pod-failure): covered_by, attested_by and attested_at go together",
            "objectives[1] (service-failure): covered_by is empty",
            "objectives[2] (database-corruption): covered_by is for what Lifeboat cannot measure, but sources db cover this scenario",
        ],
        );
        // A date that is not YYYY-MM-DD is located like every parse error.
        let e = parse_err(
            "repository: {url: /r}\nobjectives:\n  - {scenario: a, rto: 1m, rpo: 0s, covered_by: k, attested_by: b,\n     attested_at: soon}\n",
        );
        assert!(e.to_string().contains("test.yaml:4:"), "{e}");
    }

    #[test]
    fn restore_jobs_and_scratch_is_copy() {
        let ok = parse(
            "repository: {url: /r}\nsources:\n  db:\n    kind: postgres\n    postgres: {url: \"postgresql://u@h/d\"}\n    restore: {jobs: 4}\n    drill: {scratch: {url: \"postgresql://u@copy/d\"}, scratch_is_copy: true}\n",
            "test.yaml",
        )
        .unwrap();
        let db = &ok.sources["db"];
        assert_eq!(db.restore.and_then(|r| r.jobs).map(Jobs::get), Some(4));
        assert!(db.drill.as_ref().unwrap().scratch_is_copy);
        // 0 jobs: located at the value.
        let e = parse_err(
            "repository: {url: /r}\nsources:\n  db:\n    kind: postgres\n    postgres: {url: \"postgresql://u@h/d\"}\n    restore:\n      jobs: 0\n",
        );
        assert_eq!(location(&e).0, 7, "{e}");
        assert!(e.to_string().contains("between 1 and 256, not 0"), "{e}");
        let e = parse_err(
            "repository: {url: /r}\nsources:\n  db:\n    kind: postgres\n    postgres: {url: \"postgresql://u@h/d\"}\n    restore: {jobs: 2, parallel: 3}\n",
        );
        assert_eq!(location(&e).0, 6, "{e}");
        // restore: on a kube source; scratch_is_copy without a scratch.
        let e = parse_err(
            "repository: {url: /r}\nsources:\n  k:\n    kind: kube\n    kube: {}\n    restore: {jobs: 2}\n  db:\n    kind: postgres\n    postgres: {url: \"postgresql://u@h/d\"}\n    drill: {scratch_is_copy: true}\n",
        );
        let all = e.to_string();
        assert!(
            all.contains("sources.k.restore (jobs) is for postgres sources")
                && all.contains(
                    "sources.db.drill.scratch_is_copy is set but there is no drill.scratch"
                ),
            "{all}"
        );
    }

    #[test]
    fn physical_section_schedules_base_backups_of_postgres_sources() {
        let ok = parse(
            "repository: {url: /r}\nsources:\n  db:\n    kind: postgres\n    postgres: {url: \"postgresql://u@h/d\"}\n    timezone: Europe/Berlin\n    physical: {schedule: \"0 3 * * *\", block_size: 64}\n  dflt:\n    kind: postgres\n    postgres: {url: \"postgresql://u@h/d\"}\n    physical: {schedule: \"*/5 * * * * *\"}\n",
            "test.yaml",
        )
        .unwrap();
        // A time zone applies to `physical.schedule` alone.
        let p = ok.sources["db"].physical.as_ref().unwrap();
        assert_eq!(p.schedule.as_str(), "0 3 * * *");
        assert_eq!(p.block_size.map(BlockSizeKib::bytes), Some(64 * 1024));
        assert_eq!(
            ok.sources["dflt"].physical.as_ref().unwrap().block_size,
            None
        );
        // Not on a kube source; a schedule is required; a block size that
        // is no multiple of 8 KiB is located at its value; unknown keys too.
        let e = parse_err(
            "repository: {url: /r}\nsources:\n  k:\n    kind: kube\n    kube: {}\n    physical: {schedule: \"0 3 * * *\"}\n",
        );
        assert!(
            e.to_string()
                .contains("sources.k.physical: physical base backups are of PostgreSQL servers"),
            "{e}"
        );
        for (text, line, needle) in [
            ("    physical: {}\n", 6, "schedule"),
            (
                "    physical:\n      schedule: \"0 3 * * *\"\n      block_size: 12\n",
                8,
                "multiple of 8 from 8 to 4096, not 12",
            ),
            (
                "    physical: {schedule: \"0 3 * * *\", block_size: 8192}\n",
                6,
                "not 8192",
            ),
            (
                "    physical: {schedule: \"0 0 31 2 *\"}\n",
                6,
                "has no slot in the next",
            ),
            (
                "    physical: {schedule: \"0 3 * * *\", every: 1h}\n",
                6,
                "every",
            ),
        ] {
            let e = parse_err(&format!(
                "repository: {{url: /r}}\nsources:\n  db:\n    kind: postgres\n    postgres: {{url: \"postgresql://u@h/d\"}}\n{text}"
            ));
            assert_eq!(location(&e).0, line, "{e}");
            assert!(e.to_string().contains(needle), "{needle}: {e}");
        }
    }

    #[test]
    fn cross_checks_are_reported_together() {
        let text = "\
repository: {url: /r, s3: {region: eu-west-1}}
objectives:
  - {scenario: database-corruption, rto: 30m, rpo: 1h}
  - {scenario: database-corruption, rto: 1h, rpo: 1h}
sources:
  a:
    kind: postgres
  b:
    kind: kube
    kube: {}
    postgres: {url: \"postgresql://u@h/d\"}
    covers: [region-failur]
  c:
    kind: stream
    stream: {command: []}
    quiesce: {commands: {pre: [[]]}}
";
        let e = parse_err(text);
        let ConfigError::Invalid {
            origin, problems, ..
        } = &e
        else {
            panic!("expected validation errors, got {e}");
        };
        assert_eq!(origin, "test.yaml");
        let all = problems.join("\n");
        for needle in [
            "repository.s3 is set but",
            "listed twice",
            "sources.a: kind is postgres but there is no postgres: section",
            "sources.b: kind is kube but it has a postgres: section",
            "sources.b.covers: no objective has scenario \"region-failur\"",
            "sources.c.stream.command",
            "sources.c.quiesce.commands.pre",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        assert_eq!(problems.len(), 7, "{all}");
    }

    /// A stop fence cannot hold on a Patroni cluster: refused with what to
    /// use instead; revoke_login and the default (no automatic failover
    /// from it, the driver says) are accepted.
    #[test]
    fn a_stop_fence_is_refused_for_a_patroni_region() {
        let yaml = |fence: &str| {
            format!(
                "repository: {{url: /r}}\nregions:\n  us-east:\n    postgres: {{url: \"postgresql://u@h/d\", role: primary, manager: patroni, patroni: {{url: \"http://p:8008\"}}}}\n  eu-west:\n    postgres: {{url: \"postgresql://u@h2/d\", role: standby, replicates_from: us-east}}\nfailover:\n  etcd: {{endpoints: [\"http://127.0.0.1:2379\"]}}\n{fence}"
            )
        };
        let all = parse_err(&yaml("  fence: stop\n")).to_string();
        assert!(
            all.contains("regions.us-east.postgres.manager is patroni")
                && all.contains("use fence: {revoke_login: {roles: [...]}}"),
            "{all}"
        );
        parse(&yaml("  fence: {revoke_login: {roles: [app]}}\n"), "t.yaml").unwrap();
        parse(&yaml(""), "t.yaml").unwrap();
    }

    #[test]
    fn a_stop_fence_is_refused_for_a_cnpg_region() {
        let yaml = |fence: &str| {
            format!(
                "repository: {{url: /r}}\nregions:\n  us-east:\n    postgres: {{url: \"postgresql://u@h/d\", role: primary, manager: cnpg, cnpg: {{namespace: db, cluster: pg}}}}\n  eu-west:\n    postgres: {{url: \"postgresql://u@h2/d\", role: standby, replicates_from: us-east}}\nfailover:\n  etcd: {{endpoints: [\"http://127.0.0.1:2379\"]}}\n{fence}"
            )
        };
        let all = parse_err(&yaml("  fence: stop\n")).to_string();
        assert!(
            all.contains("regions.us-east.postgres.manager is cnpg")
                && all.contains("CloudNativePG starts again a server Lifeboat stops")
                && all.contains("use fence: {revoke_login: {roles: [...]}}"),
            "{all}"
        );
        parse(&yaml("  fence: {revoke_login: {roles: [app]}}\n"), "t.yaml").unwrap();
        parse(&yaml(""), "t.yaml").unwrap();
    }
}
