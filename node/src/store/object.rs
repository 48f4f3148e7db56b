//! Blobs on S3-compatible object storage: the client, the keys under the configured prefix, and
//! the few operations the store needs (upload a finished local file, ranged reads, listing,
//! deletion, and aborting multipart uploads a killed node left behind).
//!
//! Every call runs on one process-wide I/O runtime, so blocking store code (reads on blocking
//! threads) and async code can both wait on it without nesting runtimes.
//!
//! Owns the object keys under `PREFIX/` and the S3 requests. Must not touch the index or local
//! files other than the one it is told to upload or download into.

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, AwsAuthorizer};
use object_store::multipart::MultipartStore;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use shubnet_protocol::Cid;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// Size of each part of a multipart upload. Memory held by one upload is this times
/// [`UPLOAD_CONCURRENCY`] plus one.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts of one upload in flight at once.
const UPLOAD_CONCURRENCY: usize = 4;

/// Where blobs live: `s3://BUCKET/PREFIX`, as given to `serve --blobs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobsUrl {
    /// The bucket.
    pub bucket: String,
    /// The key prefix, without leading or trailing `/` (may be empty).
    pub prefix: String,
}

/// Why a `--blobs` location is not usable.
#[derive(Debug, thiserror::Error)]
pub enum BlobsUrlError {
    /// Only `s3://` is supported.
    #[error("`{0}` is not an object-storage location: use s3://BUCKET/PREFIX")]
    Scheme(String),
    /// `s3://` without a bucket.
    #[error("`{0}` names no bucket: use s3://BUCKET/PREFIX")]
    NoBucket(String),
}

impl std::str::FromStr for BlobsUrl {
    type Err = BlobsUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix("s3://")
            .ok_or_else(|| BlobsUrlError::Scheme(s.to_owned()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(BlobsUrlError::NoBucket(s.to_owned()));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }
}

impl std::fmt::Display for BlobsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// Why an object-storage request failed.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The store refused the credentials (HTTP 401/403).
    #[error("object storage {url} refused the credentials (AWS_ACCESS_KEY_ID {key_id}): {detail}")]
    Credentials {
        /// The location.
        url: String,
        /// The access key id in use (never the secret).
        key_id: String,
        /// The store's answer.
        detail: String,
    },
    /// The store could not be reached or answered with an error.
    #[error("object storage {url}: {detail}")]
    Unavailable {
        /// The location.
        url: String,
        /// What failed.
        detail: String,
    },
    /// The object does not exist.
    #[error("object {0} not found")]
    NotFound(String),
    /// A local file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS's reason.
        source: std::io::Error,
    },
    /// Another node writes under this prefix.
    #[error(
        "another node ({owner}) writes blobs under {url}; its lease ends in {expires_in_secs} s \
         unless it renews it. Only one node may use a prefix: give this node its own prefix, or stop the other"
    )]
    Locked {
        /// The location.
        url: String,
        /// The lock's owner, as it wrote it.
        owner: String,
        /// Seconds until its lease runs out.
        expires_in_secs: u64,
    },
    /// The client could not be configured from the environment.
    #[error("configuring object storage {url}: {detail}")]
    Config {
        /// The location.
        url: String,
        /// What is wrong.
        detail: String,
    },
}

/// The process-wide runtime that every object-storage request runs on.
fn io_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("shubnet-s3")
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            // Without threads the process cannot run at all.
            Err(e) => panic!("cannot start the object-storage I/O runtime: {e}"),
        }
    })
}

/// A handle to the bucket prefix holding this node's blobs.
#[derive(Debug, Clone)]
pub struct ObjectBlobs {
    s3: Arc<AmazonS3>,
    url: BlobsUrl,
    key_id: String,
    endpoint: Option<String>,
    region: String,
}

impl ObjectBlobs {
    /// A client for `url` configured from the standard variables (`AWS_ENDPOINT_URL`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ALLOW_HTTP`). Nothing is
    /// contacted yet.
    pub fn from_env(url: BlobsUrl) -> Result<Self, ObjectError> {
        Self::build(AmazonS3Builder::from_env(), url)
    }

    /// A client for `url` configured from `options` alone (names as the `AWS_*` variables,
    /// e.g. `("AWS_ENDPOINT_URL", "http://127.0.0.1:3900")`), for tools and tests that must not
    /// read the process environment.
    pub fn with_options(url: BlobsUrl, options: &[(&str, &str)]) -> Result<Self, ObjectError> {
        let mut builder = AmazonS3Builder::new();
        for (name, value) in options {
            let key: AmazonS3ConfigKey =
                name.to_ascii_lowercase()
                    .parse()
                    .map_err(|e: object_store::Error| ObjectError::Config {
                        url: url.to_string(),
                        detail: e.to_string(),
                    })?;
            builder = builder.with_config(key, *value);
        }
        Self::build(builder, url)
    }

