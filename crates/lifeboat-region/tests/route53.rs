//! The Route 53 provider against moto's Route 53 on 127.0.0.1
//! (docs/regions/route53.md). Each test starts its own `moto_server` from
//! `LIFEBOAT_TEST_VENV` (the virtualenv scripts/test.sh installs moto into)
//! and reads what was made back through the Route 53 API; moto's state dump
//! (`/moto-api/data.json`) adds the log of change batches it received, so
//! "no change" and "exactly this change" are what the server saw.
//!
//! moto neither runs health checks nor answers DNS: the evidence here is the
//! records and checks as configured; live answers are the rfc2136
//! provider's tests.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_route53::Client;
use aws_sdk_route53::config::Credentials;
use aws_sdk_route53::types::{HealthCheck, TagResourceType};
use lifeboat_region::traffic::route53::plan::{self, DeleteReason};
use lifeboat_region::traffic::route53::{
    Change, HealthCheckConfig, HealthCheckRef, HealthCheckType, Observed, RecordType, Route53Error,
    Route53Provider, Route53Settings, WeightedRecord, Zone,
};

// ----- moto -----

/// A moto server of our own, stopped on drop.
struct Moto {
    child: std::process::Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn venv() -> std::path::PathBuf {
    match std::env::var("LIFEBOAT_TEST_VENV") {
        Ok(v) if !v.is_empty() => v.into(),
        _ => panic!(
            "LIFEBOAT_TEST_VENV is not set: run the tests with scripts/test.sh (it installs moto into a virtualenv and exports it), e.g. LIFEBOAT_SKIP_LINT=1 scripts/test.sh -p lifeboat-region --test route53"
        ),
    }
}

/// A loopback port no other test process is handed while this one lives.
use lifeboat_test_ports::reserve as free_port;

/// Starts moto; with `no_auth`, IAM is enforced after that many requests.
fn start_moto(no_auth: Option<u32>) -> Moto {
    let venv = venv();
    let port = free_port();
    let log =
        std::fs::File::create(std::env::temp_dir().join(format!("moto-r53-{port}.log"))).unwrap();
    let mut cmd = std::process::Command::new(venv.join("bin/moto_server"));
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    if let Some(n) = no_auth {
        cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
    }
    let child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "moto_server from LIFEBOAT_TEST_VENV={}: {e}; run scripts/test.sh",
            venv.display()
        )
    });
    let moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    // Readiness, not an ordering sleep.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "moto_server did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    moto
}

fn settings(endpoint: &str, zone: &str) -> Route53Settings {
    Route53Settings {
        endpoint: Some(endpoint.to_string()),
        max_attempts: 2,
        ..Route53Settings::new(zone)
    }
}

async fn provider(moto: &Moto, zone: &str, key: (&str, &str)) -> Route53Provider {
    let s = settings(&moto.endpoint, zone);
    let sdk = Route53Provider::loader(&s)
        .credentials_provider(Credentials::new(key.0, key.1, None, None, "test"))
        .load()
        .await;
    Route53Provider::from_sdk_config(&sdk, &s)
}

/// A plain Route 53 client for reading back what the provider made.
async fn api(moto: &Moto) -> Client {
    let s = settings(&moto.endpoint, "unused");
    let sdk = Route53Provider::loader(&s)
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .load()
        .await;
    Client::new(&sdk)
}

