//! Kubernetes objects in the repository: [`backup`], [`restore`] and
//! [`export`] (see `lifeboat_kube::objects` for the stored form), and
//! [`unquiesce`] (writers brought back after a restore that could not).
//!
//! Backup streams the listed objects straight into a backup session (no
//! staging, memory flat with the object count). Restore and export read the
//! snapshot's item whole and verified before anything is applied or written.
//! Errors: a failed object 1 (after all others were tried), snapshot or kind
//! or object not found 3, credentials or RBAC refused 6, bad input 2.

pub mod backup;
pub mod export;
pub mod restore;
pub mod unquiesce;

use std::error::Error as StdError;

use lifeboat_kube::error::{ErrorKind, KubeError};
use lifeboat_kube::objects::select::{LabelSelector, Selection};
use lifeboat_kube::objects::{ITEM_NAME, Record, parse_item};
use lifeboat_repo::Repository;
use lifeboat_repo::restore::read_item;
use lifeboat_repo::snapshot::{Scope, SnapshotRef};

use crate::config::{KubeSource, SourceKind};
use crate::context::Ctx;
use crate::error::{Error, Kind, Result, usage};

/// `kind` of kube snapshots.
pub const SNAPSHOT_KIND: &str = "kube";
/// Source name of a backup made without a configured source.
pub const DEFAULT_SOURCE: &str = "kube";

/// Which objects, as given (the CLI's `--namespace`, `--kind`, `--name`,
/// `--selector`): the same filters for backup, restore and export. Empty
/// lists select everything (for a backup: what the configured source
/// selects).
#[derive(Debug, Clone, Default)]
pub struct Select {
    pub namespaces: Vec<String>,
    /// Plural, singular or Kind, optionally with its group.
    pub kinds: Vec<String>,
    pub names: Vec<String>,
    /// A label selector, e.g. `app.kubernetes.io/part-of=kubernaut`.
    pub selector: Option<String>,
}

/// A lifeboat-kube failure as a flow's error. A classified Kubernetes error
/// ([`KubeError`], anywhere in the chain) gets its kind's exit code and its
/// own message (not found 3, refused 6, invalid 2, else 1); anything else is
/// a plain failure with its whole chain.
pub(crate) fn kube_error<E: StdError + 'static>(e: E) -> Error {
    classified(&e).unwrap_or_else(|| Error::from_std(Kind::Failure, &e))
}

/// A lifeboat-kube failure as a plain failure (exit 1) with its whole
/// chain, whatever it is (connecting always failed that way).
pub(crate) fn kube_failure<E: StdError + 'static>(e: E) -> Error {
    Error::from_std(Kind::Failure, &e)
}

/// The first [`KubeError`] in `e`'s chain, as a flow's error of its kind.
fn classified(e: &(dyn StdError + 'static)) -> Option<Error> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(k) = c.downcast_ref::<KubeError>() {
            let kind = match k.kind {
                ErrorKind::NotFound => Kind::NotFound,
                ErrorKind::Denied => Kind::Auth,
                ErrorKind::Invalid => Kind::Usage,
                ErrorKind::Unreachable | ErrorKind::Other => Kind::Failure,
            };
            return Some(Error::new(kind, k.message.clone()));
        }
        cause = c.source();
    }
    None
}

/// The `kube:` section of a configured source.
fn configured_source(ctx: &Ctx, name: &str) -> Result<KubeSource> {
    let cfg = ctx.config.as_ref().ok_or_else(|| {
        usage(format!(
            "--source {name} needs a configuration file: pass --config FILE or set LIFEBOAT_CONFIG"
        ))
    })?;
    let src = cfg.source(name).map_err(|e| usage(e.to_string()))?;
    if src.kind != SourceKind::Kube {
        return Err(usage(format!(
            "source {name} is a {} source, not kube",
            src.kind
        )));
    }
    Ok(src.kube.clone().unwrap_or_default())
}

/// The objects `a` selects: its filters, else (namespaces, kinds, label
/// selector) the configured source's.
fn selection(a: &Select, source: Option<&KubeSource>) -> Result<Selection> {
    let labels = match a
        .selector
        .as_deref()
        .or(source.and_then(|s| s.label_selector.as_deref()))
    {
        Some(text) => Some(LabelSelector::parse(text).map_err(|e| usage(e.to_string()))?),
        None => None,
    };
    let pick = |flag: &Vec<String>, conf: Option<&Vec<String>>| -> Vec<String> {
        if flag.is_empty() {
            conf.cloned().unwrap_or_default()
        } else {
            flag.clone()
        }
    };
    Ok(Selection {
        namespaces: pick(&a.namespaces, source.map(|s| &s.namespaces)),
        kinds: pick(&a.kinds, source.map(|s| &s.kinds)),
        names: a.names.clone(),
        labels,
    })
}

