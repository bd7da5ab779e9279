//! Opening, creating and reading a repository: the marker, key slots, the
//! encrypted config, snapshots and the index.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::crypto::{MasterKey, random_array};
use crate::error::{BadInput, Fault, Missing, RepoError, Result};
use crate::format::{self, *};
use crate::index::{IndexDoc, MasterIndex};
use crate::keys::{KeySlot, Secret, SlotKind};
use crate::snapshot::{Snapshot, SnapshotRef};
use crate::storage::{Storage, StorageErrorKind};

/// How many documents are fetched at once when listing.
const DOC_CONCURRENCY: usize = 16;

/// The plaintext marker at the repository root.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Marker {
    pub format: String,
    pub version: u64,
    pub id: String,
}

/// Content-defined chunking parameters (bytes).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

impl Default for ChunkerParams {
    /// Chosen from measurements in `docs/benchmarks.md` (throughput vs dedup).
    fn default() -> Self {
        Self {
            min_size: 16 * 1024,
            avg_size: 64 * 1024,
            max_size: 512 * 1024,
        }
    }
}

impl ChunkerParams {
    pub fn validate(&self) -> Result<()> {
        let ok = self.min_size >= 64
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size
            && self.avg_size >= 256
            && self.avg_size <= 4 * 1024 * 1024
            && self.max_size <= 16 * 1024 * 1024
            && self.min_size.is_multiple_of(2)
            && self.avg_size.is_multiple_of(2)
            && self.max_size.is_multiple_of(2);
        if ok {
            Ok(())
        } else {
            Err(RepoError::invalid(
                BadInput::Parameter,
                format!(
                    "chunker sizes {self:?} are invalid: need even sizes with 64 ≤ min ≤ avg ≤ max, 256 ≤ avg ≤ 4 MiB, max ≤ 16 MiB"
                ),
            ))
        }
    }
}

/// Repository parameters, stored encrypted at `config`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    pub version: u64,
    /// Must equal the marker's id (detects a swapped marker).
    pub id: String,
    pub created: DateTime<Utc>,
    pub chunker: ChunkerParams,
    /// Target pack size in bytes.
    pub pack_size: u64,
    /// zstd level for blobs (0 = no compression).
    pub zstd_level: i32,
}

/// What `init` may choose.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub chunker: ChunkerParams,
    pub pack_size: u64,
    pub zstd_level: i32,
    pub key_label: Option<String>,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            chunker: ChunkerParams::default(),
            pack_size: 16 * 1024 * 1024,
            // Level 1 over level 3: on chunk-sized blobs of dump data it
            // compresses as well or better and takes ~40 % less CPU
            // (docs/benchmarks.md, "Compression level").
            zstd_level: 1,
            key_label: None,
        }
    }
}

/// An open repository.
#[derive(Debug, Clone)]
pub struct Repository {
    storage: Arc<dyn Storage>,
    key: MasterKey,
    config: RepoConfig,
    /// The key slot that opened it.
    slot_id: String,
    /// How locks are taken, kept and waited for.
    lock_options: crate::lock_options::LockOptions,
    /// Append-only mode: the storage is wrapped in
    /// [`AppendOnly`](crate::storage::append_only::AppendOnly) and commands
    /// that delete refuse (see `docs/append-only.md`).
    append_only: bool,
    /// S3 Object Lock retention set on what each new snapshot needs.
    object_lock: Option<crate::storage::object_lock::ObjectLock>,
    /// The configuration file's text, stored as the item
    /// [`CONFIG_ITEM`](crate::snapshot::CONFIG_ITEM) of every snapshot a
    /// backup commits (`docs/regions/copy.md`).
    stored_config: Option<Arc<str>>,
}

/// A key slot as listed by `key list`.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub kind: String,
    pub label: Option<String>,
    pub created: DateTime<Utc>,
    pub hostname: String,
    pub username: String,
    /// Whether this is the slot the repository was opened with.
    pub current: bool,
}

impl Repository {
    /// Creates a new repository. Refuses a location that already holds anything.
    pub async fn init(
        storage: Arc<dyn Storage>,
        secret: &Secret,
        opts: InitOptions,
    ) -> Result<Self> {
        let key = MasterKey::generate()?;
        Self::init_with_key(storage, secret, opts, key).await
    }

