//! The `rfc2136` traffic provider: keeps the steered name's A/AAAA (or one
//! CNAME) answer set equal to the healthy regions' answers on an
//! authoritative server, through DNS dynamic UPDATE (RFC 2136) signed with
//! TSIG (RFC 8945, HMAC-SHA256).
//!
//! Each apply reads what the name answers now with authoritative queries to
//! the same server, plans the difference ([`super::changes`]) and sends it
//! as ONE UPDATE whose prerequisite section states the whole answer set it
//! was planned from: per type (A, AAAA, CNAME) "RRset exists (value
//! dependent)" (RFC 2136 §2.4.2) with the records read, or "RRset does not
//! exist" (§2.4.4) when there were none. The server applies all of it or
//! nothing (§3.2, §3.4). If another writer (a second daemon, a person with
//! `nsupdate`) changed the name in between, the server answers YXRRSET or
//! NXRRSET, nothing is overwritten, and the provider reads and plans again,
//! a bounded number of times. When the name already answers as desired,
//! nothing is sent.
//!
//! Transport failures (connection refused, timeouts, SERVFAIL) are retried
//! with backoff; that is safe because a retried UPDATE whose first copy did
//! land fails its prerequisite and leads to a re-read that finds nothing to
//! do. A key the server rejects (NOTAUTH with TSIG error BADKEY, BADSIG or
//! BADTIME) is reported at once, never retried.
//!
//! The exchange is done here over TCP rather than through
//! `hickory-client`'s `Client`: the client hands every response to the TSIG
//! verifier first, and the server's answer to a rejected key is unsigned by
//! design (RFC 8945 §5.3.2), so the client would turn "BADSIG" into an
//! opaque verification error. Messages, the TSIG signature (`TSigner`) and
//! the verification of signed answers are `hickory-proto`'s.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use hickory_proto::dnssec::rdata::tsig::TsigAlgorithm;
use hickory_proto::dnssec::tsig::TSigner;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode, UpdateMessage};
use hickory_proto::rr::rdata::{A, AAAA, CNAME};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

use super::{
    Answer, AnswerSet, Applied, Change, RegionAnswer, TrafficError, TrafficProvider, Verdicts,
    changes, check_single_valued, desired_answer_set,
};

const PROVIDER: &str = "rfc2136";

mod authority;
pub use authority::{AuthorityTxt, SwitchOutcome, authority_txt_name};

/// The record types this provider owns at the steered name.
const OWNED_TYPES: [RecordType; 3] = [RecordType::A, RecordType::AAAA, RecordType::CNAME];

/// A TSIG key: its name (as in the server's `key "<name>" { ... }`) and its
/// secret. The algorithm is HMAC-SHA256. The secret never appears in Debug
/// output, logs or errors, and is zeroed when dropped (hickory's `TSigner`
/// keeps its own copy while a request is signed).
#[derive(Clone)]
pub struct TsigKey {
    name: String,
    secret: Zeroizing<Vec<u8>>,
}

impl TsigKey {
    /// From the key name and the base64 secret, as `tsig-keygen` prints them.
    pub fn from_base64(name: &str, secret_base64: &str) -> Result<TsigKey, TrafficError> {
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret_base64.trim())
            .map_err(|_| {
                TrafficError::Config(format!(
                    "the secret of TSIG key `{name}` is not base64 (give the `secret` that \
                     `tsig-keygen -a hmac-sha256 {name}` prints)"
                ))
            })?;
        if secret.is_empty() {
            return Err(TrafficError::Config(format!(
                "the secret of TSIG key `{name}` is empty"
            )));
        }
        Name::from_ascii(name)
            .map_err(|_| TrafficError::Config(format!("`{name}` is not a valid TSIG key name")))?;
        Ok(TsigKey {
            name: name.to_string(),
            secret: Zeroizing::new(secret),
        })
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn signer(&self) -> Result<TSigner, TrafficError> {
        let name = Name::from_ascii(&self.name).map_err(|_| {
            TrafficError::Config(format!("`{}` is not a valid TSIG key name", self.name))
        })?;
        // Fudge 300 s: RFC 8945 §10's recommended value.
        TSigner::new(self.secret.to_vec(), TsigAlgorithm::HmacSha256, name, 300)
            .map_err(|e| TrafficError::Config(format!("TSIG key `{}` cannot sign: {e}", self.name)))
    }
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &"hmac-sha256")
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Where and how the provider writes.
#[derive(Clone, Debug)]
pub struct Rfc2136Config {
    /// The zone's primary (authoritative) server, `address:port`.
    pub server: SocketAddr,
    /// The zone (its apex), e.g. `kubernaut.test`.
    pub zone: String,
    /// The steered name inside the zone, e.g. `app.kubernaut.test`.
    pub name: String,
    /// TTL of the records written, in seconds.
    pub ttl: u32,
    /// The TSIG key the server's `allow-update` / `update-policy` grants.
    pub key: TsigKey,
    /// Per request: connect, send and answer within this.
    pub timeout: Duration,
    /// Tries per request before a transport failure is reported (≥ 1).
    pub attempts: u32,
    /// Pause before the first retry; doubled for each further one.
    pub backoff: Duration,
    /// Plans per apply: how often to re-read and re-plan when another writer
    /// changed the records between read and write (≥ 1).
    pub max_plans: u32,
}

