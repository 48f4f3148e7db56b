//! [`TokenBackend`] for [`NodeBackend`]: the token store on blocking threads, its errors mapped
//! onto the gateway's. A denial is an `Ok(Err(AuthError))`; only a broken node is a
//! [`BackendError`].
//!
//! It must not judge tokens itself: the token store does; it maps outcomes and errors.

use crate::http::backend::NodeBackend;
use crate::tokens::{TokenStore, TokenStoreError};
use shubnet_gateway::BackendError;
use shubnet_gateway::tokens::{
    AuthResult, CollectionInfo, CreatedToken, HmacClaim, NewToken, Right, TokenBackend, TokenInfo,
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

impl TokenBackend for NodeBackend {
    async fn create_token(&self, req: NewToken) -> Result<CreatedToken, BackendError> {
        blocking(&self.tokens, move |s| s.create(&req))
            .await
            .map_err(conv)
    }

    async fn tokens(&self) -> Result<Vec<TokenInfo>, BackendError> {
        blocking(&self.tokens, |s| s.list()).await.map_err(conv)
    }

    async fn revoke_token(&self, id: &str) -> Result<TokenInfo, BackendError> {
        let id = id.to_owned();
        blocking(&self.tokens, move |s| s.revoke(&id))
            .await
            .map_err(conv)
    }

    async fn identify_token(&self, token: &str) -> Result<AuthResult, BackendError> {
        let token = token.to_owned();
        decision(blocking(&self.tokens, move |s| s.identify(&token)).await)
    }

    async fn authorize_token(
        &self,
        token: &str,
        collection: &str,
        right: Right,
    ) -> Result<AuthResult, BackendError> {
        let (token, collection) = (token.to_owned(), collection.to_owned());
        decision(
            blocking(&self.tokens, move |s| {
                s.authorize(&token, &collection, right)
            })
            .await,
        )
    }

    async fn authorize_hmac(
        &self,
        claim: HmacClaim,
        collection: &str,
        right: Right,
    ) -> Result<AuthResult, BackendError> {
        let collection = collection.to_owned();
        decision(
            blocking(&self.tokens, move |s| {
                s.authorize_hmac(&claim, &collection, right)
            })
            .await,
        )
    }

    async fn set_collection_private(
        &self,
        name: &str,
        private: bool,
    ) -> Result<CollectionInfo, BackendError> {
        let name = name.to_owned();
        blocking(&self.tokens, move |s| s.set_private(&name, private))
            .await
            .map_err(conv)
    }

    async fn collections(&self) -> Result<Vec<CollectionInfo>, BackendError> {
        blocking(&self.tokens, |s| s.collections())
            .await
            .map_err(conv)
    }
}
