//! `lifeboat region traffic apply|status` and `readiness` with the
//! `route53` provider, through the built binary against moto's Route 53 on
//! 127.0.0.1 (docs/regions/route53.md). Each test starts its own
//! `moto_server` from `LIFEBOAT_TEST_VENV` (the virtualenv scripts/test.sh
//! installs moto into), gives the binary credentials through the standard
//! AWS environment variables only, and reads what was made back through the
//! Route 53 API (aws-sdk-route53); moto's state dump
//! (`/moto-api/data.json`, no signature needed) says what it received.
//!
//! moto neither runs health checks nor answers DNS: the evidence here is
//! the records and checks as configured. Live answers following health are
//! the rfc2136 provider's tests (region_cli.rs, region_daemon.rs).
//!
//! `region failover` then `region rejoin` with `route53` run here too, with
//! two PostgreSQL 15 servers and etcd (one member): no daemon, so no lease
//! whose timing would need the `daemons` binary's lane.

use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_route53::Client;
use aws_sdk_route53::config::Credentials;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType, TagResourceType,
};
use common::Env;
use lifeboat_region::traffic::route53::{Route53Provider, Route53Settings};
use serde_json::Value;

// ----- moto (the pattern of crates/lifeboat-region/tests/route53.rs) -----

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

fn venv() -> PathBuf {
    match std::env::var("LIFEBOAT_TEST_VENV") {
        Ok(v) if !v.is_empty() => v.into(),
        _ => panic!(
            "LIFEBOAT_TEST_VENV is not set: run the tests with scripts/test.sh (it installs moto into a virtualenv and exports it), e.g. LIFEBOAT_SKIP_LINT=1 scripts/test.sh -p lifeboat --test route53_cli"
        ),
    }
}

/// Starts moto; with `no_auth`, IAM is enforced after that many requests.
fn start_moto(no_auth: Option<u32>) -> Moto {
    let venv = venv();
    let port = common::free_port();
    let log = std::fs::File::create(std::env::temp_dir().join(format!("moto-r53-cli-{port}.log")))
        .unwrap();
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
    common::poll(Duration::from_secs(60), "moto_server to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    moto
}

/// A plain Route 53 client for setting up and reading back.
async fn api(moto: &Moto) -> Client {
    let s = Route53Settings {
        endpoint: Some(moto.endpoint.clone()),
        max_attempts: 2,
        ..Route53Settings::new("unused")
    };
    let sdk = Route53Provider::loader(&s)
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .load()
        .await;
    Client::new(&sdk)
}

async fn create_zone(client: &Client) -> String {
    let out = client
        .create_hosted_zone()
        .name("kubernaut.io")
        .caller_reference("lifeboat-route53-cli")
        .send()
        .await
        .unwrap();
    out.hosted_zone()
        .unwrap()
        .id()
        .trim_start_matches("/hostedzone/")
        .to_string()
}

/// moto's state dump (no signature needed): (health checks, record sets,
/// change batches received).
fn moto_contents(moto: &Moto) -> (usize, usize, usize) {
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
    let s = serde_json::from_slice::<Value>(&out.stdout).unwrap()["route53"].clone();
    let changes = s["FakeZone"].as_array().map_or(0, |zones| {
        zones
            .iter()
            .map(|z| z["rr_changes"].as_array().map_or(0, Vec::len))
            .sum()
    });
    (
        s["HealthCheck"].as_array().map_or(0, Vec::len),
        s["RecordSet"].as_array().map_or(0, Vec::len),
        changes,
    )
}

// ----- the configuration -----

const NAME: &str = "gateway.kubernaut.io";
const US: &str = "192.0.2.10";
const EU: &str = "198.51.100.20";

/// The seed's two regions steered by Route 53: weighted A records (100
/// each, TTL 30), us-east checked over HTTPS by name, eu-west over HTTP by
/// address with a search string, every 10 s, 2 results to flip.
fn config(env: &Env, endpoint: &str, zone: &str) -> String {
    let yaml = format!(
        r#"repository:
  url: {repo}
regions:
  us-east:
    postgres:
      url: postgresql://lifeboat@127.0.0.1:1/postgres
      role: primary
    health_checks:
      - {{name: gateway, type: https, host: gateway.us-east.kubernaut.io, resource_path: /healthz}}
    dns: {{address: {US}}}
  eu-west:
    postgres:
      url: postgresql://lifeboat@127.0.0.1:1/postgres
      role: standby
      replicates_from: us-east
    health_checks:
      - {{name: gateway, type: http, host: {EU}, port: 8080, resource_path: /ready, search_string: ok, request_interval: 10s, failure_threshold: 2}}
    dns: {{address: {EU}}}
traffic:
  provider: route53
  name: {NAME}
  ttl: 30
  route53: {{hosted_zone_id: {zone}, endpoint: "{endpoint}"}}
"#,
        repo = env.repo,
    );
    let path = env.path("route53.yaml");
    std::fs::write(&path, yaml).unwrap();
    path.display().to_string()
}

/// An environment whose AWS credentials are exactly these environment
/// variables: no profile file, no instance metadata.
fn aws_env(key_id: &str, secret: &str) -> Env {
    let mut env = Env::init();
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", key_id),
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_CONFIG_FILE", "/nonexistent/lifeboat-test/config"),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/lifeboat-test/credentials",
        ),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ] {
        env.envs.push((k.into(), v.into()));
    }
    env
}