impl Rfc2136Config {
    /// A config with the defaults: TTL 60 s, 5 s per request, 4 tries from
    /// 200 ms backoff, 5 plans.
    pub fn new(server: SocketAddr, zone: &str, name: &str, key: TsigKey) -> Rfc2136Config {
        Rfc2136Config {
            server,
            zone: zone.to_string(),
            name: name.to_string(),
            ttl: 60,
            key,
            timeout: Duration::from_secs(5),
            attempts: 4,
            backoff: Duration::from_millis(200),
            max_plans: 5,
        }
    }
}

/// The provider stopped between reading the answer set and sending its
/// UPDATE (see [`Rfc2136Provider::pause_after_read`]); it goes on when this
/// is resumed or dropped.
#[derive(Debug)]
pub struct Paused {
    /// Which plan of this apply (1 for the first).
    pub attempt: u32,
    /// What the provider read and planned from.
    pub read: AnswerSet,
    resume: oneshot::Sender<()>,
}

impl Paused {
    /// Let the provider send its UPDATE.
    pub fn resume(self) {
        let _ = self.resume.send(());
    }
}

/// Steers one name on one authoritative server (see the module docs).
#[derive(Debug)]
pub struct Rfc2136Provider {
    config: Rfc2136Config,
    zone: Name,
    name: Name,
    /// `name` as text: lower case, no trailing dot.
    name_text: String,
    regions: Vec<RegionAnswer>,
    pause_after_read: Option<mpsc::UnboundedSender<Paused>>,
}

impl Rfc2136Provider {
    /// Checks the config: the name lies in the zone, and the regions'
    /// answers can share one name (addresses; a CNAME only when it is the
    /// only answer there can be, see [`check_single_valued`]).
    pub fn new(
        config: Rfc2136Config,
        regions: Vec<RegionAnswer>,
    ) -> Result<Rfc2136Provider, TrafficError> {
        let zone = fqdn(&config.zone, "zone")?;
        let name = fqdn(&config.name, "record name")?;
        if !zone.zone_of(&name) {
            return Err(TrafficError::Config(format!(
                "the steered name {} is not inside the zone {}",
                config.name, config.zone
            )));
        }
        if regions.is_empty() {
            return Err(TrafficError::Config(
                "no region has a DNS answer to steer to".to_string(),
            ));
        }
        check_single_valued(&regions)?;
        if name == zone
            && regions
                .iter()
                .any(|r| matches!(r.answer, Answer::Target(_)))
        {
            return Err(TrafficError::Config(format!(
                "the steered name {} is the zone apex, which holds SOA and NS records, so it \
                 cannot have a CNAME; steer a name below the apex or give addresses",
                config.name
            )));
        }
        if config.attempts == 0 || config.max_plans == 0 {
            return Err(TrafficError::Config(
                "rfc2136 attempts and max_plans must be at least 1".to_string(),
            ));
        }
        config.key.signer()?;
        let name_text = name.to_ascii().trim_end_matches('.').to_string();
        Ok(Rfc2136Provider {
            config,
            zone,
            name,
            name_text,
            regions,
            pause_after_read: None,
        })
    }