    fn build(builder: AmazonS3Builder, url: BlobsUrl) -> Result<Self, ObjectError> {
        let builder = builder
            .with_bucket_name(&url.bucket)
            .with_retry(object_store::RetryConfig {
                max_retries: 4,
                retry_timeout: std::time::Duration::from_secs(30),
                ..Default::default()
            });
        let key_id = builder
            .get_config_value(&AmazonS3ConfigKey::AccessKeyId)
            .unwrap_or_else(|| "(none)".into());
        let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
        let region = builder
            .get_config_value(&AmazonS3ConfigKey::Region)
            .unwrap_or_else(|| "us-east-1".into());
        let s3 = builder.build().map_err(|e| ObjectError::Config {
            url: url.to_string(),
            detail: e.to_string(),
        })?;
        Ok(Self {
            s3: Arc::new(s3),
            url,
            key_id,
            endpoint,
            region,
        })
    }

    /// The location, for messages.
    pub fn url(&self) -> &BlobsUrl {
        &self.url
    }

    fn key(&self, rest: &str) -> ObjPath {
        if self.url.prefix.is_empty() {
            ObjPath::from(rest)
        } else {
            ObjPath::from(format!("{}/{rest}", self.url.prefix))
        }
    }

    /// The key of a blob (or of its sidecar, `name` being the local file name).
    pub fn blob_key(&self, name: &str) -> ObjPath {
        self.key(&format!("blobs/{name}"))
    }

    fn blobs_dir(&self) -> ObjPath {
        self.key("blobs")
    }

    fn err(&self, e: object_store::Error) -> ObjectError {
        let text = e.to_string();
        match e {
            object_store::Error::NotFound { path, .. } => ObjectError::NotFound(path),
            object_store::Error::Unauthenticated { .. }
            | object_store::Error::PermissionDenied { .. } => ObjectError::Credentials {
                url: self.url.to_string(),
                key_id: self.key_id.clone(),
                detail: text,
            },
            _ => ObjectError::Unavailable {
                url: self.url.to_string(),
                detail: text,
            },
        }
    }