// ----- reading back -----

/// A weighted record set as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    rtype: String,
    weight: Option<i64>,
    ttl: Option<i64>,
    values: Vec<String>,
    health_check_id: Option<String>,
}

/// The weighted record sets at NAME, by set identifier.
async fn records(client: &Client, zone: &str) -> BTreeMap<String, Listed> {
    let out = client
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .unwrap();
    out.resource_record_sets()
        .iter()
        .filter(|r| r.name() == format!("{NAME}.") && r.set_identifier().is_some())
        .map(|r| {
            (
                r.set_identifier().unwrap().to_string(),
                Listed {
                    rtype: r.r#type().as_str().to_string(),
                    weight: r.weight(),
                    ttl: r.ttl(),
                    values: r
                        .resource_records()
                        .iter()
                        .map(|v| v.value().to_string())
                        .collect(),
                    health_check_id: r.health_check_id().map(str::to_string),
                },
            )
        })
        .collect()
}

fn readiness_item(env: &Env, cfg: &str, id: &str) -> (String, String) {
    let out = env.run(&["--config", cfg, "--json", "readiness"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let doc: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
    let it = doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {doc}"))
        .clone();
    (
        it["state"].as_str().unwrap().to_string(),
        it["detail"].as_str().unwrap().to_string(),
    )
}

// ----- the tests -----

#[test]
fn apply_dry_run_apply_again_status_and_readiness_against_moto() {
    let moto = start_moto(None);
    let rt = common::rt();
    let client = rt.block_on(api(&moto));
    let zone = rt.block_on(create_zone(&client));
    let env = aws_env("AKIDLIFEBOATTEST0001", "lifeboat-test-secret-0001");
    let cfg = config(&env, &moto.endpoint, &zone);
    let cfg = cfg.as_str();
    let empty = moto_contents(&moto);
    assert_eq!((empty.0, empty.2), (0, 0), "{empty:?}");

    // Nothing there yet: readiness's global-load-balancer fails, naming
    // what is missing.
    let (state, detail) = readiness_item(&env, cfg, "global-load-balancer");
    assert_eq!(state, "fail", "{detail}");
    assert!(detail.contains("[us-east]"), "{detail}");
    assert!(detail.contains("[eu-west]"), "{detail}");
    assert!(detail.contains("lifeboat region traffic apply"), "{detail}");

    // A dry run plans both checks and both records, and writes nothing.
    let dry = env.ok_json(&[
        "--config",
        cfg,
        "--json",
        "region",
        "traffic",
        "apply",
        "--dry-run",
    ]);
    assert_eq!(dry["provider"], "route53", "{dry}");
    assert_eq!(dry["written"], false, "{dry}");
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(dry["changes"].as_array().unwrap().len(), 4, "{dry}");
    assert_eq!(dry["done"], serde_json::json!([]), "{dry}");
    assert_eq!(moto_contents(&moto), empty, "a dry run wrote something");
    assert!(rt.block_on(records(&client, &zone)).is_empty());

    // Apply: the records and checks exist, read back through the API.
    let doc = env.ok_json(&["--config", cfg, "--json", "region", "traffic", "apply"]);
    assert_eq!(doc["written"], true, "{doc}");
    assert_eq!(doc["zone"]["id"], zone.as_str(), "{doc}");
    assert_eq!(doc["created_checks"].as_object().unwrap().len(), 2, "{doc}");
    let listed = rt.block_on(records(&client, &zone));
    assert_eq!(
        listed.keys().collect::<Vec<_>>(),
        ["eu-west", "us-east"],
        "{listed:?}"
    );
    for (region, ip) in [("us-east", US), ("eu-west", EU)] {
        let r = &listed[region];
        assert_eq!(
            (r.rtype.as_str(), r.weight, r.ttl, r.values.clone()),
            ("A", Some(100), Some(30), vec![ip.to_string()]),
            "{region}"
        );
        let id = r.health_check_id.as_deref().expect("a health check");
        let hc = rt
            .block_on(client.get_health_check().health_check_id(id).send())
            .unwrap();
        let hc = hc.health_check().unwrap();
        assert!(hc.caller_reference().starts_with("lifeboat-"));
        let c = hc.health_check_config().unwrap();
        if region == "us-east" {
            assert_eq!(c.r#type().as_str(), "HTTPS");
            assert_eq!(
                c.fully_qualified_domain_name(),
                Some("gateway.us-east.kubernaut.io")
            );
            assert_eq!(c.ip_address(), None);
            assert_eq!(c.port(), Some(443));
            assert_eq!(c.resource_path(), Some("/healthz"));
            assert_eq!(c.search_string(), None);
            assert_eq!(c.request_interval(), Some(30));
            assert_eq!(c.failure_threshold(), Some(3));
        } else {
            assert_eq!(c.r#type().as_str(), "HTTP_STR_MATCH");
            assert_eq!(c.ip_address(), Some(EU));
            assert_eq!(c.port(), Some(8080));
            assert_eq!(c.resource_path(), Some("/ready"));
            assert_eq!(c.search_string(), Some("ok"));
            assert_eq!(c.request_interval(), Some(10));
            assert_eq!(c.failure_threshold(), Some(2));
        }
        let tags = rt
            .block_on(
                client
                    .list_tags_for_resource()
                    .resource_type(TagResourceType::Healthcheck)
                    .resource_id(id)
                    .send(),
            )
            .unwrap();
        let tags: BTreeMap<String, String> = tags
            .resource_tag_set()
            .unwrap()
            .tags()
            .iter()
            .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
            .collect();
        assert_eq!(
            tags.get("lifeboat:set-identifier").map(String::as_str),
            Some(region)
        );
        assert_eq!(tags.get("lifeboat:zone"), Some(&zone));
    }
    let after_apply = moto_contents(&moto);
    assert_eq!(after_apply.0, 2, "{after_apply:?}");

    // A second apply changes nothing: no new check, no new change batch.
    let again = env.ok_json(&["--config", cfg, "--json", "region", "traffic", "apply"]);
    assert_eq!(again["written"], false, "{again}");
    assert_eq!(again["changes"], serde_json::json!([]), "{again}");
    assert_eq!(moto_contents(&moto), after_apply);
    assert_eq!(rt.block_on(records(&client, &zone)), listed);

    // Status: in sync, both records present with their checks.
    let st = env.ok_json(&["--config", cfg, "--json", "region", "traffic", "status"]);
    assert_eq!(st["provider"], "route53", "{st}");
    assert_eq!(st["in_sync"], true, "{st}");
    assert_eq!(st["pending"], serde_json::json!([]), "{st}");
    let recs = st["records"].as_array().unwrap();
    assert_eq!(recs.len(), 2, "{st}");
    for r in recs {
        let set = r["key"]["set_identifier"].as_str().unwrap();
        assert_eq!(
            r["present"]["health_check_id"].as_str(),
            listed[set].health_check_id.as_deref(),
            "{st}"
        );
        assert!(r["health_check"]["settings"].is_object(), "{st}");
    }
    let text = env.ok(&["--config", cfg, "region", "traffic", "status"]);
    assert!(text.contains("in sync: yes"), "{text}");

    // Readiness passes on that evidence.
    let (state, detail) = readiness_item(&env, cfg, "global-load-balancer");
    assert_eq!(state, "pass", "{detail}");

    // eu-west's record deleted behind Lifeboat's back: status and readiness
    // say so; apply puts it back.
    let eu = &listed["eu-west"];
    let delete = ResourceRecordSet::builder()
        .name(format!("{NAME}."))
        .r#type(RrType::A)
        .set_identifier("eu-west")
        .weight(eu.weight.unwrap())
        .ttl(eu.ttl.unwrap())
        .resource_records(ResourceRecord::builder().value(EU).build().unwrap())
        .health_check_id(eu.health_check_id.clone().unwrap())
        .build()
        .unwrap();
    rt.block_on(
        client
            .change_resource_record_sets()
            .hosted_zone_id(&zone)
            .change_batch(
                ChangeBatch::builder()
                    .changes(
                        Change::builder()
                            .action(ChangeAction::Delete)
                            .resource_record_set(delete)
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .send(),
    )
    .unwrap();
    assert!(!rt.block_on(records(&client, &zone)).contains_key("eu-west"));
    let st = env.ok_json(&["--config", cfg, "--json", "region", "traffic", "status"]);
    assert_eq!(st["in_sync"], false, "{st}");
    assert!(
        st["pending"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().contains("[eu-west]")),
        "{st}"
    );
    let (state, detail) = readiness_item(&env, cfg, "global-load-balancer");
    assert_eq!(state, "fail", "{detail}");
    assert!(detail.contains("[eu-west]"), "{detail}");
    assert!(!detail.contains("[us-east]"), "{detail}");

    let doc = env.ok_json(&["--config", cfg, "--json", "region", "traffic", "apply"]);
    assert_eq!(doc["written"], true, "{doc}");
    assert_eq!(
        doc["created_checks"].as_object().unwrap().len(),
        0,
        "the existing check is reused: {doc}"
    );
    assert_eq!(rt.block_on(records(&client, &zone)), listed);
    let (state, detail) = readiness_item(&env, cfg, "global-load-balancer");
    assert_eq!(state, "pass", "{detail}");
}

/// Setup with IAM not yet enforced: a hosted zone and a user with an
/// access key (3 requests). Prints the zone id and the key as JSON.
const IAM_SETUP: &str = r#"
import boto3, json, sys
ep = sys.argv[1]
def c(svc):
    return boto3.client(svc, endpoint_url=ep, region_name="us-east-1",
                        aws_access_key_id="setup", aws_secret_access_key="setup")
r53, iam = c("route53"), c("iam")
zone = r53.create_hosted_zone(Name="kubernaut.io", CallerReference="iam-cli")["HostedZone"]["Id"]
iam.create_user(UserName="lifeboat")
k = iam.create_access_key(UserName="lifeboat")["AccessKey"]
print(json.dumps({"zone": zone.split("/")[-1], "key": k["AccessKeyId"], "secret": k["SecretAccessKey"]}))
"#;
const IAM_SETUP_REQUESTS: u32 = 3;

#[test]
fn refused_credentials_exit_6_and_nothing_is_written() {
    let moto = start_moto(Some(IAM_SETUP_REQUESTS));
    let out = std::process::Command::new(venv().join("bin/python"))
        .args(["-c", IAM_SETUP, &moto.endpoint])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "setup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let setup: Value = serde_json::from_slice(&out.stdout).unwrap();
    let zone = setup["zone"].as_str().unwrap();
    let key = setup["key"].as_str().unwrap();
    let empty = moto_contents(&moto);
    assert_eq!((empty.0, empty.2), (0, 0), "{empty:?}");

    // (what, key id, secret, the code Route 53 answers)
    let cases = [
        (
            "an unknown access key",
            "AKIAUNKNOWN000000000",
            "unknown-secret-7f3a",
            "InvalidClientTokenId",
        ),
        (
            "a wrong secret",
            key,
            "wrong-secret-for-lifeboat-9c2e",
            "SignatureDoesNotMatch",
        ),
    ];
    for (what, id, secret, code) in cases {
        let env = aws_env(id, secret);
        let cfg = config(&env, &moto.endpoint, zone);
        for dry in [true, false] {
            let mut args = vec![
                "--config",
                cfg.as_str(),
                "--json",
                "region",
                "traffic",
                "apply",
            ];
            if dry {
                args.push("--dry-run");
            }
            let (stdout, stderr) = env.exits_with(&args, 6);
            let doc: Value = serde_json::from_str(&stdout).unwrap();
            assert_eq!(doc["error"]["kind"], "auth", "{what}: {doc}");
            let message = doc["error"]["message"].as_str().unwrap();
            assert!(message.contains(code), "{what}: {message}");
            assert!(message.contains("nothing was changed"), "{what}: {message}");
            assert!(
                doc["error"]["hint"]
                    .as_str()
                    .unwrap()
                    .contains("AWS_ACCESS_KEY_ID"),
                "{what}: {doc}"
            );
            assert!(
                !stdout.contains(secret) && !stderr.contains(secret),
                "{what}: the secret leaked"
            );
        }
        let (_, stderr) = env.exits_with(&["--config", &cfg, "region", "traffic", "status"], 6);
        assert!(stderr.contains(code), "{what}: {stderr}");
        assert_eq!(moto_contents(&moto), empty, "{what}: something was written");
    }
}

#[test]
fn no_credentials_and_an_unreachable_endpoint_are_clear_errors() {
    // No credentials anywhere in the chain: exit 6, saying where they come
    // from; no request leaves (the endpoint is a closed port, so a request
    // would be a transport error instead).
    let closed = format!("http://127.0.0.1:{}", common::free_port());
    let mut env = aws_env("unused", "unused");
    env.envs
        .retain(|(k, _)| k != "AWS_ACCESS_KEY_ID" && k != "AWS_SECRET_ACCESS_KEY");
    let cfg = config(&env, &closed, "Z0123456789ABCDEFGHIJ");
    // Removed from the inherited environment too: scripts/test.sh exports
    // credentials for moto's S3.
    let out = env
        .cmd(&["--config", &cfg, "--json", "region", "traffic", "apply"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(6),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no AWS credentials found"),
        "{doc}"
    );

    // Credentials, but nothing listens at the endpoint: retried by the
    // SDK, then a failure (exit 1) that says what to check.
    let env = aws_env("AKIDLIFEBOATTEST0002", "lifeboat-test-secret-0002");
    let cfg = config(&env, &closed, "Z0123456789ABCDEFGHIJ");
    let (stdout, _) = env.exits_with(
        &["--config", &cfg, "--json", "region", "traffic", "apply"],
        1,
    );
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("could not get an answer from Route 53"),
        "{message}"
    );
    assert!(message.contains("nothing was changed"), "{message}");
    assert!(
        doc["error"]["hint"].as_str().unwrap().contains("reachable"),
        "{doc}"
    );
}

// ----- a failover and a rejoin with `route53` -----

const TXT_NAME: &str = "_lifeboat-authority.gateway.kubernaut.io.";
/// The configured weights: not the default 100, so "as configured" is seen.
const US_WEIGHT: i64 = 70;
const EU_WEIGHT: i64 = 30;
const REPL_PASSWORD: &str = "repl-Secret-r53r3j";

/// Two `manager: postgres` regions in agent mode (us-east a `TempCluster`,
/// eu-west at `standby_port` on `standby_pgdata`), the authority in `etcd`,
/// steered by Route 53 at `endpoint` with weights 70/30 and the health
/// checks of [`config`].
fn failover_config(
    env: &Env,
    p: &lifeboat_postgres::TempCluster,
    standby_port: u16,
    standby_pgdata: &std::path::Path,
    etcd: &[String],
    endpoint: &str,
    zone: &str,
) -> String {
    let yaml = format!(
        r#"repository:
  url: {repo}
regions:
  us-east:
    postgres:
      url: postgresql://{user}@127.0.0.1:{pport}/postgres
      password: {{env: REGION_PG_PASSWORD}}
      role: primary
      pgdata: {ppgdata}
      control: {{pg_ctl: {{bin_dir: {bin}}}}}
    health_checks:
      - {{name: gateway, type: https, host: gateway.us-east.kubernaut.io, resource_path: /healthz}}
    dns: {{address: {US}, weight: {US_WEIGHT}}}
  eu-west:
    postgres:
      url: postgresql://{user}@127.0.0.1:{sport}/postgres
      password: {{env: REGION_PG_PASSWORD}}
      role: standby
      replicates_from: us-east
      pgdata: {spgdata}
      control: {{pg_ctl: {{bin_dir: {bin}}}}}
    health_checks:
      - {{name: gateway, type: http, host: {EU}, port: 8080, resource_path: /ready, search_string: ok, request_interval: 10s, failure_threshold: 2}}
    dns: {{address: {EU}, weight: {EU_WEIGHT}}}
replication:
  user: lifeboat_replication
  password: {{env: REGION_REPL_PASSWORD}}
traffic:
  provider: route53
  name: {NAME}
  ttl: 30
  route53: {{hosted_zone_id: {zone}, endpoint: "{endpoint}"}}
failover:
  etcd: {{endpoints: [{endpoints}]}}
  safety_margin: 1s
"#,
        repo = env.repo,
        user = p.superuser(),
        pport = p.port(),
        ppgdata = p.data_dir().display(),
        sport = standby_port,
        spgdata = standby_pgdata.display(),
        bin = p.bin_dir().display(),
        endpoints = etcd.join(", "),
    );
    let path = env.path("route53-failover.yaml");
    std::fs::write(&path, yaml).unwrap();
    path.display().to_string()
}

/// The authority TXT record's values as the API lists them.
async fn authority_txt(client: &Client, zone: &str) -> Vec<String> {
    let out = client
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .unwrap();
    out.resource_record_sets()
        .iter()
        .filter(|r| r.name() == TXT_NAME && r.r#type() == &RrType::Txt)
        .flat_map(|r| r.resource_records().iter().map(|v| v.value().to_string()))
        .collect()
}

/// Writes the authority TXT record by hand (UPSERT), as something other
/// than this change's driver would.
async fn put_txt(client: &Client, zone: &str, text: &str) {
    let set = ResourceRecordSet::builder()
        .name(TXT_NAME)
        .r#type(RrType::Txt)
        .ttl(30)
        .resource_records(
            ResourceRecord::builder()
                .value(format!("\"{text}\""))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    client
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(
            ChangeBatch::builder()
                .changes(
                    Change::builder()
                        .action(ChangeAction::Upsert)
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
}

/// The weights of the weighted records at NAME, by set identifier.
fn weights(listed: &BTreeMap<String, Listed>) -> Vec<(String, Option<i64>)> {
    listed.iter().map(|(k, v)| (k.clone(), v.weight)).collect()
}

/// The `restore_dns` step of a `--json` rejoin's steps.
fn restore_dns_step(doc: &Value) -> Value {
    doc["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps: {doc}"))
        .iter()
        .find(|s| s["step"] == "restore_dns")
        .cloned()
        .unwrap_or_else(|| panic!("no restore_dns step: {doc}"))
}

/// `region failover` from a stopped us-east to eu-west and `region rejoin
/// us-east` with the `route53` provider against moto, real PostgreSQL 15
/// servers and etcd: every weight and the TXT epoch record read back from
/// moto through the Route 53 API; a rejoin while the TXT publishes another
/// epoch is refused before any write, the rerun restores the configured
/// weights, and one more run sends nothing.
#[test]
fn failover_then_rejoin_restores_the_configured_weights_in_route53() {
    use crate::etcd;
    use common::pg::{authority_epoch, in_recovery, names};
    use common::standby::{SeededStandby, empty_owned_dir};
    use lifeboat_postgres::{ClusterOptions, TempCluster};

    let moto = start_moto(None);
    let rt = common::rt();
    let client = rt.block_on(api(&moto));
    let zone = rt.block_on(create_zone(&client));
    let etcd = rt.block_on(etcd::EtcdCluster::start(1));
    // wal_log_hints: the old primary is rewound, not cloned.
    let p = TempCluster::start_with(ClusterOptions {
        settings: vec![
            ("full_page_writes".into(), "on".into()),
            ("wal_log_hints".into(), "on".into()),
        ],
        ..Default::default()
    })
    .expect("starting PostgreSQL; install postgresql-15 (scripts/test.sh does) if it is missing");
    // us-east runs under pg_ctl once rejoined: stopped however the test ends.
    let east_guard = SeededStandby::for_cluster(&p, &[("wal_log_hints", "on")]);
    let mut env = aws_env("AKIDLIFEBOATTEST0003", "lifeboat-test-secret-0003");
    env.envs.push((
        "REGION_PG_PASSWORD".into(),
        p.password().expose().to_string(),
    ));
    env.envs
        .push(("REGION_REPL_PASSWORD".into(), REPL_PASSWORD.into()));
    let pgdata = empty_owned_dir(&env.path("eu-west"), "data");
    let port = common::free_port();
    let _west_guard = SeededStandby {
        bin: p.bin_dir().to_path_buf(),
        pgdata: pgdata.clone(),
    };
    let cfg = failover_config(
        &env,
        &p,
        port,
        &pgdata,
        &etcd.endpoints(),
        &moto.endpoint,
        &zone,
    );
    let cfg = cfg.as_str();
    let east = p.conn_config("postgres");
    let mut west = east.clone();
    west.port = port;

    env.ok(&[
        "--config",
        cfg,
        "region",
        "replicate",
        "--from",
        "us-east",
        "--to",
        "eu-west",
    ]);
    env.ok(&["--config", cfg, "region", "traffic", "apply"]);
    let configured = rt.block_on(records(&client, &zone));
    assert_eq!(
        weights(&configured),
        [
            ("eu-west".to_string(), Some(EU_WEIGHT)),
            ("us-east".to_string(), Some(US_WEIGHT))
        ]
    );
    assert!(rt.block_on(authority_txt(&client, &zone)).is_empty());

    // us-east's region is lost: its server stops at once; failover.
    east_guard.stop_now();
    let doc = env.ok_json(&[
        "--config", cfg, "--json", "region", "failover", "--to", "eu-west",
    ]);
    assert_eq!(doc["report"]["outcome"], "done", "{doc}");
    assert_eq!(doc["report"]["epoch"], 2, "{doc}");
    assert_eq!(in_recovery(&rt, &west), Some(false));
    // moto holds: only eu-west's record carries weight (its configured
    // one), every other field as configured; the TXT names eu-west at 2.
    let failed_over = rt.block_on(records(&client, &zone));
    let mut want = configured.clone();
    want.get_mut("us-east").unwrap().weight = Some(0);
    assert_eq!(failed_over, want);
    assert_eq!(
        rt.block_on(authority_txt(&client, &zone)),
        ["\"lifeboat epoch=2 primary=eu-west\""]
    );

    // The TXT publishes another epoch (as if the failover's DNS step had
    // not landed): the rejoin's server steps run, its DNS step is refused
    // before any write, saying why; moto received no change.
    rt.block_on(put_txt(&client, &zone, "lifeboat epoch=1 primary=us-east"));
    let before = moto_contents(&moto);
    let (stdout, _) = env.exits_with(
        &["--config", cfg, "--json", "region", "rejoin", "us-east"],
        1,
    );
    // One document: the steps done, with the error.
    let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let steps: Vec<&str> = doc["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("{stdout}"))
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["plan", "slot", "rewind", "follow", "verify"],
        "{stdout}"
    );
    let error = &doc["error"];
    assert_eq!(error["exit_code"], 1, "{stdout}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("publishes epoch 1 for us-east, not epoch 2 for eu-west"),
        "{stdout}"
    );
    assert!(
        error["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("run the same command again"),
        "{stdout}"
    );
    assert_eq!(moto_contents(&moto), before, "a refused restore wrote");
    assert_eq!(rt.block_on(records(&client, &zone)), failed_over);

    // The TXT back at epoch 2 for eu-west: the rerun (us-east streams by
    // now: verified only) restores the configured weights exactly.
    rt.block_on(put_txt(&client, &zone, "lifeboat epoch=2 primary=eu-west"));
    let doc = env.ok_json(&["--config", cfg, "--json", "region", "rejoin", "us-east"]);
    let steps: Vec<&str> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["plan", "verify", "restore_dns"], "{doc}");
    assert_eq!(restore_dns_step(&doc)["ok"], true, "{doc}");
    assert_eq!(doc["report"]["dns"]["written"], true, "{doc}");
    assert_eq!(rt.block_on(records(&client, &zone)), configured);
    assert_eq!(
        rt.block_on(authority_txt(&client, &zone)),
        ["\"lifeboat epoch=2 primary=eu-west\""]
    );
    // The servers say us-east is eu-west's streaming standby at epoch 2.
    assert_eq!(in_recovery(&rt, &east), Some(true));
    assert_eq!(
        names(
            &rt,
            &west,
            "SELECT application_name::text FROM pg_stat_replication WHERE state = 'streaming'"
        ),
        ["us-east"]
    );
    assert_eq!(authority_epoch(&rt, &east), Some(2));

    // Once more: nothing to write, and Route 53 received nothing.
    let settled = moto_contents(&moto);
    let doc = env.ok_json(&["--config", cfg, "--json", "region", "rejoin", "us-east"]);
    assert_eq!(restore_dns_step(&doc)["ok"], true, "{doc}");
    assert_eq!(doc["report"]["dns"]["written"], false, "{doc}");
    assert_eq!(moto_contents(&moto), settled, "an idempotent rejoin wrote");
    assert_eq!(rt.block_on(records(&client, &zone)), configured);
    assert_eq!(
        rt.block_on(authority_txt(&client, &zone)),
        ["\"lifeboat epoch=2 primary=eu-west\""]
    );
}