    /// A pause point for tests: every time `apply` has read the answer set
    /// and is about to send an UPDATE, it sends a [`Paused`] here and waits
    /// until that is resumed (or dropped). Lets a test change the records in
    /// between, deterministically, without sleeps.
    pub fn pause_after_read(&mut self, pauses: mpsc::UnboundedSender<Paused>) {
        self.pause_after_read = Some(pauses);
    }

    /// The configuration (the key's secret shows as `<redacted>`).
    pub fn config(&self) -> &Rfc2136Config {
        &self.config
    }

    async fn read(&self) -> Result<AnswerSet, TrafficError> {
        let mut set = AnswerSet::new();
        for rtype in OWNED_TYPES {
            let response = self.query(&self.name, rtype).await?;
            set.extend(answers_of(response.answers(), &self.name, rtype));
        }
        Ok(set)
    }

    /// One authoritative query for `name` `rtype` on the server; an answer
    /// other than NOERROR/NXDOMAIN, or one that is not authoritative, is
    /// refused.
    async fn query(&self, name: &Name, rtype: RecordType) -> Result<Message, TrafficError> {
        let shown = name.to_ascii();
        let shown = shown.trim_end_matches('.');
        let mut query = Message::new();
        query
            .set_id(rand::random())
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(false);
        query.add_query(Query::query(name.clone(), rtype));
        let bytes = encode(&query)?;
        let response = self.exchange_retried(&bytes, query.id()).await?;
        let response = Message::from_vec(&response).map_err(|e| TrafficError::Provider {
            provider: PROVIDER,
            detail: format!("unreadable answer from {}: {e}", self.config.server),
        })?;
        match response.response_code() {
            ResponseCode::NoError | ResponseCode::NXDomain => {}
            code => {
                return Err(TrafficError::Refused {
                    provider: PROVIDER,
                    server: self.config.server.to_string(),
                    detail: format!(
                        "a query for {shown} {rtype} was answered {}; `server` must be the \
                         authoritative primary of zone {}",
                        mnemonic(code),
                        self.config.zone
                    ),
                });
            }
        }
        // Safety by what the server says: only an authoritative answer
        // tells what the zone holds.
        if !response.authoritative() {
            return Err(TrafficError::Refused {
                provider: PROVIDER,
                server: self.config.server.to_string(),
                detail: format!(
                    "its answer for {shown} is not authoritative; `server` must be the primary \
                     of zone {}, not a resolver",
                    self.config.zone
                ),
            });
        }
        Ok(response)
    }

    /// Sends one signed UPDATE; `Ok(false)` when its prerequisite failed.
    async fn update(&self, read: &AnswerSet, plan: &[Change]) -> Result<bool, TrafficError> {
        let message = update_message(&self.zone, &self.name, self.config.ttl, read, plan)?;
        self.send_update(message).await
    }

    /// Signs and sends an UPDATE; `Ok(false)` when its prerequisite failed.
    async fn send_update(&self, mut message: Message) -> Result<bool, TrafficError> {
        let signer = self.config.key.signer()?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(0);
        let mut verifier = message
            .finalize(&signer, now)
            .map_err(|e| TrafficError::Provider {
                provider: PROVIDER,
                detail: format!("cannot sign the UPDATE: {e}"),
            })?;
        let bytes = encode(&message)?;
        let response = self.exchange_retried(&bytes, message.id()).await?;
        let parsed = Message::from_vec(&response).map_err(|e| TrafficError::Provider {
            provider: PROVIDER,
            detail: format!(
                "unreadable answer to the UPDATE from {}: {e}",
                self.config.server
            ),
        })?;
        match classify(parsed.response_code(), tsig_error(&response)) {
            UpdateOutcome::Done => {
                // A success must be the server's: its answer is signed with
                // the same key.
                if let Some(verify) = verifier.as_mut() {
                    verify(&response).map_err(|e| TrafficError::Provider {
                        provider: PROVIDER,
                        detail: format!(
                            "the answer to the UPDATE from {} is not signed with key `{}` ({e}); \
                             the change may or may not have been made: run apply again",
                            self.config.server, self.config.key.name
                        ),
                    })?;
                }
                Ok(true)
            }
            UpdateOutcome::PrerequisiteFailed => Ok(false),
            UpdateOutcome::KeyRejected(detail) => Err(TrafficError::Credentials {
                provider: PROVIDER,
                server: self.config.server.to_string(),
                detail: format!(
                    "{detail} for TSIG key `{}` (algorithm hmac-sha256)",
                    self.config.key.name
                ),
            }),
            UpdateOutcome::Refused(detail) => Err(TrafficError::Refused {
                provider: PROVIDER,
                server: self.config.server.to_string(),
                detail: format!(
                    "{detail} (zone {}, name {}, key `{}`)",
                    self.config.zone, self.config.name, self.config.key.name
                ),
            }),
            UpdateOutcome::Failed(detail) => Err(TrafficError::Provider {
                provider: PROVIDER,
                detail: format!("{} answered the UPDATE with {detail}", self.config.server),
            }),
        }
    }