    /// Runs `fut` on the I/O runtime and waits for it from synchronous code.
    fn wait<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = Result<T, ObjectError>> + Send + 'static,
    ) -> Result<T, ObjectError> {
        match futures::executor::block_on(io_runtime().spawn(fut)) {
            Ok(r) => r,
            Err(e) => Err(ObjectError::Unavailable {
                url: self.url.to_string(),
                detail: format!("request task failed: {e}"),
            }),
        }
    }

    /// Runs `fut` on the I/O runtime from async code.
    async fn run<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = Result<T, ObjectError>> + Send + 'static,
    ) -> Result<T, ObjectError> {
        match io_runtime().spawn(fut).await {
            Ok(r) => r,
            Err(e) => Err(ObjectError::Unavailable {
                url: self.url.to_string(),
                detail: format!("request task failed: {e}"),
            }),
        }
    }

    /// Checks that the bucket answers with these credentials.
    pub async fn check(&self) -> Result<(), ObjectError> {
        let me = self.clone();
        self.run(async move {
            // A HEAD, whose errors carry their status (a listing's do not), so refused
            // credentials are told apart from an unreachable store.
            match me.s3.head(&me.key("lock")).await {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(me.err(e)),
            }
        })
        .await
    }

    /// Uploads the finished local file `local` as `blobs/{name}`. Files of more than one part
    /// go up as a multipart upload, which the store shows under its name only once complete;
    /// a failed upload is aborted. Memory stays at a few parts whatever the file size.
    pub async fn upload_file(&self, local: &Path, name: &str) -> Result<(), ObjectError> {
        let me = self.clone();
        let local = local.to_path_buf();
        let key = self.blob_key(name);
        self.run(async move { me.upload_inner(&local, key).await })
            .await
    }

    async fn upload_inner(&self, local: &Path, key: ObjPath) -> Result<(), ObjectError> {
        use tokio::io::AsyncReadExt;
        let io = |context: &str, source| ObjectError::Io {
            context: format!("{context} {}", local.display()),
            source,
        };
        let mut f = tokio::fs::File::open(local)
            .await
            .map_err(|e| io("opening", e))?;
        let len = f.metadata().await.map_err(|e| io("reading", e))?.len();
        if len <= PART_SIZE as u64 {
            let mut buf = Vec::with_capacity(len as usize);
            f.read_to_end(&mut buf)
                .await
                .map_err(|e| io("reading", e))?;
            self.s3
                .put(&key, Bytes::from(buf).into())
                .await
                .map_err(|e| self.err(e))?;
            return Ok(());
        }
        let upload = self.s3.put_multipart(&key).await.map_err(|e| self.err(e))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let sent = async {
            loop {
                let mut buf = Vec::with_capacity(PART_SIZE);
                let n = (&mut f)
                    .take(PART_SIZE as u64)
                    .read_to_end(&mut buf)
                    .await
                    .map_err(|e| io("reading", e))?;
                if n == 0 {
                    return Ok(());
                }
                w.wait_for_capacity(UPLOAD_CONCURRENCY)
                    .await
                    .map_err(|e| self.err(e))?;
                w.put(Bytes::from(buf));
                stall_for_tests().await;
            }
        }
        .await;
        match sent {
            Ok(()) => w.finish().await.map(drop).map_err(|e| self.err(e)),
            Err(e) => {
                if let Err(abort) = w.abort().await {
                    tracing::warn!(error = %abort, "could not abort a failed multipart upload");
                }
                Err(e)
            }
        }
    }

    /// `len` bytes of `blobs/{name}` from `offset`, fewer if the object ends first. Blocking.
    pub fn read_range(&self, name: &str, offset: u64, len: u64) -> Result<Bytes, ObjectError> {
        let me = self.clone();
        let key = self.blob_key(name);
        self.wait(async move {
            me.s3
                .get_range(&key, offset..offset + len)
                .await
                .map_err(|e| me.err(e))
        })
    }

    /// Downloads `blobs/{name}` into the local file `dest` (created or truncated).
    pub async fn download(&self, name: &str, dest: &Path) -> Result<u64, ObjectError> {
        let me = self.clone();
        let key = self.blob_key(name);
        let dest = dest.to_path_buf();
        self.run(async move {
            use tokio::io::AsyncWriteExt;
            let io = |source| ObjectError::Io {
                context: format!("writing {}", dest.display()),
                source,
            };
            let got = me.s3.get(&key).await.map_err(|e| me.err(e))?;
            let mut body = got.into_stream();
            let mut f = tokio::fs::File::create(&dest).await.map_err(io)?;
            let mut n = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| me.err(e))?;
                n += chunk.len() as u64;
                f.write_all(&chunk).await.map_err(io)?;
            }
            f.sync_all().await.map_err(io)?;
            Ok(n)
        })
        .await
    }

    /// The names (after `blobs/`) of every object under the prefix's `blobs/`.
    pub async fn list_blobs(&self) -> Result<Vec<(String, u64)>, ObjectError> {
        let me = self.clone();
        self.run(async move {
            let dir = me.blobs_dir();
            let mut out = Vec::new();
            let mut list = me.s3.list(Some(&dir));
            while let Some(item) = list.next().await {
                let meta = item.map_err(|e| me.err(e))?;
                if let Some(name) = meta.location.filename() {
                    out.push((name.to_owned(), meta.size));
                }
            }
            Ok(out)
        })
        .await
    }

    /// Deletes `blobs/{name}`; a missing object is not an error.
    pub async fn delete(&self, name: &str) -> Result<(), ObjectError> {
        let me = self.clone();
        let key = self.blob_key(name);
        self.run(async move {
            match me.s3.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(me.err(e)),
            }
        })
        .await
    }

    /// Moves `blobs/{name}` to `quarantine/{name}.{suffix}`, kept for inspection.
    pub async fn quarantine(&self, name: &str, suffix: u64) -> Result<(), ObjectError> {
        let me = self.clone();
        let from = self.blob_key(name);
        let to = self.key(&format!("quarantine/{name}.{suffix}"));
        self.run(async move {
            match me.s3.copy(&from, &to).await {
                Ok(()) => {}
                Err(object_store::Error::NotFound { .. }) => return Ok(()),
                Err(e) => return Err(me.err(e)),
            }
            match me.s3.delete(&from).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(me.err(e)),
            }
        })
        .await
    }

    /// Multipart uploads under the prefix that were started and never completed or aborted:
    /// (key, upload id).
    pub async fn incomplete_uploads(&self) -> Result<Vec<(String, String)>, ObjectError> {
        let me = self.clone();
        self.run(async move { me.list_uploads().await }).await
    }

    /// [`incomplete_uploads`](Self::incomplete_uploads) for synchronous callers.
    pub fn incomplete_uploads_blocking(&self) -> Result<Vec<(String, String)>, ObjectError> {
        futures::executor::block_on(self.incomplete_uploads())
    }

    /// [`list_blobs`](Self::list_blobs) for synchronous callers.
    pub fn list_blobs_blocking(&self) -> Result<Vec<(String, u64)>, ObjectError> {
        futures::executor::block_on(self.list_blobs())
    }

    /// Aborts every incomplete multipart upload under the prefix. Only one node writes under a
    /// prefix, so at start (nothing in flight yet) and under GC's exclusive lock every one of
    /// them is a leftover of a failed or killed import. Returns how many were aborted.
    pub async fn abort_incomplete_uploads(&self) -> Result<usize, ObjectError> {
        let me = self.clone();
        self.run(async move {
            let uploads = me.list_uploads().await?;
            for (key, id) in &uploads {
                tracing::warn!(key, "aborting an incomplete multipart upload");
                match me
                    .s3
                    .abort_multipart(&ObjPath::from(key.as_str()), id)
                    .await
                {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(me.err(e)),
                }
            }
            Ok(uploads.len())
        })
        .await
    }

    /// ListMultipartUploads, which `object_store` does not offer: a request signed with the
    /// client's own credentials and parsed here.
    async fn list_uploads(&self) -> Result<Vec<(String, String)>, ObjectError> {
        let unavailable = |detail: String| ObjectError::Unavailable {
            url: self.url.to_string(),
            detail,
        };
        let cred = self
            .s3
            .credentials()
            .get_credential()
            .await
            .map_err(|e| self.err(e))?;
        let base = match &self.endpoint {
            Some(e) => format!("{}/{}", e.trim_end_matches('/'), self.url.bucket),
            None => format!(
                "https://{}.s3.{}.amazonaws.com",
                self.url.bucket, self.region
            ),
        };
        let prefix = if self.url.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.url.prefix)
        };
        let mut out = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut query = vec![("prefix", prefix.clone())];
            if let Some((k, u)) = &markers {
                query.push(("key-marker", k.clone()));
                query.push(("upload-id-marker", u.clone()));
            }
            let qs: String = query
                .iter()
                .map(|(k, v)| format!("&{k}={}", uri_encode(v)))
                .collect();
            let uri = format!("{base}?uploads={qs}");
            let mut req = http::Request::builder()
                .method(http::Method::GET)
                .uri(&uri)
                .body(object_store::client::HttpRequestBody::from(Vec::<u8>::new()))
                .map_err(|e| unavailable(e.to_string()))?;
            AwsAuthorizer::new(&cred, "s3", &self.region)
                .try_authorize(&mut req, None)
                .map_err(|e| unavailable(e.to_string()))?;
            let client = reqwest::Client::new();
            let mut call = client.get(&uri);
            for (name, value) in req.headers() {
                call = call.header(name.as_str(), value.as_bytes());
            }
            let resp = call
                .send()
                .await
                .map_err(|e| unavailable(format!("listing multipart uploads: {e}")))?;
            let status = resp.status();
            let body = resp
                .text()
                .await
                .map_err(|e| unavailable(format!("listing multipart uploads: {e}")))?;
            if status.as_u16() == 401 || status.as_u16() == 403 {
                return Err(ObjectError::Credentials {
                    url: self.url.to_string(),
                    key_id: self.key_id.clone(),
                    detail: format!("listing multipart uploads: {status}"),
                });
            }
            if !status.is_success() {
                return Err(unavailable(format!(
                    "listing multipart uploads: {status}: {body}"
                )));
            }
            for upload in xml_elements(&body, "Upload") {
                if let (Some(k), Some(u)) = (
                    xml_elements(upload, "Key").next(),
                    xml_elements(upload, "UploadId").next(),
                ) {
                    out.push((xml_unescape(k), xml_unescape(u)));
                }
            }
            let truncated = xml_elements(&body, "IsTruncated").next() == Some("true");
            let next = (
                xml_elements(&body, "NextKeyMarker").next(),
                xml_elements(&body, "NextUploadIdMarker").next(),
            );
            match (truncated, next) {
                (true, (Some(k), Some(u))) => markers = Some((xml_unescape(k), xml_unescape(u))),
                _ => return Ok(out),
            }
        }
    }
}