    /// Creates a new repository whose blob ids and chunk boundaries are
    /// those of `source` (its id key and chunker parameters; `opts.chunker`
    /// is not used), with an encryption key of its own: the target of
    /// `lifeboat copy` that only receives the blobs it lacks
    /// (`init --copy-params-from`, like restic's `--copy-chunker-params`).
    pub async fn init_with_params_of(
        storage: Arc<dyn Storage>,
        secret: &Secret,
        mut opts: InitOptions,
        source: &Repository,
    ) -> Result<Self> {
        opts.chunker = source.config.chunker;
        let key = MasterKey::with_ids_of(&source.key)?;
        Self::init_with_key(storage, secret, opts, key).await
    }

    async fn init_with_key(
        storage: Arc<dyn Storage>,
        secret: &Secret,
        opts: InitOptions,
        key: MasterKey,
    ) -> Result<Self> {
        opts.chunker.validate()?;
        if opts.pack_size < 1024 * 1024 || opts.pack_size > 1024 * 1024 * 1024 {
            return Err(RepoError::invalid(
                BadInput::Parameter,
                "pack size must be between 1 MiB and 1 GiB",
            ));
        }
        if !(0..=19).contains(&opts.zstd_level) {
            return Err(RepoError::invalid(
                BadInput::Parameter,
                "zstd level must be 0..=19",
            ));
        }
        let existing = storage.list("").await?;
        if existing.iter().any(|o| o.key == MARKER_KEY) {
            return Err(RepoError::invalid(
                BadInput::Location,
                format!(
                    "{} already holds a Lifeboat repository; refusing to overwrite it",
                    storage.location()
                ),
            ));
        }
        if !existing.is_empty() {
            return Err(RepoError::invalid(
                BadInput::Location,
                format!(
                    "{} is not empty ({} objects, e.g. {}); a new repository needs an empty location",
                    storage.location(),
                    existing.len(),
                    existing[0].key
                ),
            ));
        }
        let id = hex::encode(random_array::<16>()?);
        let config = RepoConfig {
            version: DOC_VERSION,
            id: id.clone(),
            created: Utc::now(),
            chunker: opts.chunker,
            pack_size: opts.pack_size,
            zstd_level: opts.zstd_level,
        };
        storage
            .put(CONFIG_KEY, Bytes::from(seal_doc(&key, "config", &config)?))
            .await?;
        let slot = KeySlot::create_blocking(&key, secret, opts.key_label).await?;
        let slot_id = hex::encode(random_array::<16>()?);
        put_slot(storage.as_ref(), &slot_id, &slot).await?;
        let marker = Marker {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            id,
        };
        let json = serde_json::to_vec_pretty(&marker)
            .map_err(|e| RepoError::internal(Fault::Encoding, e.to_string()))?;
        // The marker goes last: a location with a marker is a whole repository.
        storage.put(MARKER_KEY, Bytes::from(json)).await?;
        Ok(Self {
            storage,
            key,
            config,
            slot_id,
            lock_options: Default::default(),
            append_only: false,
            object_lock: None,
            stored_config: None,
        })
    }