    /// One request/answer over TCP, retried with backoff on transport
    /// failures and SERVFAIL.
    async fn exchange_retried(&self, request: &[u8], id: u16) -> Result<Vec<u8>, TrafficError> {
        let mut delay = self.config.backoff;
        let mut last = String::new();
        for attempt in 1..=self.config.attempts {
            match exchange(self.config.server, request, id, self.config.timeout).await {
                Ok(answer) if rcode_of(&answer) == Some(ResponseCode::ServFail) => {
                    last = "SERVFAIL".to_string();
                }
                Ok(answer) => return Ok(answer),
                Err(e) => last = e.to_string(),
            }
            tracing::debug!(server = %self.config.server, attempt, error = %last, "rfc2136 request failed");
            if attempt < self.config.attempts {
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2);
            }
        }
        Err(TrafficError::Unreachable {
            provider: PROVIDER,
            server: self.config.server.to_string(),
            attempts: self.config.attempts,
            detail: last,
        })
    }
}

#[async_trait]
impl TrafficProvider for Rfc2136Provider {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn record_name(&self) -> &str {
        &self.name_text
    }

    async fn current(&self) -> Result<AnswerSet, TrafficError> {
        self.read().await
    }

    async fn apply(&self, verdicts: &Verdicts, dry_run: bool) -> Result<Applied, TrafficError> {
        let desired = desired_answer_set(&self.regions, verdicts);
        if desired.all_unhealthy {
            tracing::warn!(
                name = %self.config.name,
                "no region is healthy: answering with every region (as Route 53 does)"
            );
        }
        for attempt in 1..=self.config.max_plans {
            let read = self.read().await?;
            let plan = changes(&read, &desired.answers);
            let applied = |written| Applied {
                provider: PROVIDER.to_string(),
                before: read.clone(),
                desired: desired.clone(),
                changes: plan.clone(),
                written,
                attempts: attempt,
            };
            if plan.is_empty() || dry_run {
                return Ok(applied(false));
            }
            if let Some(pauses) = &self.pause_after_read {
                let (resume, resumed) = oneshot::channel();
                let paused = Paused {
                    attempt,
                    read: read.clone(),
                    resume,
                };
                if pauses.send(paused).is_ok() {
                    let _ = resumed.await;
                }
            }
            if self.update(&read, &plan).await? {
                let plan_text: Vec<String> = plan.iter().map(|c| c.to_string()).collect();
                tracing::info!(
                    name = %self.config.name,
                    changes = %plan_text.join(", "),
                    "rfc2136: answer set updated"
                );
                return Ok(applied(true));
            }
            tracing::info!(
                name = %self.config.name,
                attempt,
                "rfc2136: the records changed since they were read (prerequisite failed); \
                 reading again"
            );
        }
        Err(TrafficError::Contended {
            provider: PROVIDER,
            name: self.config.name.clone(),
            attempts: self.config.max_plans,
        })
    }
}