/// The snapshot's scope: full when the filters select what the configured
/// source itself selects (its `kube:` section), else the selection the
/// filters made. A backup without a configured source is full: its filters
/// are all there is to the ad-hoc source `kube` (and `restore kube latest`
/// keeps meaning the newest of them); its selection is in its facts.
fn kube_scope(a: &Select, source: Option<&KubeSource>) -> Result<Scope> {
    let Some(source) = source else {
        return Ok(Scope::full());
    };
    let source = Some(source);
    let of = |s: Selection| {
        Scope {
            namespaces: s.namespaces,
            kinds: s.kinds,
            names: s.names,
            selector: s.labels.map(|l| l.text),
            ..Scope::default()
        }
        .normalized()
    };
    let chosen = of(selection(a, source)?);
    let own = of(selection(&Select::default(), source)?);
    Ok(if chosen == own { Scope::full() } else { chosen })
}

/// The kube snapshot `spec` names (of `source`, when given), and its
/// records (verified as read).
async fn load_snapshot(
    ctx: &Ctx,
    spec: &str,
    source: Option<&str>,
) -> Result<(Repository, SnapshotRef, Vec<Record>)> {
    let repo = ctx.open().await?;
    let snap = repo.find_snapshot(spec, source).await?;
    if snap.snapshot.kind != SNAPSHOT_KIND {
        return Err(usage(format!(
            "snapshot {} is a {} snapshot, not kube (see `lifeboat snapshots`)",
            snap.short_id(),
            snap.snapshot.kind
        )));
    }
    let records = read_records(&repo, &snap).await?;
    Ok((repo, snap, records))
}

/// The objects of a kube snapshot, every blob verified as it is read.
pub async fn read_records(repo: &Repository, snap: &SnapshotRef) -> Result<Vec<Record>> {
    let bytes = read_item(repo, snap, Some(ITEM_NAME)).await?;
    parse_item(&bytes)
        .map_err(|e| kube_failure(e).context(format!("reading snapshot {}", snap.short_id())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubernetes_error_keeps_its_kind_and_message() {
        for (kind, want) in [
            (ErrorKind::NotFound, Kind::NotFound),
            (ErrorKind::Denied, Kind::Auth),
            (ErrorKind::Invalid, Kind::Usage),
            (ErrorKind::Unreachable, Kind::Failure),
            (ErrorKind::Other, Kind::Failure),
        ] {
            let e = kube_error(KubeError::new(kind, "listing configmaps: 403"));
            assert_eq!(e.kind(), want, "{kind:?}");
            assert_eq!(e.message, "listing configmaps: 403");
        }
    }

    /// An error wrapping a Kubernetes error (as a context does) is
    /// classified by the Kubernetes error it carries.
    #[test]
    fn a_wrapped_kubernetes_error_is_found_in_the_chain() {
        #[derive(Debug)]
        struct Wrapper(KubeError);
        impl std::fmt::Display for Wrapper {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("while listing")
            }
        }
        impl StdError for Wrapper {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let e = kube_error(Wrapper(KubeError::new(ErrorKind::NotFound, "no such kind")));
        assert_eq!(e.kind(), Kind::NotFound);
        assert_eq!(e.message, "no such kind");
        // Not classified as a plain failure: the whole chain.
        let e = kube_failure(Wrapper(KubeError::new(ErrorKind::Denied, "refused")));
        assert_eq!(e.kind(), Kind::Failure);
        assert_eq!(e.message, "while listing: refused");
    }

    #[test]
    fn the_scope_is_full_when_the_filters_select_what_the_source_does() {
        let source = KubeSource {
            namespaces: vec!["b".into(), "a".into()],
            ..Default::default()
        };
        let same = Select {
            namespaces: vec!["a".into(), "b".into()],
            ..Default::default()
        };
        assert_eq!(kube_scope(&same, Some(&source)).unwrap(), Scope::full());
        assert_eq!(
            kube_scope(&Select::default(), Some(&source)).unwrap(),
            Scope::full()
        );
        let fewer = Select {
            namespaces: vec!["a".into()],
            ..Default::default()
        };
        let scope = kube_scope(&fewer, Some(&source)).unwrap();
        assert_eq!(scope.namespaces, vec!["a".to_string()]);
        // Without a configured source, whatever the filters: full.
        assert_eq!(kube_scope(&fewer, None).unwrap(), Scope::full());
    }

    #[test]
    fn a_bad_label_selector_is_a_usage_error() {
        let a = Select {
            selector: Some("a in ((b))".into()),
            ..Default::default()
        };
        assert_eq!(selection(&a, None).unwrap_err().kind(), Kind::Usage);
    }
}