/// The contents of each `<tag>…</tag>` in `xml`, in order (no nesting of the same tag).
fn xml_elements<'a>(xml: &'a str, tag: &str) -> impl Iterator<Item = &'a str> + 'a {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let len = rest[start..].find(&close)?;
        let inner = &rest[start..start + len];
        rest = &rest[start + len + close.len()..];
        Some(inner)
    })
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Percent-encodes a query value the way SigV4 canonicalises it.
fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Test builds only: `SHUBNET_FAULT_STALL_UPLOAD=1` holds every multipart upload after its first
/// part, so a test can kill the node while an upload is incomplete.
#[cfg(feature = "fault-injection")]
async fn stall_for_tests() {
    if std::env::var_os("SHUBNET_FAULT_STALL_UPLOAD").is_some() {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
}

#[cfg(not(feature = "fault-injection"))]
async fn stall_for_tests() {}

/// How long a writer's lock lasts without renewal.
pub const LEASE_SECS: u64 = 60;

impl ObjectBlobs {
    fn lock_key(&self) -> ObjPath {
        self.key("lock")
    }

    /// The lock object's owner and lease end (unix seconds), if there is one.
    async fn read_lock(&self) -> Result<Option<(String, u64)>, ObjectError> {
        match self.s3.get(&self.lock_key()).await {
            Ok(got) => {
                let bytes = got.bytes().await.map_err(|e| self.err(e))?;
                let text = String::from_utf8_lossy(&bytes);
                let mut owner = None;
                let mut until = None;
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("owner=") {
                        owner = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("until=") {
                        until = v.parse().ok();
                    }
                }
                Ok(Some((owner.unwrap_or_default(), until.unwrap_or(0))))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    async fn write_lock(&self, owner: &str) -> Result<(), ObjectError> {
        let until = crate::clock::unix_now() + LEASE_SECS;
        let body = format!(
            "owner={owner}
until={until}
"
        );
        self.s3
            .put(&self.lock_key(), Bytes::from(body).into())
            .await
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Takes the prefix's writer lock for `owner` (a node restarted with the same identity takes
    /// its own lock back at once), or says who holds it. The lease is then renewed in the
    /// background for the process's life.
    pub async fn acquire_lock(&self, owner: &str) -> Result<(), ObjectError> {
        let me = self.clone();
        let owner = owner.to_owned();
        self.run(async move {
            let now = crate::clock::unix_now();
            if let Some((held_by, until)) = me.read_lock().await?
                && held_by != owner
                && until > now
            {
                return Err(ObjectError::Locked {
                    url: me.url.to_string(),
                    owner: held_by,
                    expires_in_secs: until - now,
                });
            }
            me.write_lock(&owner).await?;
            // Two nodes starting together: the later write wins, the other sees it here.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            if let Some((held_by, until)) = me.read_lock().await?
                && held_by != owner
            {
                return Err(ObjectError::Locked {
                    url: me.url.to_string(),
                    owner: held_by,
                    expires_in_secs: until.saturating_sub(crate::clock::unix_now()),
                });
            }
            let renew = me.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(LEASE_SECS / 3)).await;
                    if let Err(e) = renew.write_lock(&owner).await {
                        tracing::warn!(error = %e, "could not renew the prefix's writer lock");
                    }
                }
            });
            Ok(())
        })
        .await
    }
}

/// The name a blob (or its sidecar) has in the bucket.
pub fn blob_name(root: &Cid) -> String {
    root.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        let u: BlobsUrl = "s3://bucket/a/b/".parse().expect("parses");
        assert_eq!(u.bucket, "bucket");
        assert_eq!(u.prefix, "a/b");
        let u: BlobsUrl = "s3://bucket".parse().expect("parses");
        assert_eq!(u.prefix, "");
        assert!(matches!(
            "gs://x/y".parse::<BlobsUrl>(),
            Err(BlobsUrlError::Scheme(_))
        ));
        assert!(matches!(
            "s3:///y".parse::<BlobsUrl>(),
            Err(BlobsUrlError::NoBucket(_))
        ));
    }

    #[test]
    fn upload_listing_parses() {
        let xml = "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>\
            <Upload><Key>p/blobs/a&amp;b</Key><UploadId>u1</UploadId></Upload>\
            <Upload><Key>p/blobs/c</Key><UploadId>u2</UploadId></Upload></ListMultipartUploadsResult>";
        let got: Vec<_> = xml_elements(xml, "Upload")
            .map(|u| {
                (
                    xml_unescape(xml_elements(u, "Key").next().unwrap_or_default()),
                    xml_elements(u, "UploadId")
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("p/blobs/a&b".to_owned(), "u1".to_owned()),
                ("p/blobs/c".to_owned(), "u2".to_owned())
            ]
        );
    }
}