fn fqdn(text: &str, what: &str) -> Result<Name, TrafficError> {
    let mut name = Name::from_ascii(text.trim_end_matches('.'))
        .map_err(|_| TrafficError::Config(format!("the {what} `{text}` is not a DNS name")))?;
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

fn encode(message: &Message) -> Result<Vec<u8>, TrafficError> {
    message.to_vec().map_err(|e| TrafficError::Provider {
        provider: PROVIDER,
        detail: format!("cannot encode a DNS message: {e}"),
    })
}

/// The answers among `records` for `name` and `rtype`.
fn answers_of(records: &[Record], name: &Name, rtype: RecordType) -> Vec<Answer> {
    records
        .iter()
        .filter(|r| r.record_type() == rtype && r.name().to_lowercase() == *name)
        .filter_map(|r| match r.data() {
            RData::A(A(ip)) => Some(Answer::Ipv4(*ip)),
            RData::AAAA(AAAA(ip)) => Some(Answer::Ipv6(*ip)),
            RData::CNAME(CNAME(target)) => {
                let text = target.to_lowercase().to_ascii();
                Some(Answer::Target(text.trim_end_matches('.').to_string()))
            }
            _ => None,
        })
        .collect()
}

fn rdata(answer: &Answer) -> Result<RData, TrafficError> {
    Ok(match answer {
        Answer::Ipv4(ip) => RData::A(A(*ip)),
        Answer::Ipv6(ip) => RData::AAAA(AAAA(*ip)),
        Answer::Target(target) => RData::CNAME(CNAME(fqdn(target, "target name")?)),
    })
}

/// The UPDATE for `plan`, with the prerequisite that the name's A, AAAA and
/// CNAME RRsets are exactly `read` (RFC 2136 §2.4.2 per non-empty type,
/// §2.4.4 "RRset does not exist" per empty one), then the deletions
/// (§2.5.4, class NONE) and additions (§2.5.1, class IN). Unsigned. Fails
/// (rather than leave a record out of the prerequisite) on a target name
/// that is not a DNS name.
fn update_message(
    zone: &Name,
    name: &Name,
    ttl: u32,
    read: &AnswerSet,
    plan: &[Change],
) -> Result<Message, TrafficError> {
    let mut message = Message::new();
    message
        .set_id(rand::random())
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Update)
        .set_recursion_desired(false);
    let mut zone_q = Query::new();
    zone_q
        .set_name(zone.clone())
        .set_query_class(DNSClass::IN)
        .set_query_type(RecordType::SOA);
    message.add_zone(zone_q);

    for rtype in OWNED_TYPES {
        let of_type: Vec<&Answer> = read
            .iter()
            .filter(|a| a.record_type() == rtype.to_string())
            .collect();
        if of_type.is_empty() {
            let mut none = Record::update0(name.clone(), 0, rtype);
            none.set_dns_class(DNSClass::NONE);
            message.add_pre_requisite(none);
        }
        for answer in of_type {
            // Class IN, TTL 0: "RRset exists (value dependent)".
            message.add_pre_requisite(Record::from_rdata(name.clone(), 0, rdata(answer)?));
        }
    }
    for change in plan {
        let (answer, delete) = match change {
            Change::Remove(a) => (a, true),
            Change::Add(a) => (a, false),
        };
        let data = rdata(answer)?;
        if delete {
            let mut record = Record::from_rdata(name.clone(), 0, data);
            record.set_dns_class(DNSClass::NONE);
            message.add_update(record);
        } else {
            message.add_update(Record::from_rdata(name.clone(), ttl, data));
        }
    }
    Ok(message)
}

/// What an UPDATE's answer means.
#[derive(Debug, PartialEq, Eq)]
enum UpdateOutcome {
    Done,
    /// YXRRSET / NXRRSET (and YXDOMAIN / NXDOMAIN): the records are not what
    /// was read; re-read and re-plan.
    PrerequisiteFailed,
    /// The TSIG key, signature or time was not accepted.
    KeyRejected(String),
    /// The server will not let this key change this name.
    Refused(String),
    Failed(String),
}

