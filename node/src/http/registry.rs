//! The registry's half of the gateway backend: each function here backs one
//! method of the gateway's registry traits, so `backend.rs` stays a thin dispatcher.
//!
//! It must not check manifests or signatures itself: the registry does; it maps outcomes and
//! errors.

use crate::registry::metadata::ExtractError;
use crate::registry::{Registry, RegistryError, RosterOutcome, roster_to_line};
use crate::store::Store;
use base64::Engine;
use shubnet_gateway::backend::{
    BackendError, ByteStream, FederationOutcome, FederationRequest, FederationView, PushOutcome,
    RosterChange,
};
use shubnet_protocol::Cid;
use shubnet_protocol::manifest::{Manifest, ManifestError};
use shubnet_protocol::reference::Reference;
use shubnet_protocol::roster::SignedRoster;
use std::collections::BTreeMap;

/// Maps registry failures onto HTTP-level errors: rule violations are the client's (400/404),
/// disk trouble is ours (500).
pub fn conv(e: RegistryError) -> BackendError {
    match e {
        RegistryError::NotFound(m) => BackendError::NotFound(format!("{m} not found")),
        RegistryError::Io(m) => BackendError::Internal(m),
        RegistryError::Manifest(ManifestError::FrozenTag { tag }) => BackendError::Frozen { tag },
        RegistryError::Manifest(ManifestError::OutsideNamespace { collection, member }) => {
            BackendError::OutsideNamespace { collection, member }
        }
        other => BackendError::Rejected(other.to_string()),
    }
}