/// moto's state dump (no signature needed).
fn moto_state(moto: &Moto) -> serde_json::Value {
    let out = std::process::Command::new(venv().join("bin/python"))
        .args([
            "-c",
            "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1] + '/moto-api/data.json').read().decode())",
            &moto.endpoint,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["route53"].clone()
}

/// Every change moto received for zones named `name`, in order.
fn moto_changes(moto: &Moto) -> Vec<serde_json::Value> {
    moto_state(moto)["FakeZone"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|z| z["rr_changes"].as_array().cloned().unwrap_or_default())
        .collect()
}

// ----- the configuration -----

const ZONE_NAME: &str = "kubernaut.io";

/// The seed's §2.3: per region a weighted record (weight 100, set
/// identifier = region) for gateway.kubernaut.io answering the region's
/// gateway name, with an HTTPS /healthz check every 30 s, threshold 3.
/// Plus a pair of A records by address with HTTP string-match checks.
fn desired() -> Vec<WeightedRecord> {
    let mut out = Vec::new();
    for region in ["us-east", "eu-west"] {
        let target = format!("gateway.{region}.kubernaut.io");
        let mut r = WeightedRecord::new(
            "gateway.kubernaut.io",
            RecordType::Cname,
            region,
            &[target.as_str()],
        );
        r.health_check = Some(HealthCheckConfig::https(&target, "/healthz"));
        out.push(r);
    }
    for (region, ip) in [("us-east", "192.0.2.10"), ("eu-west", "198.51.100.20")] {
        let mut r = WeightedRecord::new("api.kubernaut.io", RecordType::A, region, &[ip]);
        r.ttl = 30;
        r.health_check = Some(HealthCheckConfig {
            check_type: HealthCheckType::Http,
            ip_address: Some(ip.parse().unwrap()),
            fqdn: Some(format!("api.{region}.kubernaut.io")),
            port: Some(8080),
            resource_path: Some("/ready".into()),
            search_string: Some("ok".into()),
            request_interval: 30,
            failure_threshold: 3,
        });
        out.push(r);
    }
    out
}

async fn create_zone(client: &Client) -> String {
    let out = client
        .create_hosted_zone()
        .name(ZONE_NAME)
        .caller_reference("lifeboat-route53-test")
        .send()
        .await
        .unwrap();
    out.hosted_zone()
        .unwrap()
        .id()
        .trim_start_matches("/hostedzone/")
        .to_string()
}

// ----- reading back through the API -----

/// A record set as the API lists it, in comparable form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Listed {
    name: String,
    rtype: String,
    set_identifier: Option<String>,
    weight: Option<i64>,
    ttl: Option<i64>,
    values: Vec<String>,
    health_check_id: Option<String>,
}

async fn list_records(client: &Client, zone: &str) -> Vec<Listed> {
    let out = client
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .unwrap();
    assert!(!out.is_truncated());
    let mut v: Vec<Listed> = out
        .resource_record_sets()
        .iter()
        .map(|r| Listed {
            name: r.name().to_string(),
            rtype: r.r#type().as_str().to_string(),
            set_identifier: r.set_identifier().map(str::to_string),
            weight: r.weight(),
            ttl: r.ttl(),
            values: r
                .resource_records()
                .iter()
                .map(|v| v.value().to_string())
                .collect(),
            health_check_id: r.health_check_id().map(str::to_string),
        })
        .collect();
    v.sort();
    v
}

async fn list_checks(client: &Client) -> BTreeMap<String, HealthCheck> {
    let out = client.list_health_checks().send().await.unwrap();
    out.health_checks()
        .iter()
        .map(|h| (h.id().to_string(), h.clone()))
        .collect()
}

async fn tags_of(client: &Client, id: &str) -> BTreeMap<String, String> {
    let out = client
        .list_tags_for_resource()
        .resource_type(TagResourceType::Healthcheck)
        .resource_id(id)
        .send()
        .await
        .unwrap();
    out.resource_tag_set()
        .unwrap()
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect()
}

fn find<'a>(records: &'a [Listed], name: &str, set: &str) -> &'a Listed {
    records
        .iter()
        .find(|r| r.name == name && r.set_identifier.as_deref() == Some(set))
        .unwrap_or_else(|| panic!("{name} [{set}] not in {records:#?}"))
}