/// Pure: the answer's RCODE and its TSIG error (if it carried a TSIG RR).
fn classify(code: ResponseCode, tsig_error: Option<u16>) -> UpdateOutcome {
    match code {
        ResponseCode::NoError => UpdateOutcome::Done,
        ResponseCode::YXRRSet
        | ResponseCode::NXRRSet
        | ResponseCode::YXDomain
        | ResponseCode::NXDomain => UpdateOutcome::PrerequisiteFailed,
        ResponseCode::NotAuth | ResponseCode::Refused if tsig_error.is_some_and(|e| e != 0) => {
            let name = match tsig_error.unwrap_or(0) {
                16 => "BADSIG (the secret differs)".to_string(),
                17 => "BADKEY (the server has no key by this name and algorithm)".to_string(),
                18 => "BADTIME (this host's clock and the server's differ by more than 300 s)"
                    .to_string(),
                22 => "BADTRUNC".to_string(),
                other => format!("TSIG error {other}"),
            };
            UpdateOutcome::KeyRejected(format!("{}, TSIG error {name}", mnemonic(code)))
        }
        ResponseCode::NotAuth => UpdateOutcome::Refused(
            "NOTAUTH: the server is not authoritative for the zone, or did not accept the TSIG \
             key; check that `server` is the zone's primary and the key name, secret and \
             algorithm"
                .to_string(),
        ),
        ResponseCode::Refused => UpdateOutcome::Refused(
            "REFUSED: no `allow-update` or `update-policy` in the server's zone grants this key \
             the name"
                .to_string(),
        ),
        ResponseCode::NotZone => UpdateOutcome::Refused(
            "NOTZONE: the name is not inside the zone the server has".to_string(),
        ),
        other => UpdateOutcome::Failed(mnemonic(other)),
    }
}

/// The RFC's upper-case name of an RCODE (`NOTAUTH`), as `dig` shows it.
fn mnemonic(code: ResponseCode) -> String {
    use ResponseCode as R;
    let name = match code {
        R::NoError => "NOERROR",
        R::FormErr => "FORMERR",
        R::ServFail => "SERVFAIL",
        R::NXDomain => "NXDOMAIN",
        R::NotImp => "NOTIMP",
        R::Refused => "REFUSED",
        R::YXDomain => "YXDOMAIN",
        R::YXRRSet => "YXRRSET",
        R::NXRRSet => "NXRRSET",
        R::NotAuth => "NOTAUTH",
        R::NotZone => "NOTZONE",
        other => return format!("RCODE {}", u16::from(other)),
    };
    name.to_string()
}

fn rcode_of(answer: &[u8]) -> Option<ResponseCode> {
    Message::from_vec(answer).ok().map(|m| m.response_code())
}

/// The error field of the TSIG RR that ends a DNS message, if the message
/// has one. hickory 0.25 parses the TSIG RR but keeps its error field
/// private, so it is read from the wire: the RR is the last one (RFC 8945
/// §5.1) and its RDATA ends `... Error(2) Other Len(2) Other Data`, where
/// Other Data is empty or, with BADTIME, the server's 6-byte time.
fn tsig_error(answer: &[u8]) -> Option<u16> {
    let message = Message::from_vec(answer).ok()?;
    message
        .signature()
        .iter()
        .find(|r| r.record_type() == RecordType::TSIG)?;
    let u16_at = |end: usize| -> Option<u16> {
        let start = end.checked_sub(2)?;
        Some(u16::from_be_bytes([
            *answer.get(start)?,
            *answer.get(start + 1)?,
        ]))
    };
    for other_len in [0usize, 6] {
        let len_end = answer.len().checked_sub(other_len)?;
        if u16_at(len_end)? as usize == other_len {
            return u16_at(len_end - 2);
        }
    }
    None
}

