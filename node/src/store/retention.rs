//! Retention: unpinned content that GC must still keep until a deadline.
//!
//! A deleted (tombstoned) image is unpinned everywhere at once, but its bytes stay until the
//! retention period ends, so an accidental delete can be undone by pushing the tag again.
//!
//! Owns the `retained` tree. Must not delete anything itself (GC does).

use super::{Result, Store, sled_err};
use crate::clock::unix_now;
use shubnet_protocol::Cid;

impl Store {
    /// Keeps `root`'s content (pinned or not) until unix second `until`; an earlier deadline
    /// already recorded is left alone, so repeated calls do not extend it.
    pub fn retain_until(&self, root: &Cid, until: u64) -> Result<()> {
        let key = root.to_bytes();
        if self.inner.retained.get(&key).map_err(sled_err)?.is_some() {
            return Ok(());
        }
        self.inner
            .retained
            .insert(key, &until.to_be_bytes())
            .map_err(sled_err)?;
        Ok(())
    }

    /// Drops `root`'s retention deadline (it is live again, or its content is gone).
    pub fn release(&self, root: &Cid) -> Result<()> {
        self.inner
            .retained
            .remove(root.to_bytes())
            .map_err(sled_err)?;
        Ok(())
    }

    /// The retention deadline of `root`, if any.
    pub fn retained_until(&self, root: &Cid) -> Result<Option<u64>> {
        Ok(self
            .inner
            .retained
            .get(root.to_bytes())
            .map_err(sled_err)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes))
    }

    /// True while `root` is within its retention period.
    pub fn is_retained(&self, root: &Cid) -> Result<bool> {
        Ok(self.retained_until(root)?.is_some_and(|t| t > unix_now()))
    }
}