/// Compares one configured record with the record set and health check
/// the API returns, field by field.
async fn assert_made(client: &Client, zone: &str, want: &WeightedRecord, records: &[Listed]) {
    let name = format!("{}.", want.name);
    let got = find(records, &name, &want.set_identifier);
    assert_eq!(got.rtype, want.record_type.as_str(), "{name}");
    assert_eq!(got.weight, Some(i64::from(want.weight)), "{name}");
    assert_eq!(got.ttl, Some(i64::from(want.ttl)), "{name}");
    let mut values: Vec<String> = got
        .values
        .iter()
        .map(|v| v.trim_end_matches('.').to_string())
        .collect();
    values.sort();
    let mut want_values = want.values.clone();
    want_values.sort();
    assert_eq!(values, want_values, "{name}");
    let id = got.health_check_id.as_deref().expect("a health check id");
    let hc = client
        .get_health_check()
        .health_check_id(id)
        .send()
        .await
        .unwrap()
        .health_check()
        .unwrap()
        .clone();
    assert!(
        hc.caller_reference().starts_with("lifeboat-"),
        "{}",
        hc.caller_reference()
    );
    let cfg = hc.health_check_config().unwrap();
    let w = want.health_check.as_ref().unwrap();
    assert_eq!(cfg.r#type().as_str(), w.api_type(), "{name}");
    assert_eq!(
        cfg.fully_qualified_domain_name(),
        w.fqdn.as_deref(),
        "{name}"
    );
    assert_eq!(
        cfg.ip_address().map(str::to_string),
        w.ip_address.map(|i| i.to_string()),
        "{name}"
    );
    let port = w.port.map(i32::from).unwrap_or(match w.check_type {
        HealthCheckType::Https => 443,
        _ => 80,
    });
    assert_eq!(cfg.port(), Some(port), "{name}");
    assert_eq!(cfg.resource_path(), w.resource_path.as_deref(), "{name}");
    assert_eq!(cfg.search_string(), w.search_string.as_deref(), "{name}");
    assert_eq!(
        cfg.request_interval(),
        Some(w.request_interval as i32),
        "{name}"
    );
    assert_eq!(
        cfg.failure_threshold(),
        Some(w.failure_threshold as i32),
        "{name}"
    );
    assert_eq!(
        cfg.enable_sni(),
        Some(w.check_type == HealthCheckType::Https),
        "{name}"
    );
    let tags = tags_of(client, id).await;
    assert_eq!(tags.get("lifeboat:zone").map(String::as_str), Some(zone));
    assert_eq!(tags.get("lifeboat:record"), Some(&name));
    assert_eq!(
        tags.get("lifeboat:type").map(String::as_str),
        Some(want.record_type.as_str())
    );
    assert_eq!(
        tags.get("lifeboat:set-identifier"),
        Some(&want.set_identifier)
    );
    assert_eq!(
        tags.get("Name"),
        Some(&format!(
            "lifeboat {name} {} {}",
            want.record_type, want.set_identifier
        ))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_active_active_applied_read_back_and_kept() {
    let moto = start_moto(None);
    let client = api(&moto).await;
    let zone = create_zone(&client).await;
    let p = provider(&moto, &zone, ("test", "test")).await;
    let mut want = desired();

    // First apply: four checks, four records, one batch.
    let report = p.apply(&want, false).await.unwrap();
    assert_eq!(report.created_checks.len(), 4, "{report:#?}");
    let upserts = report
        .plan
        .changes
        .iter()
        .filter(|c| matches!(c, Change::UpsertRecord { .. }))
        .count();
    assert_eq!(upserts, 4);
    assert!(report.change_id.is_some());
    let records = list_records(&client, &zone).await;
    for w in &want {
        assert_made(&client, &zone, w, &records).await;
    }
    // The zone holds NS, SOA and our four; four checks exist.
    assert_eq!(records.len(), 6, "{records:#?}");
    let checks = list_checks(&client).await;
    assert_eq!(checks.len(), 4);
    let linked: BTreeSet<&str> = records
        .iter()
        .filter_map(|r| r.health_check_id.as_deref())
        .collect();
    assert_eq!(linked, checks.keys().map(String::as_str).collect());
    assert_eq!(moto_changes(&moto).len(), 4, "one batch of four UPSERTs");

    // Again: nothing to do, nothing sent.
    let again = p.apply(&want, false).await.unwrap();
    assert!(again.plan.is_empty(), "{:#?}", again.plan);
    assert!(again.done.is_empty());
    assert_eq!(list_records(&client, &zone).await, records);
    assert_eq!(list_checks(&client).await, checks);
    assert_eq!(moto_changes(&moto).len(), 4);

    // One weight and one address: exactly those two UPSERTs.
    want[1].weight = 0; // gateway eu-west drained
    want[2].values = vec!["192.0.2.11".into()]; // api us-east moved
    let report = p.apply(&want, false).await.unwrap();
    assert_eq!(report.plan.changes.len(), 2, "{:#?}", report.plan);
    for c in &report.plan.changes {
        assert!(
            matches!(
                c,
                Change::UpsertRecord {
                    health_check: HealthCheckRef::Existing(_),
                    ..
                }
            ),
            "{c}"
        );
    }
    let sent = moto_changes(&moto);
    assert_eq!(sent.len(), 6, "{sent:#?}");
    let sent_now: Vec<(String, String, String)> = sent[4..]
        .iter()
        .map(|c| {
            let s = &c["ResourceRecordSet"];
            (
                c["Action"].as_str().unwrap().to_string(),
                s["Name"]
                    .as_str()
                    .unwrap()
                    .trim_end_matches('.')
                    .to_string(),
                s["SetIdentifier"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        sent_now,
        vec![
            ("UPSERT".into(), "api.kubernaut.io".into(), "us-east".into()),
            (
                "UPSERT".into(),
                "gateway.kubernaut.io".into(),
                "eu-west".into()
            ),
        ]
    );
    let after = list_records(&client, &zone).await;
    let differ: Vec<&Listed> = after.iter().filter(|r| !records.contains(r)).collect();
    assert_eq!(differ.len(), 2, "{differ:#?}");
    assert_eq!(
        find(&after, "gateway.kubernaut.io.", "eu-west").weight,
        Some(0)
    );
    assert_eq!(
        find(&after, "api.kubernaut.io.", "us-east").values,
        vec!["192.0.2.11"]
    );
    for w in &want {
        assert_made(&client, &zone, w, &after).await;
    }
    assert_eq!(list_checks(&client).await, checks, "checks untouched");

    // Dry run of a threshold change: the plan says so, nothing changes.
    want[0].health_check.as_mut().unwrap().failure_threshold = 5;
    let dry = p.apply(&want, true).await.unwrap();
    assert!(dry.dry_run);
    let [
        Change::UpdateHealthCheck {
            id: updated,
            from,
            to,
            ..
        },
    ] = dry.plan.changes.as_slice()
    else {
        panic!("{:#?}", dry.plan)
    };
    assert_eq!((from.failure_threshold, to.failure_threshold), (3, 5));
    assert_eq!(list_records(&client, &zone).await, after);
    assert_eq!(list_checks(&client).await, checks);
    assert_eq!(moto_changes(&moto).len(), 6);

    // Applied: the same check, updated in place; records untouched.
    let updated = updated.clone();
    p.apply(&want, false).await.unwrap();
    let now = list_checks(&client).await;
    assert_eq!(
        now.keys().collect::<Vec<_>>(),
        checks.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        now[&updated]
            .health_check_config()
            .unwrap()
            .failure_threshold(),
        Some(5)
    );
    assert_eq!(list_records(&client, &zone).await, after);
    assert!(p.plan(&want).await.unwrap().1.is_empty());

    // An interval cannot be updated: a new check, the record moved to it,
    // the old one deleted.
    want[0].health_check.as_mut().unwrap().request_interval = 10;
    let report = p.apply(&want, false).await.unwrap();
    let records_now = list_records(&client, &zone).await;
    let moved_to = find(&records_now, "gateway.kubernaut.io.", "us-east")
        .health_check_id
        .clone()
        .unwrap();
    assert_ne!(moved_to, updated);
    let now = list_checks(&client).await;
    assert!(!now.contains_key(&updated), "the replaced check is deleted");
    assert_eq!(now.len(), 4);
    assert_eq!(
        now[&moved_to]
            .health_check_config()
            .unwrap()
            .request_interval(),
        Some(10)
    );
    assert!(report.plan.changes.iter().any(|c| matches!(
        c,
        Change::DeleteHealthCheck {
            reason: DeleteReason::Replaced,
            ..
        }
    )));
    for w in &want {
        assert_made(&client, &zone, w, &records_now).await;
    }

    // Status: every record present, its check and moto's canned report.
    let status = p.status(&want).await.unwrap();
    assert!(status.in_sync, "{status:#?}");
    assert_eq!(status.records.len(), 4);
    for r in &status.records {
        let present = r.present.as_ref().expect("present");
        let hc = r.health_check.as_ref().expect("checked");
        assert_eq!(present.health_check_id.as_deref(), Some(hc.id.as_str()));
        assert!(hc.settings.is_some());
        // moto's GetHealthCheckStatus is canned: not evidence of health.
        assert_eq!(hc.healthy, Some(true), "{hc:#?}");
    }

    // A region leaves the configuration: its records and checks go, in one
    // batch of exact DELETEs. (The whole region: moto deletes every record
    // set with the DELETE's set identifier, whatever its name, unlike Route
    // 53; docs/regions/route53.md.)
    let eu_checks: BTreeSet<String> = records_now
        .iter()
        .filter(|r| r.set_identifier.as_deref() == Some("eu-west"))
        .map(|r| r.health_check_id.clone().unwrap())
        .collect();
    assert_eq!(eu_checks.len(), 2);
    let us_before: Vec<Listed> = records_now
        .iter()
        .filter(|r| r.set_identifier.as_deref() == Some("us-east"))
        .cloned()
        .collect();
    want.retain(|w| w.set_identifier != "eu-west");
    let sent_before = moto_changes(&moto).len();
    let report = p.apply(&want, false).await.unwrap();
    let deletes: Vec<String> = report
        .plan
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::DeleteRecord { current } => Some(format!(
                "{} {}",
                current.name,
                current.set_identifier.as_deref().unwrap()
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        deletes,
        vec![
            "api.kubernaut.io. eu-west".to_string(),
            "gateway.kubernaut.io. eu-west".to_string()
        ]
    );
    let sent = moto_changes(&moto);
    assert_eq!(sent.len(), sent_before + 2);
    assert!(sent[sent_before..].iter().all(|c| c["Action"] == "DELETE"));
    let records_now = list_records(&client, &zone).await;
    let left: Vec<Listed> = records_now
        .iter()
        .filter(|r| r.set_identifier.is_some())
        .cloned()
        .collect();
    assert_eq!(left, us_before, "only us-east is left, unchanged");
    let now = list_checks(&client).await;
    assert_eq!(now.len(), 2);
    assert!(eu_checks.iter().all(|id| !now.contains_key(id)));
    let left = p.plan(&want).await.unwrap().1;
    assert!(left.is_empty(), "{left:#?}");
    drop(moto);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simple_record_in_the_way_is_refused_before_anything_is_written() {
    let moto = start_moto(None);
    let client = api(&moto).await;
    let zone = create_zone(&client).await;
    // Someone's simple CNAME at the name we would make weighted.
    let set = aws_sdk_route53::types::ResourceRecordSet::builder()
        .name("gateway.kubernaut.io")
        .r#type(aws_sdk_route53::types::RrType::Cname)
        .ttl(300)
        .resource_records(
            aws_sdk_route53::types::ResourceRecord::builder()
                .value("old.kubernaut.io")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    client
        .change_resource_record_sets()
        .hosted_zone_id(&zone)
        .change_batch(
            aws_sdk_route53::types::ChangeBatch::builder()
                .changes(
                    aws_sdk_route53::types::Change::builder()
                        .action(aws_sdk_route53::types::ChangeAction::Create)
                        .resource_record_set(set)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let before = list_records(&client, &zone).await;
    let p = provider(&moto, &zone, ("test", "test")).await;
    let e = p.apply(&desired(), false).await.unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("simple (not weighted)"), "{msg}");
    assert!(msg.contains("nothing was changed"), "{msg}");
    assert_eq!(list_records(&client, &zone).await, before);
    assert!(list_checks(&client).await.is_empty());

    // A zone that does not exist: named, nothing written.
    let p = provider(&moto, "ZNOSUCHZONE", ("test", "test")).await;
    let e = p.apply(&desired(), false).await.unwrap_err();
    assert!(
        matches!(e.cause, Route53Error::NoSuchHostedZone { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("ZNOSUCHZONE"), "{e}");
    drop(moto);
}

// ----- refused credentials, against moto enforcing IAM -----

/// The requests `IAM_SETUP` makes before IAM is enforced.
const IAM_SETUP_REQUESTS: u32 = 7;

/// A hosted zone; users `reader` (the read actions only) and `lifeboat`
/// (every action of the policy in docs/regions/route53.md, on `*`: moto
/// evaluates Route 53 requests against resource `*`). Prints the zone id
/// and the keys as JSON.
const IAM_SETUP: &str = r#"
import boto3, json, sys
ep, actions = sys.argv[1], json.loads(sys.argv[2])
def c(svc):
    return boto3.client(svc, endpoint_url=ep, region_name="us-east-1",
                        aws_access_key_id="setup", aws_secret_access_key="setup")
r53, iam = c("route53"), c("iam")
zone = r53.create_hosted_zone(Name="kubernaut.io", CallerReference="iam-test")["HostedZone"]["Id"]
reads = [a for a in actions if a.split(":")[1].startswith(("Get", "List"))]
out = {"zone": zone.split("/")[-1]}
for name, allowed in (("reader", reads), ("lifeboat", actions)):
    iam.create_user(UserName=name)
    policy = {"Version": "2012-10-17",
              "Statement": [{"Effect": "Allow", "Action": allowed, "Resource": "*"}]}
    iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
    k = iam.create_access_key(UserName=name)["AccessKey"]
    out[name] = [k["AccessKeyId"], k["SecretAccessKey"]]
print(json.dumps(out))
"#;

/// The actions of the policy in docs/regions/route53.md.
fn documented_actions() -> Vec<String> {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/regions/route53.md"),
    )
    .unwrap();
    let start = doc.find("<!-- route53-policy").expect("the policy marker");
    let block = &doc[start..];
    let json_start = block.find("```json\n").unwrap() + "```json\n".len();
    let json_end = block[json_start..].find("```").unwrap();
    let policy: serde_json::Value = serde_json::from_str(&block[json_start..json_start + json_end])
        .expect("the documented policy is JSON");
    let mut actions: Vec<String> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| match &s["Action"] {
            serde_json::Value::String(a) => vec![a.clone()],
            serde_json::Value::Array(a) => {
                a.iter().map(|v| v.as_str().unwrap().to_string()).collect()
            }
            _ => panic!("{s}"),
        })
        .collect();
    actions.sort();
    actions
}

/// What moto holds: health checks and record sets (from its state dump,
/// which needs no signature).
fn moto_contents(moto: &Moto) -> (usize, usize, usize) {
    let s = moto_state(moto);
    let checks = s["HealthCheck"].as_array().map_or(0, Vec::len);
    let sets = s["RecordSet"].as_array().map_or(0, Vec::len);
    (checks, sets, moto_changes(moto).len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_clear_errors_and_write_nothing() {
    let moto = start_moto(Some(IAM_SETUP_REQUESTS));
    let actions = documented_actions();
    for a in [
        "route53:ChangeResourceRecordSets",
        "route53:CreateHealthCheck",
        "route53:ChangeTagsForResource",
        "route53:ListResourceRecordSets",
        "route53:GetChange",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} documented");
    }
    let out = std::process::Command::new(venv().join("bin/python"))
        .args([
            "-c",
            IAM_SETUP,
            &moto.endpoint,
            &serde_json::to_string(&actions).unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "setup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let setup: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let zone = setup["zone"].as_str().unwrap().to_string();
    let key = |user: &str| {
        (
            setup[user][0].as_str().unwrap().to_string(),
            setup[user][1].as_str().unwrap().to_string(),
        )
    };
    let (lb_id, lb_secret) = key("lifeboat");
    let (reader_id, reader_secret) = key("reader");
    let empty = moto_contents(&moto);
    // No check, no change; the zone's own NS and SOA only.
    assert_eq!((empty.0, empty.2), (0, 0), "{empty:?}");

    // The plan for the empty zone (computed, as the reads it needs are
    // GETs, which moto cannot authenticate: docs/regions/route53.md).
    let z = Zone {
        id: zone.clone(),
        name: "kubernaut.io.".into(),
    };
    let the_plan = plan::plan(&z, &desired(), &Observed::default()).unwrap();
    assert_eq!(the_plan.changes.len(), 8);

    // An unknown access key: refused at the first call.
    let p = provider(&moto, &zone, ("AKIAUNKNOWN000000000", "whatever")).await;
    let e = p.apply(&desired(), false).await.unwrap_err();
    let msg = e.to_string();
    eprintln!("unknown key: {msg}");
    assert!(
        matches!(&e.cause, Route53Error::CredentialsRefused { code, .. } if code == "InvalidClientTokenId"),
        "{msg}"
    );
    assert!(msg.contains("nothing was changed"), "{msg}");
    assert!(
        msg.contains("AWS_ACCESS_KEY_ID"),
        "says what to check: {msg}"
    );
    assert!(!msg.contains("whatever"), "no secret in messages: {msg}");
    let e = p.execute(&z, the_plan.clone()).await.unwrap_err();
    assert!(
        matches!(&e.cause, Route53Error::CredentialsRefused { code, .. } if code == "InvalidClientTokenId"),
        "{e}"
    );
    assert!(e.done.is_empty());

    // The right key with a wrong secret.
    let p = provider(&moto, &zone, (&lb_id, "not-the-secret")).await;
    let e = p.execute(&z, the_plan.clone()).await.unwrap_err();
    assert!(
        matches!(&e.cause, Route53Error::CredentialsRefused { code, .. } if code == "SignatureDoesNotMatch"),
        "{e}"
    );
    assert!(e.to_string().contains("nothing was changed"), "{e}");
    assert!(!e.to_string().contains(&lb_secret));

    // Valid credentials without the write permissions.
    let p = provider(&moto, &zone, (&reader_id, &reader_secret)).await;
    let e = p.execute(&z, the_plan.clone()).await.unwrap_err();
    assert!(
        matches!(
            &e.cause,
            Route53Error::AccessDenied {
                operation: "CreateHealthCheck",
                ..
            }
        ),
        "{e}"
    );
    eprintln!("read-only user: {e}");
    assert!(e.to_string().contains("docs/regions/route53.md"), "{e}");
    assert!(e.to_string().contains("nothing was changed"), "{e}");
    assert_eq!(moto_contents(&moto), empty, "nothing written");

    // The documented actions are enough for every write of the plan.
    let p = provider(&moto, &zone, (&lb_id, &lb_secret)).await;
    let report = p.execute(&z, the_plan).await.unwrap();
    assert_eq!(report.created_checks.len(), 4);
    let (checks, _, changes) = moto_contents(&moto);
    assert_eq!((checks, changes), (4, 4));
    drop(moto);
}

/// No credentials anywhere: a real provider of the standard chain (a
/// profile that does not exist) finds none; the error says so and where
/// credentials come from, and no request is sent (the endpoint is a closed
/// port: a request would be a transport error instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_are_named() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    let s = settings(&closed, "Z0123");
    let sdk = Route53Provider::loader(&s)
        .credentials_provider(
            aws_config::profile::ProfileFileCredentialsProvider::builder()
                .profile_name("lifeboat-test-no-such-profile")
                .build(),
        )
        .load()
        .await;
    let p = Route53Provider::from_sdk_config(&sdk, &s);
    let e = p.apply(&desired(), false).await.unwrap_err();
    assert!(matches!(e.cause, Route53Error::NoCredentials { .. }), "{e}");
    eprintln!("missing credentials: {e}");
    assert!(e.to_string().contains("standard AWS chain"), "{e}");
    assert!(e.to_string().contains("nothing was changed"), "{e}");
}

/// The failover switch (issue 20): the epoch's TXT record written, only
/// the new primary's record weighted, both read back from Route 53; the
/// same switch again writes nothing; an older epoch is refused and a TXT
/// record that is not Lifeboat's is never overwritten; a rejoin's restore
/// puts the configured weights back only under the published epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_switch_publishes_the_epoch_and_weights_the_new_primary_alone() {
    let moto = start_moto(None);
    let client = api(&moto).await;
    let zone = create_zone(&client).await;
    let p = provider(&moto, &zone, ("test", "test")).await;
    let want: Vec<WeightedRecord> = desired()
        .into_iter()
        .filter(|r| r.name == "api.kubernaut.io")
        .collect();
    p.apply(&want, false).await.unwrap();
    let name = "api.kubernaut.io";
    assert_eq!(p.authority_txt(name).await.unwrap(), None);

    let out = p.switch_primary(&want, name, "eu-west", 2).await.unwrap();
    assert!(out.txt_written && !out.records.is_empty(), "{out:?}");
    let records = list_records(&client, &zone).await;
    let weight = |records: &[Listed], set: &str| find(records, "api.kubernaut.io.", set).weight;
    assert_eq!(
        (weight(&records, "us-east"), weight(&records, "eu-west")),
        (Some(0), Some(100))
    );
    let txt: Vec<&Listed> = records.iter().filter(|r| r.rtype == "TXT").collect();
    assert_eq!(txt.len(), 1, "{records:#?}");
    assert_eq!(txt[0].name, "_lifeboat-authority.api.kubernaut.io.");
    assert_eq!(txt[0].values, ["\"lifeboat epoch=2 primary=eu-west\""]);
    let published = p.authority_txt(name).await.unwrap().unwrap();
    assert_eq!(
        (published.epoch, published.primary.as_str()),
        (2, "eu-west")
    );

    // Again (a resumed step): nothing written.
    let changes = moto_changes(&moto).len();
    let again = p.switch_primary(&want, name, "eu-west", 2).await.unwrap();
    assert!(!again.txt_written && again.records.is_empty(), "{again:?}");
    assert_eq!(moto_changes(&moto).len(), changes);

    // A stale driver of epoch 1 is refused by what Route 53 publishes.
    let stale = p
        .switch_primary(&want, name, "us-east", 1)
        .await
        .unwrap_err();
    assert!(
        stale
            .to_string()
            .contains("newer than this change's epoch 1"),
        "{stale}"
    );
    assert_eq!(list_records(&client, &zone).await, records);

    // Back to us-east at epoch 3.
    p.switch_primary(&want, name, "us-east", 3).await.unwrap();
    let back = list_records(&client, &zone).await;
    assert_eq!(
        (weight(&back, "us-east"), weight(&back, "eu-west")),
        (Some(100), Some(0))
    );
    assert_eq!(p.authority_txt(name).await.unwrap().unwrap().epoch, 3);

    // eu-west rejoined: the configured weights come back (a rejoin's
    // restore_dns), only under the epoch Route 53 publishes.
    let both = ["us-east".to_string(), "eu-west".to_string()];
    let stale = p
        .restore_weights(&want, name, "eu-west", 2, &both)
        .await
        .unwrap_err();
    assert!(
        stale.to_string().contains("not epoch 2 for eu-west"),
        "{stale}"
    );
    assert_eq!(list_records(&client, &zone).await, back);
    let written = p
        .restore_weights(&want, name, "us-east", 3, &both)
        .await
        .unwrap();
    assert!(!written.is_empty());
    let restored = list_records(&client, &zone).await;
    let configured = |set: &str| {
        want.iter()
            .find(|r| r.set_identifier == set)
            .unwrap()
            .weight
    };
    assert_eq!(
        (weight(&restored, "us-east"), weight(&restored, "eu-west")),
        (
            Some(i64::from(configured("us-east"))),
            Some(i64::from(configured("eu-west")))
        )
    );
    assert!(configured("eu-west") > 0, "the fixture weights eu-west");
    let again = p
        .restore_weights(&want, name, "us-east", 3, &both)
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");

    // Someone else's TXT at the owner: an error, left as it is.
    use aws_sdk_route53::types::{
        Change as Sdk, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
    };
    let foreign = ResourceRecordSet::builder()
        .name("_lifeboat-authority.api.kubernaut.io.")
        .r#type(RrType::Txt)
        .ttl(60)
        .resource_records(
            ResourceRecord::builder()
                .value("\"v=spf1 -all\"")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    client
        .change_resource_record_sets()
        .hosted_zone_id(&zone)
        .change_batch(
            ChangeBatch::builder()
                .changes(
                    Sdk::builder()
                        .action(ChangeAction::Upsert)
                        .resource_record_set(foreign)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let before = list_records(&client, &zone).await;
    let refused = p
        .switch_primary(&want, name, "eu-west", 4)
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("not a Lifeboat authority record"),
        "{refused}"
    );
    assert_eq!(list_records(&client, &zone).await, before);
}