/// One DNS message over TCP (RFC 1035 §4.2.2: two-byte length prefix).
async fn exchange(
    server: SocketAddr,
    request: &[u8],
    id: u16,
    timeout: Duration,
) -> std::io::Result<Vec<u8>> {
    let io = async {
        let mut stream = TcpStream::connect(server).await?;
        let len = u16::try_from(request.len())
            .map_err(|_| std::io::Error::other("DNS message longer than 65535 bytes"))?;
        let mut framed = Vec::with_capacity(request.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(request);
        stream.write_all(&framed).await?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut answer = vec![0u8; u16::from_be_bytes(len) as usize];
        stream.read_exact(&mut answer).await?;
        if answer.len() < 2 || u16::from_be_bytes([answer[0], answer[1]]) != id {
            return Err(std::io::Error::other("answer with a different message id"));
        }
        Ok(answer)
    };
    tokio::time::timeout(timeout, io)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::dnssec::rdata::tsig::{TSIG, make_tsig_record};

    fn name(s: &str) -> Name {
        fqdn(s, "name").unwrap()
    }

    fn set(list: &[&str]) -> AnswerSet {
        list.iter().map(|a| Answer::parse(a).unwrap()).collect()
    }

    #[test]
    fn key_debug_and_errors_never_show_the_secret() {
        let secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==";
        let key = TsigKey::from_base64("lifeboat-key", secret).unwrap();
        let debug = format!("{key:?}");
        assert!(
            !debug.contains(secret) && !debug.contains("secret-secret"),
            "{debug}"
        );
        assert!(debug.contains("<redacted>"));
        let err = TsigKey::from_base64("k", "not base64 !!")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tsig-keygen") && !err.contains("not base64 !!"),
            "{err}"
        );
        assert!(TsigKey::from_base64("k", "").is_err());
    }

    #[test]
    fn classify_table() {
        use ResponseCode as R;
        let table: &[(ResponseCode, Option<u16>, &str)] = &[
            (R::NoError, None, "done"),
            (R::NoError, Some(0), "done"),
            (R::YXRRSet, Some(0), "retry"),
            (R::NXRRSet, Some(0), "retry"),
            (R::NotAuth, Some(16), "key:BADSIG"),
            (R::NotAuth, Some(17), "key:BADKEY"),
            (R::NotAuth, Some(18), "key:BADTIME"),
            (R::NotAuth, None, "refused:NOTAUTH"),
            (R::NotAuth, Some(0), "refused:NOTAUTH"),
            (R::Refused, None, "refused:allow-update"),
            (R::Refused, Some(17), "key:BADKEY"),
            (R::NotZone, None, "refused:NOTZONE"),
            (R::FormErr, None, "failed"),
        ];
        for (code, tsig, want) in table {
            let got = classify(*code, *tsig);
            let ok = match (want.split_once(':'), &got) {
                (None, UpdateOutcome::Done) => *want == "done",
                (None, UpdateOutcome::PrerequisiteFailed) => *want == "retry",
                (None, UpdateOutcome::Failed(_)) => *want == "failed",
                (Some(("key", s)), UpdateOutcome::KeyRejected(d)) => d.contains(s),
                (Some(("refused", s)), UpdateOutcome::Refused(d)) => d.contains(s),
                _ => false,
            };
            assert!(ok, "{code:?} {tsig:?}: {got:?}, want {want}");
        }
    }

    fn with_tsig(error: u16, other: Vec<u8>) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(7)
            .set_message_type(MessageType::Response)
            .set_op_code(OpCode::Update)
            .set_response_code(ResponseCode::NotAuth);
        let tsig = TSIG::new(
            TsigAlgorithm::HmacSha256,
            1,
            300,
            Vec::new(),
            7,
            error,
            other,
        );
        m.add_tsig(make_tsig_record(name("lifeboat-key"), tsig));
        m.to_vec().unwrap()
    }

    #[test]
    fn tsig_error_from_the_wire() {
        assert_eq!(tsig_error(&with_tsig(16, Vec::new())), Some(16));
        assert_eq!(tsig_error(&with_tsig(17, Vec::new())), Some(17));
        assert_eq!(tsig_error(&with_tsig(18, vec![0, 0, 0, 0, 1, 2])), Some(18));
        let mut plain = Message::new();
        plain.set_id(7).set_response_code(ResponseCode::NotAuth);
        assert_eq!(tsig_error(&plain.to_vec().unwrap()), None);
        assert_eq!(tsig_error(&[1, 2, 3]), None);
    }

    /// (class, type, rdata or "") of each record.
    fn rows(records: &[Record]) -> Vec<(String, String, String)> {
        records
            .iter()
            .map(|r| {
                let data = match r.data() {
                    RData::Update0(_) => String::new(),
                    d => d.to_string(),
                };
                (r.dns_class().to_string(), r.record_type().to_string(), data)
            })
            .collect()
    }

    #[test]
    fn update_message_table() {
        let zone = name("kubernaut.test");
        let app = name("app.kubernaut.test");
        let row = |c: &str, t: &str, d: &str| (c.to_string(), t.to_string(), d.to_string());
        // (read, plan from read to desired, prerequisites, updates)
        type Rows = Vec<(String, String, String)>;
        let table: Vec<(&[&str], &[&str], Rows, Rows)> = vec![
            (
                &[],
                &["192.0.2.1", "198.51.100.1"],
                vec![
                    row("NONE", "A", ""),
                    row("NONE", "AAAA", ""),
                    row("NONE", "CNAME", ""),
                ],
                vec![row("IN", "A", "192.0.2.1"), row("IN", "A", "198.51.100.1")],
            ),
            (
                &["192.0.2.1", "198.51.100.1"],
                &["198.51.100.1"],
                vec![
                    row("IN", "A", "192.0.2.1"),
                    row("IN", "A", "198.51.100.1"),
                    row("NONE", "AAAA", ""),
                    row("NONE", "CNAME", ""),
                ],
                vec![row("NONE", "A", "192.0.2.1")],
            ),
            (
                &["192.0.2.1", "2001:db8::1"],
                &["192.0.2.1"],
                vec![
                    row("IN", "A", "192.0.2.1"),
                    row("IN", "AAAA", "2001:db8::1"),
                    row("NONE", "CNAME", ""),
                ],
                vec![row("NONE", "AAAA", "2001:db8::1")],
            ),
        ];
        for (read, desired, pre, upd) in table {
            let read = set(read);
            let plan = changes(&read, &set(desired));
            let m = update_message(&zone, &app, 60, &read, &plan).unwrap();
            assert_eq!(m.op_code(), OpCode::Update);
            assert_eq!(m.queries().len(), 1);
            assert_eq!(m.queries()[0].name(), &zone);
            assert_eq!(m.queries()[0].query_type(), RecordType::SOA);
            assert_eq!(rows(m.answers()), pre, "prerequisites for {read:?}");
            assert_eq!(rows(m.name_servers()), upd, "updates for {read:?}");
            assert!(m.answers().iter().all(|r| r.ttl() == 0 && r.name() == &app));
            for r in m.name_servers() {
                let ttl = if r.dns_class() == DNSClass::NONE {
                    0
                } else {
                    60
                };
                assert_eq!(r.ttl(), ttl);
            }
        }
    }

    #[test]
    fn answers_of_keeps_the_name_and_type() {
        let app = name("app.kubernaut.test");
        let other = name("other.kubernaut.test");
        let records = vec![
            Record::from_rdata(app.clone(), 60, RData::A(A("192.0.2.1".parse().unwrap()))),
            Record::from_rdata(other, 60, RData::A(A("192.0.2.9".parse().unwrap()))),
            Record::from_rdata(
                name("APP.kubernaut.test"),
                60,
                RData::CNAME(CNAME(name("LB.Example.com"))),
            ),
        ];
        assert_eq!(
            answers_of(&records, &app, RecordType::A),
            vec![Answer::parse("192.0.2.1").unwrap()]
        );
        assert_eq!(
            answers_of(&records, &app, RecordType::CNAME),
            vec![Answer::Target("lb.example.com".into())]
        );
    }

    #[test]
    fn provider_config_checks() {
        let key = TsigKey::from_base64("k", "c2VjcmV0").unwrap();
        let server: SocketAddr = "127.0.0.1:53".parse().unwrap();
        let two = vec![
            RegionAnswer {
                region: "a".into(),
                answer: Answer::parse("192.0.2.1").unwrap(),
            },
            RegionAnswer {
                region: "b".into(),
                answer: Answer::parse("lb.example.com").unwrap(),
            },
        ];
        let ok = Rfc2136Config::new(server, "kubernaut.test", "app.kubernaut.test", key.clone());
        assert!(Rfc2136Provider::new(ok.clone(), two[..1].to_vec()).is_ok());
        assert!(Rfc2136Provider::new(ok.clone(), two.clone()).is_err());
        assert!(Rfc2136Provider::new(ok, Vec::new()).is_err());
        let apex = Rfc2136Config::new(server, "kubernaut.test", "kubernaut.test.", key.clone());
        let err = Rfc2136Provider::new(apex.clone(), two[1..].to_vec()).unwrap_err();
        assert!(err.to_string().contains("apex"), "{err}");
        let at_apex = Rfc2136Provider::new(apex, two[..1].to_vec()).unwrap();
        assert_eq!(at_apex.record_name(), "kubernaut.test");
        let outside = Rfc2136Config::new(server, "kubernaut.test", "app.example.com", key);
        let err = Rfc2136Provider::new(outside, two[..1].to_vec())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not inside the zone"), "{err}");
    }
}
