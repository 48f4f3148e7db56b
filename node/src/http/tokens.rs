//! [`TokenBackend`] for [`NodeBackend`]: the token store and the federation's access state on
//! blocking threads, their errors mapped onto the gateway's. A denial is an
//! `Ok(Err(AuthError))`; only a broken node is a [`BackendError`].
//!
//! A presented token goes to the access store when it is a federation capability
//! (`shubcap1_…`) and to the node-local token store otherwise; ids of 32 hex digits name
//! capabilities. Setting a collection's visibility signs a policy for the federation when this
//! node's institution owns the collection, and always sets this node's own flag.
//!
//! It must not judge tokens itself: the token and access stores do; it routes and maps.

use crate::access::{AccessStore, AccessStoreError};
use crate::clock::unix_now;
use crate::http::backend::NodeBackend;
use crate::http::convert::off_thread;
use crate::tokens::{TokenStore, TokenStoreError};
use shubnet_gateway::BackendError;
use shubnet_gateway::tokens::{
    AuthError, AuthResult, CollectionInfo, CreatedToken, HmacClaim, NewToken, Right, TokenBackend,
    TokenInfo,
};

fn conv(e: TokenStoreError) -> BackendError {
    match e {
        TokenStoreError::NotFound(_) => BackendError::NotFound(e.to_string()),
        TokenStoreError::Invalid(m) => BackendError::Invalid(m),
        TokenStoreError::Denied(d) => BackendError::Invalid(d.to_string()),
        TokenStoreError::Index(sled::Error::Io(io)) if crate::store::is_disk_full(&io) => {
            BackendError::StorageFull(format!("no space left for the index: {io}"))
        }
        other => BackendError::Internal(other.to_string()),
    }
}

fn access_conv(e: AccessStoreError) -> BackendError {
    match e {
        AccessStoreError::NotFound(_) => BackendError::NotFound(e.to_string()),
        AccessStoreError::NotOwner { .. } | AccessStoreError::NoFederation => {
            BackendError::Rejected(e.to_string())
        }
        AccessStoreError::Record(_) | AccessStoreError::TooLong { .. } => {
            BackendError::Invalid(e.to_string())
        }
        AccessStoreError::Tokens(t) => conv(t),
        other => BackendError::Internal(other.to_string()),
    }
}

/// Runs `f` on the access store off the async threads.
async fn access<T: Send + 'static>(
    store: &AccessStore,
    f: impl FnOnce(&AccessStore) -> Result<T, AccessStoreError> + Send + 'static,
) -> Result<T, BackendError> {
    let s = store.clone();
    off_thread(move || f(&s), access_conv).await
}

/// A capability check's outcome, counted like the token store's.
fn counted(r: AuthResult) -> AuthResult {
    if let Err(e) = &r {
        shubnet_gateway::metrics::global().reject("token", e.reason());
    }
    r
}

/// Runs `f` on the token store off the async threads.
async fn blocking<T: Send + 'static>(
    store: &TokenStore,
    f: impl FnOnce(&TokenStore) -> Result<T, TokenStoreError> + Send + 'static,
) -> Result<T, TokenStoreError> {
    let s = store.clone();
    tokio::task::spawn_blocking(move || f(&s))
        .await
        .map_err(|e| TokenStoreError::Internal(format!("task failed: {e}")))?
}

/// Splits a check's outcome into a decision and a node failure.
fn decision(r: Result<TokenInfo, TokenStoreError>) -> Result<AuthResult, BackendError> {
    match r {
        Ok(info) => Ok(Ok(info)),
        Err(TokenStoreError::Denied(e)) => {
            shubnet_gateway::metrics::global().reject("token", e.reason());
            Ok(Err(e))
        }
        Err(other) => Err(conv(other)),
    }
}

