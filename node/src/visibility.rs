//! Which content is private: the one answer every route and protocol asks before it serves
//! bytes, manifests or listings of an image.
//!
//! It owns the join between content and collections (a block belongs to the roots that contain
//! it, a root to the collections whose tags point at it) and the answer to "is this collection
//! private": private when its owner's signed policy, which every member holds
//! ([`crate::access`]), says so, or when this node's own flag does. The local flag can only add
//! privacy: no member can make public what the owning institution made private. It must not
//! decide who may see private content: callers hold the credentials (HTTP tokens, federation
//! membership) and ask this service only what is private.

use crate::access::{AccessStore, AccessStoreError};
use crate::registry::{Registry, RegistryError};
use crate::store::{Store, StoreError};
use crate::tokens::{TokenStore, TokenStoreError};
use shubnet_protocol::Cid;
use std::collections::HashSet;

/// Why a visibility question could not be answered. Callers fail closed on it.
#[derive(Debug, thiserror::Error)]
pub enum VisibilityError {
    /// The store's index could not be read.
    #[error("reading the store index: {0}")]
    Store(#[from] StoreError),
    /// The registry could not be read.
    #[error("reading the registry: {0}")]
    Registry(#[from] RegistryError),
    /// The privacy flags could not be read.
    #[error("reading collection privacy: {0}")]
    Tokens(#[from] TokenStoreError),
    /// The federation's policies could not be read.
    #[error("reading collection policies: {0}")]
    Access(#[from] AccessStoreError),
    /// The blocking task running the lookup failed.
    #[error("visibility lookup task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Cheap to clone; every clone answers from the same store, registry and flags.
#[derive(Clone, Debug)]
pub struct Visibility {
    store: Store,
    registry: Registry,
    tokens: TokenStore,
    access: AccessStore,
}

impl Visibility {
    /// Answers from these parts.
    pub fn new(store: Store, registry: Registry, tokens: TokenStore, access: AccessStore) -> Self {
        Self {
            store,
            registry,
            tokens,
            access,
        }
    }

    /// The collections whose images contain `cid` (as a root or as any block of one).
    pub async fn collections_of(&self, cid: &Cid) -> Result<Vec<String>, VisibilityError> {
        let (store, reg, cid) = (self.store.clone(), self.registry.clone(), *cid);
        tokio::task::spawn_blocking(move || collections_of(&store, &reg, &cid)).await?
    }

    /// Whether `collection` is private: by its owner's policy or by this node's flag.
    pub async fn is_private(&self, collection: &str) -> Result<bool, VisibilityError> {
        let (tokens, access, name) = (
            self.tokens.clone(),
            self.access.clone(),
            collection.to_owned(),
        );
        tokio::task::spawn_blocking(move || {
            if tokens.is_private(&name)? {
                return Ok(true);
            }
            Ok(access.policy(&name)?.is_some_and(|p| p.private))
        })
        .await?
    }

    /// Every private collection (search and listings leave them out).
    pub async fn private_collections(&self) -> Result<HashSet<String>, VisibilityError> {
        let (tokens, access) = (self.tokens.clone(), self.access.clone());
        tokio::task::spawn_blocking(move || {
            let mut out = access.private_collections()?;
            out.extend(
                tokens
                    .collections()?
                    .into_iter()
                    .filter(|c| c.private)
                    .map(|c| c.name),
            );
            Ok(out)
        })
        .await?
    }

    /// True if anyone may have `cid`: it belongs to no collection (an `ipfs add` upload), or to
    /// at least one public collection. An error is an answer of "no".
    pub async fn is_public(&self, cid: &Cid) -> bool {
        let Ok(collections) = self.collections_of(cid).await else {
            return false;
        };
        if collections.is_empty() {
            return true;
        }
        for c in &collections {
            if let Ok(false) = self.is_private(c).await {
                return true;
            }
        }
        false
    }
}

fn collections_of(
    store: &Store,
    reg: &Registry,
    cid: &Cid,
) -> Result<Vec<String>, VisibilityError> {
    let mut roots = store.roots_containing(cid)?;
    if !roots.contains(cid) {
        roots.push(*cid);
    }
    let mut out = Vec::new();
    for r in roots {
        for c in reg.collections_of_root(&r)? {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    Ok(out)
}