/// A corrupt SIF is the client's (400); failing to read our own blob is ours (500).
fn metadata_error(e: ExtractError) -> BackendError {
    match e {
        ExtractError::Sif(_) => BackendError::Invalid(e.to_string()),
        other => BackendError::Internal(other.to_string()),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, BackendError> {
    super::convert::off_thread(f, conv).await
}

/// `GET /shubnet/v1/federation`.
pub async fn federation(reg: &Registry) -> Result<FederationView, BackendError> {
    let reg = reg.clone();
    blocking(move || {
        Ok(FederationView {
            id: reg.federation_id(),
            rosters: reg
                .roster_chain()?
                .iter()
                .map(SignedRoster::encode)
                .collect(),
            pending: reg.pending()?.map(|p| p.encode()),
        })
    })
    .await
}

/// `GET /shubnet/v1/manifests/c/n/t`.
pub async fn manifest_for_tag(
    reg: &Registry,
    c: &str,
    n: &str,
    t: &str,
) -> Result<Option<Vec<u8>>, BackendError> {
    // Two point reads of small, hot keys (head, then manifest) run on the async worker: the
    // blocking pool's hand-off costs two thread wake-ups, more than the reads themselves, and
    // this is the route every `shub://` pull and listing client hits first.
    reg.head_bytes(c, n, t).map_err(conv)
}

/// `GET /shubnet/v1/manifest/CID`.
pub async fn manifest_by_cid(reg: &Registry, cid: &Cid) -> Result<Option<Vec<u8>>, BackendError> {
    let (reg, cid) = (reg.clone(), *cid);
    blocking(move || Ok(reg.manifest(&cid)?.map(|m| m.encode()))).await
}

/// `GET /shubnet/v1/tags`.
pub async fn tag_heads(reg: &Registry, prefix: &str) -> Result<Vec<Vec<u8>>, BackendError> {
    let (reg, prefix) = (reg.clone(), prefix.to_owned());
    blocking(move || {
        Ok(reg
            .tags(&prefix)?
            .into_iter()
            .map(|(_, m)| m.encode())
            .collect())
    })
    .await
}

fn outcome(o: RosterOutcome) -> FederationOutcome {
    FederationOutcome::Roster(match o {
        RosterOutcome::Accepted(r) => RosterChange::Accepted {
            version: r.body.version,
            roster: roster_to_line(&r),
        },
        RosterOutcome::Pending { roster, have, need } => RosterChange::Pending {
            version: roster.body.version,
            signatures: have,
            needed: need,
            roster: roster_to_line(&roster),
        },
    })
}

/// `POST /admin/v1/federation`.
pub async fn federation_admin(
    reg: &Registry,
    req: FederationRequest,
) -> Result<FederationOutcome, BackendError> {
    let reg = reg.clone();
    blocking(move || match req {
        FederationRequest::Create {
            name,
            institution,
            namespaces,
            storage,
            replication,
            min_institutions,
            gateway,
        } => {
            let mut policy = shubnet_protocol::roster::Replication::default();
            if let Some(k) = replication {
                policy.k = k;
                policy.min_institutions = policy.min_institutions.min(k);
            }
            if let Some(m) = min_institutions {
                policy.min_institutions = m;
            }
            let id =
                reg.create_federation(&name, &institution, namespaces, storage, policy, gateway)?;
            Ok(FederationOutcome::Created { id })
        }
        FederationRequest::Admit {
            request,
            storage,
            gateway,
        } => Ok(outcome(reg.admit(&request, storage, gateway)?)),
        FederationRequest::Sign { roster } => Ok(outcome(reg.sign(&roster)?)),
        FederationRequest::Admins {
            add,
            remove,
            threshold,
        } => {
            let parse = |keys: &[String]| -> Result<Vec<[u8; 32]>, RegistryError> {
                keys.iter()
                    .map(|k| {
                        hex::decode(k.trim())
                            .ok()
                            .and_then(|v| <[u8; 32]>::try_from(v).ok())
                            .ok_or_else(|| {
                                RegistryError::Invalid(format!(
                                    "{k:?} is not a 64-hex-digit ed25519 public key"
                                ))
                            })
                    })
                    .collect()
            };
            Ok(outcome(reg.change_admins(
                &parse(&add)?,
                &parse(&remove)?,
                threshold,
            )?))
        }
        FederationRequest::RemoveNode { peer_id } => Ok(outcome(reg.remove_node(peer_id.trim())?)),
        FederationRequest::Join { id, rosters } => {
            let chain = rosters
                .iter()
                .map(|r| {
                    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(r)
                        .map_err(|e| {
                            RegistryError::Invalid(format!("roster is not base64url: {e}"))
                        })?;
                    Ok(SignedRoster::decode(&bytes)?)
                })
                .collect::<Result<Vec<_>, RegistryError>>()?;
            let latest = reg.join(&id, &chain)?;
            Ok(FederationOutcome::Joined {
                id,
                version: latest.version,
            })
        }
    })
    .await
}

fn push_outcome(m: &Manifest) -> PushOutcome {
    let b = &m.body;
    PushOutcome {
        manifest: m.cid().to_string(),
        reference: format!("{}/{}:{}", b.collection, b.name, b.tag),
        root: b.root.map(|c| c.to_string()),
        size: b.size,
        sha256: hex::encode(b.sha256),
        seq: b.seq,
    }
}

fn parse_ref(text: &str) -> Result<Reference, BackendError> {
    let r = Reference::parse(text).map_err(|e| BackendError::Invalid(format!("{text:?}: {e}")))?;
    if r.digest.is_some() {
        return Err(BackendError::Invalid(
            "push and delete take a tag, not a digest".into(),
        ));
    }
    Ok(r)
}

/// `POST /admin/v1/push`: store and pin the file, extract its SIF metadata, then sign and accept
/// its manifest. What can be refused without the content (namespace, frozen tag) is checked
/// first, and the body is still read to its end so the client gets the reason, not a broken
/// pipe; a push refused after the content was stored (a corrupt SIF, a rule) removes that
/// content again unless something else pins it. Nothing of a refused push stays stored or
/// served.
pub async fn push(
    reg: &Registry,
    store: &Store,
    reference: &str,
    frozen: bool,
    body: ByteStream,
) -> Result<PushOutcome, BackendError> {
    push_by(reg, store, reference, frozen, "admin", body).await
}

/// [`push_by`] with `extra` metadata keys added to the signed manifest (the OCI API's record
/// of the client's manifest). Content that is not a SIF is refused: the extra keys describe a
/// SIF artifact.
pub async fn push_with_extra(
    reg: &Registry,
    store: &Store,
    reference: &str,
    pushed_by: &str,
    extra: BTreeMap<String, Vec<u8>>,
    body: ByteStream,
) -> Result<PushOutcome, BackendError> {
    push_inner(reg, store, reference, false, pushed_by, Some(extra), body).await
}

/// [`push`] on behalf of `pushed_by` (the user of the token a client API authenticated), who
/// is recorded in the signed manifest.
pub async fn push_by(
    reg: &Registry,
    store: &Store,
    reference: &str,
    frozen: bool,
    pushed_by: &str,
    body: ByteStream,
) -> Result<PushOutcome, BackendError> {
    push_inner(reg, store, reference, frozen, pushed_by, None, body).await
}

async fn push_inner(
    reg: &Registry,
    store: &Store,
    reference: &str,
    frozen: bool,
    pushed_by: &str,
    extra: Option<BTreeMap<String, Vec<u8>>>,
    mut body: ByteStream,
) -> Result<PushOutcome, BackendError> {
    let precheck = match parse_ref(reference) {
        Ok(r) => {
            let (reg, r2) = (reg.clone(), r.clone());
            blocking(move || reg.check_may_push(&r2)).await.map(|()| r)
        }
        Err(e) => Err(e),
    };
    let r = match precheck {
        Ok(r) => r,
        Err(e) => {
            use futures::StreamExt;
            while let Some(Ok(_)) = body.next().await {}
            return Err(e);
        }
    };
    let (root, rec, newly_pinned) = store
        .add_stream_reporting(body)
        .await
        .map_err(super::convert::conv)?;
    let published = async {
        let mut metadata = crate::registry::metadata::extract(store, &root)
            .await
            .map_err(metadata_error)?;
        if let Some(extra) = extra {
            let m = metadata
                .as_mut()
                .ok_or_else(|| BackendError::Invalid("the layer is not a SIF image".into()))?;
            m.extra.extend(extra);
        }
        let (reg2, r2, user) = (reg.clone(), r.clone(), pushed_by.to_owned());
        let content = Some((root, rec.size, rec.sha256));
        blocking(move || reg2.publish(&r2, content, metadata, frozen, &user)).await
    }
    .await;
    match published {
        Ok(m) => Ok(push_outcome(&m)),
        Err(e) => {
            let undo = async {
                if newly_pinned {
                    store.unpin(&root)?;
                    store.remove_if_unpinned(&root).await?;
                }
                Ok::<(), crate::store::StoreError>(())
            };
            if let Err(rm) = undo.await {
                tracing::warn!(%root, error = %rm, "could not remove the content of a refused push");
            }
            Err(e)
        }
    }
}

/// `POST /admin/v1/push?check=true`: only the checks that need no content.
pub async fn push_check(reg: &Registry, reference: &str) -> Result<(), BackendError> {
    let r = parse_ref(reference)?;
    let reg = reg.clone();
    blocking(move || reg.check_may_push(&r)).await
}

/// `POST /admin/v1/delete`: publish a tombstone.
pub async fn delete_tag(reg: &Registry, reference: &str) -> Result<PushOutcome, BackendError> {
    delete_tag_by(reg, reference, "admin").await
}

/// [`delete_tag`] on behalf of `deleted_by`, recorded in the tombstone.
pub async fn delete_tag_by(
    reg: &Registry,
    reference: &str,
    deleted_by: &str,
) -> Result<PushOutcome, BackendError> {
    let r = parse_ref(reference)?;
    let (reg, user) = (reg.clone(), deleted_by.to_owned());
    let m = blocking(move || reg.publish(&r, None, None, false, &user)).await?;
    Ok(push_outcome(&m))
}
