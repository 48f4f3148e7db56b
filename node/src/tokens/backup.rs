//! Raw export and import of the token and collection records, for `shubnet backup` and
//! `restore`. Records stay hashed and sealed: the export is as safe as `accounts/` itself and
//! useful only together with `keys/tokens.key`, which the backup also holds (keep it offline).
//!
//! Owns the export format of the records. Must not open or decrypt anything.

use super::{Result, TokenStore};

/// Every record of both trees as hex key/value pairs.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct AccountsExport {
    /// The token records.
    pub tokens: Vec<(String, String)>,
    /// The collection records.
    pub collections: Vec<(String, String)>,
}

fn dump(tree: &sled::Tree) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for item in tree.iter() {
        let (k, v) = item?;
        out.push((hex::encode(k), hex::encode(v)));
    }
    Ok(out)
}

fn load(tree: &sled::Tree, rows: &[(String, String)]) -> Result<usize> {
    for (k, v) in rows {
        let (Ok(k), Ok(v)) = (hex::decode(k), hex::decode(v)) else {
            return Err(super::TokenStoreError::Invalid(
                "the backup's accounts.json has a record that is not hex".into(),
            ));
        };
        tree.insert(k, v)?;
    }
    tree.flush()?;
    Ok(rows.len())
}

impl TokenStore {
    /// Every token and collection record, as stored.
    pub fn export_raw(&self) -> Result<AccountsExport> {
        Ok(AccountsExport {
            tokens: dump(&self.inner.tokens)?,
            collections: dump(&self.inner.collections)?,
        })
    }

    /// Adds exported records; returns how many.
    pub fn import_raw(&self, e: &AccountsExport) -> Result<usize> {
        Ok(load(&self.inner.tokens, &e.tokens)? + load(&self.inner.collections, &e.collections)?)
    }
}