    /// Reads and validates the marker, telling a missing location, a foreign
    /// one and a newer format apart.
    pub async fn read_marker(storage: &dyn Storage) -> Result<Marker> {
        let location = storage.location();
        let bytes = match storage.get(MARKER_KEY).await {
            Ok(b) => b,
            Err(e) if e.kind == StorageErrorKind::NotFound => {
                let listing = storage.list("").await;
                return Err(match listing {
                    Ok(objs) if !objs.is_empty() => RepoError::NotARepository {
                        location,
                        detail: format!(
                            "not a Lifeboat repository: it holds {} objects (e.g. {}) but no {MARKER_KEY} marker. Check the --repo URL; `lifeboat init` creates a repository in an empty location",
                            objs.len(),
                            objs[0].key
                        ),
                    },
                    Ok(_) => RepoError::NotARepository {
                        location,
                        detail: "no repository here (the location is empty or does not exist). Check the --repo URL, or create one with `lifeboat init`".into(),
                    },
                    Err(e) if e.kind == StorageErrorKind::NotFound => RepoError::NotARepository {
                        location,
                        detail: "no repository here (the location does not exist). Check the --repo URL, or create one with `lifeboat init`".into(),
                    },
                    Err(e) => RepoError::Storage(e),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| RepoError::NotARepository {
                location: location.clone(),
                detail: format!("{MARKER_KEY} is not a Lifeboat marker ({e})"),
            })?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT_NAME) {
            return Err(RepoError::NotARepository {
                location,
                detail: format!("{MARKER_KEY} does not name the format {FORMAT_NAME}"),
            });
        }
        let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
        if version > FORMAT_VERSION {
            return Err(RepoError::NewerFormat {
                what: format!("repository {location}"),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if version == 0 {
            return Err(RepoError::corrupt(MARKER_KEY, "missing or invalid version"));
        }
        serde_json::from_value(value).map_err(|e| RepoError::corrupt(MARKER_KEY, e))
    }

    /// Opens an existing repository with `secret`.
    pub async fn open(storage: Arc<dyn Storage>, secret: &Secret) -> Result<Self> {
        let marker = Self::read_marker(storage.as_ref()).await?;
        let slots = list_slots(storage.as_ref()).await?;
        if slots.is_empty() {
            let unreadable = unreadable_slots(storage.as_ref(), &slots).await;
            if unreadable.is_empty() {
                return Err(RepoError::corrupt(
                    KEYS_PREFIX,
                    "the repository has no key slots; it cannot be opened",
                ));
            }
            return Err(RepoError::corrupt(
                unreadable.join(", "),
                "no readable key slot is left (these could not be parsed); restore keys/ from a copy of the repository",
            ));
        }
        let candidates: Vec<&(String, KeySlot)> =
            slots.iter().filter(|(_, s)| s.may_match(secret)).collect();
        let mut opened = None;
        // A damaged slot must not hide a good one: note it and try the rest.
        let mut damaged: Vec<(String, RepoError)> = Vec::new();
        for (id, slot) in &candidates {
            match slot.unwrap_blocking(secret).await {
                Ok(Some(k)) => {
                    opened = Some((id.clone(), k));
                    break;
                }
                Ok(None) => {}
                Err(e @ RepoError::Corrupt { .. }) => damaged.push((id.clone(), e)),
                Err(e) => return Err(e),
            }
        }
        if opened.is_none() && !damaged.is_empty() {
            let list: Vec<String> = damaged
                .iter()
                .map(|(id, e)| format!("{KEYS_PREFIX}{id} ({e})"))
                .collect();
            return Err(RepoError::corrupt(
                format!("{KEYS_PREFIX}{}", damaged[0].0),
                format!(
                    "no key slot opens with this secret and these slots are damaged: {}; open the repository with another key and remove them with `lifeboat key remove`",
                    list.join(", ")
                ),
            ));
        }
        if let Some((id, e)) = damaged.first() {
            tracing::warn!("key slot {KEYS_PREFIX}{id} is damaged: {e}; run `lifeboat check`");
        }
        let Some((slot_id, key)) = opened else {
            let unreadable = unreadable_slots(storage.as_ref(), &slots).await;
            let mut msg = wrong_secret_message(secret, &slots, &candidates);
            if !unreadable.is_empty() {
                msg.push_str(&format!(
                    ". Damaged key slots that could not be read: {}",
                    unreadable.join(", ")
                ));
            }
            return Err(RepoError::WrongKey(msg));
        };
        let sealed = storage.get(CONFIG_KEY).await?;
        let config: RepoConfig = open_doc(&key, "config", CONFIG_KEY, &sealed)?;
        // `init` checked them; a config that says otherwise was not written
        // by Lifeboat, and the chunker must not run on it.
        config
            .chunker
            .validate()
            .map_err(|e| RepoError::corrupt(CONFIG_KEY, e.to_string()))?;
        if config.id != marker.id {
            return Err(RepoError::corrupt(
                MARKER_KEY,
                "the marker's repository id differs from the encrypted config's",
            ));
        }
        Ok(Self {
            storage,
            key,
            config,
            slot_id,
            lock_options: Default::default(),
            append_only: false,
            object_lock: None,
            stored_config: None,
        })
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub fn key(&self) -> &MasterKey {
        &self.key
    }

    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    pub fn location(&self) -> String {
        self.storage.location()
    }

    /// How locks are taken, kept and waited for (see `lock`).
    pub fn lock_options(&self) -> crate::lock_options::LockOptions {
        self.lock_options
    }

    /// The same repository with other lock options (`--retry-lock`, tests).
    pub fn with_lock_options(mut self, opts: crate::lock_options::LockOptions) -> Self {
        self.lock_options = opts;
        self
    }

    /// The same repository in append-only mode (or not): with `on`, its
    /// storage refuses deletes and overwrites outside `locks/` and `serve/`
    /// ([`AppendOnly`](crate::storage::append_only::AppendOnly)), and
    /// prune, forget and repair refuse at once with
    /// [`RepoError::AppendOnly`].
    pub fn with_append_only(mut self, on: bool) -> Self {
        if on && !self.append_only {
            self.storage = crate::storage::append_only::AppendOnly::wrap(self.storage);
        }
        self.append_only = on || self.append_only;
        self
    }

    pub fn append_only(&self) -> bool {
        self.append_only
    }

    /// Fails with [`RepoError::AppendOnly`] in append-only mode: for
    /// commands that delete (`what`: "prune", "forget", …).
    pub fn ensure_may_delete(&self, what: &str) -> Result<()> {
        if self.append_only {
            return Err(RepoError::AppendOnly(what.to_string()));
        }
        Ok(())
    }

    /// The same repository setting S3 Object Lock retention on what every
    /// new snapshot needs (see [`crate::retain`]).
    pub fn with_object_lock(
        mut self,
        lock: Option<crate::storage::object_lock::ObjectLock>,
    ) -> Self {
        self.object_lock = lock;
        self
    }

    pub fn object_lock(&self) -> Option<&crate::storage::object_lock::ObjectLock> {
        self.object_lock.as_ref()
    }

    /// The same repository storing `text` (the configuration file) with
    /// every snapshot a backup commits, as the item
    /// [`CONFIG_ITEM`](crate::snapshot::CONFIG_ITEM).
    pub fn with_stored_config(mut self, text: Option<String>) -> Self {
        self.stored_config = text.map(Arc::from);
        self
    }

    pub fn stored_config(&self) -> Option<&str> {
        self.stored_config.as_deref()
    }

    /// The same repository cutting streams with `chunker` in the backups
    /// made through it (physical snapshots' fixed-size blocks,
    /// [`crate::physical::block_chunker`]); the stored `config` is unchanged.
    pub fn with_chunker(mut self, chunker: ChunkerParams) -> Self {
        self.config.chunker = chunker;
        self
    }

    /// Whether `other` makes the same blob ids and chunk boundaries (same id
    /// key and chunker parameters): a copy between the two sends blobs as
    /// they are, else it re-chunks (`docs/regions/copy.md`).
    pub fn shares_params_with(&self, other: &Repository) -> bool {
        self.key.shares_ids_with(&other.key) && self.config.chunker == other.config.chunker
    }

    /// Seals and stores a content-addressed document; returns its id.
    pub async fn put_doc<T: Serialize>(&self, prefix: &str, kind: &str, doc: &T) -> Result<String> {
        Ok(self.put_doc_sized(prefix, kind, doc).await?.0)
    }

    /// [`Repository::put_doc`], also returning the stored size in bytes.
    pub async fn put_doc_sized<T: Serialize>(
        &self,
        prefix: &str,
        kind: &str,
        doc: &T,
    ) -> Result<(String, u64)> {
        let bytes = seal_doc(&self.key, kind, doc)?;
        let id = storage_id(&bytes);
        let len = bytes.len() as u64;
        self.storage
            .put(&format!("{prefix}{id}"), Bytes::from(bytes))
            .await?;
        Ok((id, len))
    }

    /// Fetches, verifies and opens a content-addressed document.
    pub async fn get_doc<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        kind: &str,
    ) -> Result<T> {
        let bytes = self.storage.get(key).await?;
        verify_storage_id(key, &bytes)?;
        open_doc(&self.key, kind, key, &bytes)
    }

    /// All snapshots, oldest first. Unreadable snapshots are errors; one
    /// removed between the listing and its read (a concurrent `forget`) is
    /// left out.
    pub async fn snapshots(&self) -> Result<Vec<SnapshotRef>> {
        let objs = self.storage.list(SNAPSHOTS_PREFIX).await?;
        let found: Vec<Option<SnapshotRef>> =
            futures::stream::iter(objs.into_iter().map(|o| async move {
                let snapshot: Snapshot = match self.get_doc(&o.key, "snapshot").await {
                    Ok(s) => s,
                    Err(RepoError::Storage(e)) if e.is_not_found() => return Ok(None),
                    Err(e) => return Err(e),
                };
                Ok::<_, RepoError>(Some(SnapshotRef {
                    id: id_of_key(&o.key).to_string(),
                    snapshot,
                }))
            }))
            .buffer_unordered(DOC_CONCURRENCY)
            .try_collect()
            .await?;
        let mut out: Vec<SnapshotRef> = found.into_iter().flatten().collect();
        out.sort_by(|a, b| a.snapshot.time.cmp(&b.snapshot.time).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Finds a snapshot by `latest` (the newest full snapshot, see
    /// [`crate::snapshot::Scope`]), full id or unique id prefix, optionally
    /// restricted to one source.
    pub async fn find_snapshot(&self, spec: &str, source: Option<&str>) -> Result<SnapshotRef> {
        self.find_snapshot_of(spec, source, None).await
    }

    /// [`Self::find_snapshot`], where `latest` is the newest full snapshot
    /// of `kind` when one is given: a source backed up both logically and
    /// physically (`backup postgres` and `backup physical`) has a newest
    /// snapshot of each, and `restore postgres latest` means the logical
    /// one. An id is found whatever its kind (the caller refuses a wrong
    /// one by name).
    pub async fn find_snapshot_of(
        &self,
        spec: &str,
        source: Option<&str>,
        kind: Option<&str>,
    ) -> Result<SnapshotRef> {
        let all = self.snapshots().await?;
        let latest = spec == "latest";
        let mut matching: Vec<SnapshotRef> = all
            .into_iter()
            .filter(|s| source.is_none_or(|src| s.snapshot.source == src))
            .filter(|s| !latest || kind.is_none_or(|k| s.snapshot.kind == k))
            .collect();
        let scope = source
            .map(|s| format!(" of source {s}"))
            .unwrap_or_default();
        // "no snapshots of source db (kind postgres)"
        let what = kind
            .filter(|_| latest)
            .map(|k| format!(" (kind {k})"))
            .unwrap_or_default();
        if spec == "latest" {
            // `latest` is the newest *full* snapshot: a partial one (some
            // tables, schema only, a narrower selection) never stands for its
            // source; it is restored by id.
            let newest = matching
                .last()
                .map(|s| (s.short_id().to_string(), s.snapshot.scope()));
            return match matching.iter().rposition(|s| s.snapshot.scope().is_full()) {
                Some(i) => Ok(matching.swap_remove(i)),
                None => Err(match newest {
                    None => RepoError::not_found(
                        Missing::Snapshot,
                        format!("no snapshots{scope}{what} in {}", self.location()),
                    ),
                    Some((id, part)) => RepoError::not_found(
                        Missing::Snapshot,
                        format!(
                            "no full snapshot{scope}{what} in {}: `latest` means the newest full one, and \
                             every snapshot here holds part of its source (the newest, {id}: {part}); \
                             give a snapshot's id to use a partial one (see `lifeboat snapshots`)",
                            self.location()
                        ),
                    ),
                }),
            };
        }
        if spec.len() < 4 || !spec.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(RepoError::invalid(
                BadInput::SnapshotId,
                format!(
                    "{spec:?} is not a snapshot id: give `latest` or at least 4 hex digits of an id (see `lifeboat snapshots`)"
                ),
            ));
        }
        matching.retain(|s| s.id.starts_with(&spec.to_ascii_lowercase()));
        match matching.len() {
            0 => Err(RepoError::not_found(
                Missing::Snapshot,
                format!("no snapshot{scope} with id {spec}"),
            )),
            1 => Ok(matching.remove(0)),
            n => {
                // The candidates, so that the user can pick one at once.
                const SHOWN: usize = 10;
                let mut list: Vec<String> = matching
                    .iter()
                    .take(SHOWN)
                    .map(|s| {
                        format!(
                            "{} {} {}",
                            s.id,
                            s.snapshot.time.format("%Y-%m-%d %H:%M:%S UTC"),
                            s.snapshot.source
                        )
                    })
                    .collect();
                if n > SHOWN {
                    list.push(format!("… and {} more", n - SHOWN));
                }
                Err(RepoError::invalid(
                    BadInput::SnapshotId,
                    format!(
                        "snapshot id {spec} is ambiguous ({n} snapshots match); give more digits. Candidates:\n  {}",
                        list.join("\n  ")
                    ),
                ))
            }
        }
    }

    /// Every index document with its key. One removed by a concurrent prune
    /// between listing and reading is skipped: the consolidated document that
    /// replaced it lists its surviving packs.
    pub async fn load_index_docs(&self) -> Result<Vec<(String, IndexDoc)>> {
        let objs = self.storage.list(INDEX_PREFIX).await?;
        let mut docs: Vec<(String, IndexDoc)> =
            futures::stream::iter(objs.into_iter().map(|o| async move {
                match self.get_doc::<IndexDoc>(&o.key, "index").await {
                    Ok(d) => Ok(Some((o.key, d))),
                    Err(RepoError::Storage(e)) if e.is_not_found() => Ok(None),
                    Err(e) => Err(e),
                }
            }))
            .buffer_unordered(DOC_CONCURRENCY)
            .try_filter_map(|x| async move { Ok(x) })
            .try_collect()
            .await?;
        docs.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(docs)
    }

    /// All index documents merged into one lookup table.
    pub async fn load_index(&self) -> Result<MasterIndex> {
        let mut idx = MasterIndex::default();
        for (k, d) in &self.load_index_docs().await? {
            idx.add_doc(k, d)?;
        }
        Ok(idx)
    }

    /// Packs condemned by earlier prunes (see `prune`), which backups must
    /// not deduplicate against.
    pub async fn condemned_packs(&self) -> Result<HashSet<String>> {
        crate::condemned::packs(self.storage.as_ref(), &self.key).await
    }

    // ----- key slots -----

    /// The id of the key slot that opened this repository (the key in use).
    pub fn key_id(&self) -> &str {
        &self.slot_id
    }

    pub async fn add_key(&self, secret: &Secret, label: Option<String>) -> Result<String> {
        let slot = KeySlot::create_blocking(&self.key, secret, label).await?;
        let id = hex::encode(random_array::<16>()?);
        put_slot(self.storage.as_ref(), &id, &slot).await?;
        Ok(id)
    }

    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let slots = list_slots(self.storage.as_ref()).await?;
        Ok(slots
            .into_iter()
            .map(|(id, s)| KeyInfo {
                current: id == self.slot_id,
                id,
                kind: s.kind.to_string(),
                label: s.label,
                created: s.created,
                hostname: s.hostname,
                username: s.username,
            })
            .collect())
    }

    /// Removes a key slot by id or unique prefix. Refuses the last one, and
    /// the one that opened this repository unless `allow_in_use` (whoever
    /// runs the command would lock themselves out if it is their only key).
    pub async fn remove_key(&self, spec: &str, allow_in_use: bool) -> Result<String> {
        self.ensure_may_delete("key remove")?;
        let slots = list_slots(self.storage.as_ref()).await?;
        let matching: Vec<&String> = slots
            .iter()
            .map(|(id, _)| id)
            .filter(|id| id.starts_with(spec))
            .collect();
        let id = match matching.as_slice() {
            [] => {
                return Err(RepoError::not_found(
                    Missing::KeySlot,
                    format!("no key slot with id {spec} (see `lifeboat key list`)"),
                ));
            }
            [one] => (*one).clone(),
            _ => {
                return Err(RepoError::invalid(
                    BadInput::KeyId,
                    format!("key id {spec} is ambiguous; give more digits"),
                ));
            }
        };
        if slots.len() == 1 {
            return Err(RepoError::invalid(
                BadInput::KeyRemoval,
                "refusing to remove the last key: the repository could never be opened again. Add another key first (`lifeboat key add`)",
            ));
        }
        if id == self.slot_id && !allow_in_use {
            return Err(RepoError::invalid(
                BadInput::KeyRemoval,
                format!(
                    "key {id} is the key in use: it opened the repository for this command. Removing it locks out whoever holds only this secret; open with another key to remove it, or pass --force if you hold another key"
                ),
            ));
        }
        self.storage.delete(&format!("{KEYS_PREFIX}{id}")).await?;
        Ok(id)
    }

    /// Verifies every key slot's MAC; returns the ids of slots that fail.
    pub async fn verify_key_slots(&self) -> Result<Vec<String>> {
        let objs = self.storage.list(KEYS_PREFIX).await?;
        let mut bad = Vec::new();
        for o in objs {
            let ok = match self.storage.get(&o.key).await {
                Ok(bytes) => serde_json::from_slice::<KeySlot>(&bytes)
                    .map(|s| s.verify_mac(&self.key))
                    .unwrap_or(false),
                Err(e) if e.is_not_found() => true,
                Err(e) => return Err(e.into()),
            };
            if !ok {
                bad.push(o.key);
            }
        }
        Ok(bad)
    }

    /// Verifies the encrypted config (already opened once) and the marker.
    /// That the repository this process opened is still at its location:
    /// a marker naming this repository's id, and a config that opens with
    /// its key and has that id. The daemon calls it before every run, so a
    /// repository moved, deleted or replaced underneath it is a failure with
    /// its reason, not a backup into an empty directory.
    pub async fn verify_identity(&self) -> Result<()> {
        let location = self.storage.location();
        let marker = Self::read_marker(self.storage.as_ref()).await?;
        if marker.id != self.config.id {
            return Err(RepoError::NotARepository {
                location,
                detail: format!(
                    "another repository is there now (id {} instead of {}): it was replaced since this process opened it. Restart with the right --repo",
                    marker.id, self.config.id
                ),
            });
        }
        let sealed = match self.storage.get(CONFIG_KEY).await {
            Ok(s) => s,
            Err(e) if e.is_not_found() => {
                return Err(RepoError::NotARepository {
                    location,
                    detail: format!(
                        "the repository's {CONFIG_KEY} is missing: the repository is damaged or was moved; run `lifeboat check`"
                    ),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let config: RepoConfig = open_doc(&self.key, "config", CONFIG_KEY, &sealed)?;
        if config.id != self.config.id {
            return Err(RepoError::corrupt(
                CONFIG_KEY,
                "its id is not the one this process opened; run `lifeboat check`",
            ));
        }
        Ok(())
    }

    pub async fn verify_marker_and_config(&self) -> Result<()> {
        let marker = Self::read_marker(self.storage.as_ref()).await?;
        let canonical = serde_json::to_vec_pretty(&marker)
            .map_err(|e| RepoError::internal(Fault::Encoding, e.to_string()))?;
        let stored = self.storage.get(MARKER_KEY).await?;
        if stored[..] != canonical[..] || marker.id != self.config.id {
            return Err(RepoError::corrupt(
                MARKER_KEY,
                "marker content is not as written",
            ));
        }
        let sealed = self.storage.get(CONFIG_KEY).await?;
        let _: RepoConfig = open_doc(&self.key, "config", CONFIG_KEY, &sealed)?;
        Ok(())
    }
}

/// Why `secret` opened no slot, saying what was tried and what to do.
/// `candidates` are the slots that were tried (those that may match).
fn wrong_secret_message(
    secret: &Secret,
    slots: &[(String, KeySlot)],
    candidates: &[&(String, KeySlot)],
) -> String {
    let names = |kind: SlotKind| -> Vec<String> {
        slots
            .iter()
            .filter(|(_, s)| s.kind == kind)
            .map(|(id, _)| format!("{KEYS_PREFIX}{id}"))
            .collect()
    };
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let passphrase_slots = names(SlotKind::Passphrase);
    let key_file_slots = names(SlotKind::KeyFile);
    let tried: Vec<String> = candidates
        .iter()
        .map(|(id, _)| format!("{KEYS_PREFIX}{id}"))
        .collect();
    let damaged_hint = if tried.is_empty() {
        ""
    } else {
        ". If the secret is right, the slot tried may be damaged: open the repository with another key and run `lifeboat check`"
    };
    match secret {
        Secret::Passphrase(_) => {
            let other = if key_file_slots.is_empty() {
                String::new()
            } else {
                format!(
                    ". The repository also has {} key-file slot(s): open with --key-file FILE if you hold one",
                    key_file_slots.len()
                )
            };
            if passphrase_slots.is_empty() {
                format!(
                    "wrong passphrase: the repository has no passphrase slot, only key-file slots ({}); open it with --key-file FILE (or LIFEBOAT_KEY_FILE)",
                    list(&key_file_slots)
                )
            } else {
                format!(
                    "wrong passphrase: it was tried on every passphrase slot ({}) and opens none; check LIFEBOAT_PASSWORD, --password-file or the configuration's repository.password{damaged_hint}{other}",
                    list(&tried)
                )
            }
        }
        Secret::KeyFile(_) => format!(
            "wrong key file: no key-file slot was made from this key file (its fingerprint matches none of the {} key-file slot(s): {}), so no key derivation was tried; check --key-file (or LIFEBOAT_KEY_FILE) and the configuration's repository.key_file, or open with the passphrase{}",
            key_file_slots.len(),
            list(&key_file_slots),
            if passphrase_slots.is_empty() {
                String::new()
            } else {
                format!(" ({} passphrase slot(s))", passphrase_slots.len())
            }
        ),
        Secret::PassphraseFile(_) => format!(
            "wrong key file: it is not in the Lifeboat key-file format (no first line `{}`), so it was tried as a passphrase on every passphrase slot ({}) and as a key file made by an older Lifeboat on the key-file slots with its fingerprint ({}); none opens. Check --key-file (or LIFEBOAT_KEY_FILE) and the configuration's repository.key_file: a key file made by `lifeboat key add --new-key-file` starts with that line{damaged_hint}",
            crate::keys::KEY_FILE_HEADER,
            list(&passphrase_slots),
            list(
                &tried
                    .iter()
                    .filter(|t| key_file_slots.contains(t))
                    .cloned()
                    .collect::<Vec<_>>()
            ),
        ),
    }
}

/// Keys under `keys/` that did not parse as slots.
async fn unreadable_slots(storage: &dyn Storage, parsed: &[(String, KeySlot)]) -> Vec<String> {
    let Ok(objs) = storage.list(KEYS_PREFIX).await else {
        return Vec::new();
    };
    objs.into_iter()
        .filter(|o| !parsed.iter().any(|(id, _)| id == id_of_key(&o.key)))
        .map(|o| o.key)
        .collect()
}

async fn put_slot(storage: &dyn Storage, id: &str, slot: &KeySlot) -> Result<()> {
    let json = serde_json::to_vec_pretty(slot)
        .map_err(|e| RepoError::internal(Fault::Encoding, e.to_string()))?;
    storage
        .put(&format!("{KEYS_PREFIX}{id}"), Bytes::from(json))
        .await?;
    Ok(())
}

/// Every parseable key slot. Unparseable ones are skipped with a warning
/// (`check` reports them); a newer slot version is an error.
async fn list_slots(storage: &dyn Storage) -> Result<Vec<(String, KeySlot)>> {
    let mut out = Vec::new();
    for o in storage.list(KEYS_PREFIX).await? {
        let bytes = match storage.get(&o.key).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        match format::parse_versioned::<KeySlot>(&o.key, &bytes) {
            Ok(s) => out.push((id_of_key(&o.key).to_string(), s)),
            Err(e @ RepoError::NewerFormat { .. }) => return Err(e),
            Err(e) => tracing::warn!("skipping unreadable key slot {}: {e}", o.key),
        }
    }
    Ok(out)
}