impl NodeBackend {
    /// A node-local token's grant, withdrawn when another institution owns the collection:
    /// what the owner protects, this member enforces, and only the owner authorises readers.
    async fn only_own(
        &self,
        r: AuthResult,
        collection: String,
    ) -> Result<AuthResult, BackendError> {
        let Ok(info) = r else {
            return Ok(r);
        };
        let c = collection.clone();
        if access(&self.access, move |a| a.owned_elsewhere(&c)).await? {
            return Ok(counted(Err(AuthError::WrongCollection {
                id: info.id,
                collection,
            })));
        }
        Ok(Ok(info))
    }
}

impl TokenBackend for NodeBackend {
    async fn create_token(&self, req: NewToken) -> Result<CreatedToken, BackendError> {
        if let Some(ttl) = req.federation_ttl {
            let issued = access(&self.access, move |a| {
                a.issue(
                    &req.user,
                    req.collections,
                    req.rights,
                    unix_now().saturating_add(ttl),
                )
            })
            .await?;
            return Ok(CreatedToken {
                token: issued.token,
                info: issued.info,
            });
        }
        blocking(&self.tokens, move |s| s.create(&req))
            .await
            .map_err(conv)
    }

    async fn tokens(&self) -> Result<Vec<TokenInfo>, BackendError> {
        let mut all = blocking(&self.tokens, |s| s.list()).await.map_err(conv)?;
        all.extend(access(&self.access, |a| a.issued()).await?);
        all.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        Ok(all)
    }

    async fn revoke_token(&self, id: &str) -> Result<TokenInfo, BackendError> {
        let id = id.to_owned();
        if AccessStore::is_capability_id(&id) {
            return access(&self.access, move |a| a.revoke(&id)).await;
        }
        blocking(&self.tokens, move |s| s.revoke(&id))
            .await
            .map_err(conv)
    }

    async fn identify_token(&self, token: &str) -> Result<AuthResult, BackendError> {
        let token = token.to_owned();
        if AccessStore::is_capability(&token) {
            return access(&self.access, move |a| a.info_of(&token))
                .await
                .map(counted);
        }
        decision(blocking(&self.tokens, move |s| s.identify(&token)).await)
    }

    async fn authorize_token(
        &self,
        token: &str,
        collection: &str,
        right: Right,
    ) -> Result<AuthResult, BackendError> {
        let (token, collection) = (token.to_owned(), collection.to_owned());
        if AccessStore::is_capability(&token) {
            return access(&self.access, move |a| {
                a.authorize(&token, &collection, right)
            })
            .await
            .map(counted);
        }
        let c = collection.clone();
        let local =
            decision(blocking(&self.tokens, move |s| s.authorize(&token, &c, right)).await)?;
        self.only_own(local, collection).await
    }

    async fn authorize_hmac(
        &self,
        claim: HmacClaim,
        collection: &str,
        right: Right,
    ) -> Result<AuthResult, BackendError> {
        let collection = collection.to_owned();
        let c = collection.clone();
        let local =
            decision(blocking(&self.tokens, move |s| s.authorize_hmac(&claim, &c, right)).await)?;
        self.only_own(local, collection).await
    }

    async fn set_collection_private(
        &self,
        name: &str,
        private: bool,
    ) -> Result<CollectionInfo, BackendError> {
        let name = name.to_owned();
        let n = name.clone();
        access(&self.access, move |a| a.set_visibility(&n, private)).await?;
        blocking(&self.tokens, move |s| s.set_private(&name, private))
            .await
            .map_err(conv)
    }

    /// This node's flags, with collections the federation's policies make private marked so.
    async fn collections(&self) -> Result<Vec<CollectionInfo>, BackendError> {
        let mut all = blocking(&self.tokens, |s| s.collections())
            .await
            .map_err(conv)?;
        let federated = access(&self.access, |a| a.private_collections()).await?;
        for c in &mut all {
            c.private |= federated.contains(&c.name);
        }
        for name in federated {
            if !all.iter().any(|c| c.name == name) {
                all.push(CollectionInfo {
                    name,
                    private: true,
                });
            }
        }
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }
}
