//! A versioned bucket for the tests: an `s3s::S3` over `s3s_fs::FileSystem` that, like a
//! versioned S3 bucket, keeps an overwritten or deleted object as a noncurrent version (a file
//! of the side directory `<root>/.versions/`, under the server's directory, named
//! `<n>-<the key's last part>`), adds delete
//! markers, and answers GetBucketVersioning, ListObjectVersions (paged) and DeleteObject with
//! a `versionId`. Attacks: refusing GetBucketVersioning or version deletions (AccessDenied),
//! or answering a version deletion with success and keeping the version.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};

/// The bucket's versioning, as the test sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Never enabled: GetBucketVersioning answers no `Status`; DELETE removes the file.
    Never,
    Enabled,
    Suspended,
}

/// A noncurrent version or a delete marker.
struct Old {
    id: String,
    /// The kept bytes (`None`: a delete marker).
    file: Option<PathBuf>,
}

struct State {
    mode: Mode,
    refuse_get_versioning: bool,
    refuse_version_deletes: bool,
    ignore_version_deletes: bool,
    /// At most this many entries per ListObjectVersions page, whatever is asked.
    page: usize,
    next_id: u64,
    /// Per key: the version id of its current object, when it was written versioned.
    current: HashMap<String, String>,
    /// Per key: its noncurrent versions and delete markers, oldest first.
    older: BTreeMap<String, Vec<Old>>,
    list_requests: u64,
    version_deletes: u64,
}

/// The test's handle on the bucket's behaviour and counters.
#[derive(Clone)]
pub struct Versions(Arc<Mutex<State>>);

impl Versions {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().expect("the versioned bucket's state")
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state().mode = mode;
    }

    /// GetBucketVersioning answered 403 AccessDenied.
    pub fn refuse_get_versioning(&self, refuse: bool) {
        self.state().refuse_get_versioning = refuse;
    }

    /// DeleteObject with a `versionId` answered 403 AccessDenied (no s3:DeleteObjectVersion,
    /// or an object lock).
    pub fn refuse_version_deletes(&self, refuse: bool) {
        self.state().refuse_version_deletes = refuse;
    }

    /// DeleteObject with a `versionId` answered 204, the version kept.
    pub fn ignore_version_deletes(&self, ignore: bool) {
        self.state().ignore_version_deletes = ignore;
    }

    /// ListObjectVersions pages of at most `entries`.
    pub fn set_page(&self, entries: usize) {
        self.state().page = entries.max(1);
    }

    /// Noncurrent versions and delete markers held, all keys.
    pub fn old_versions(&self) -> usize {
        self.state().older.values().map(Vec::len).sum()
    }

    pub fn list_requests(&self) -> u64 {
        self.state().list_requests
    }

    pub fn version_deletes(&self) -> u64 {
        self.state().version_deletes
    }
}

/// The S3 server: s3s-fs under the versioning above.
pub struct VersionedFs {
    fs: s3s_fs::FileSystem,
    root: PathBuf,
    versions: Versions,
    /// One mutating request at a time (a version is moved aside, then the file written).
    op: tokio::sync::Mutex<()>,
}

impl VersionedFs {
    pub fn new(root: &Path, mode: Mode) -> (VersionedFs, Versions) {
        let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs over a directory");
        let versions = Versions(Arc::new(Mutex::new(State {
            mode,
            refuse_get_versioning: false,
            refuse_version_deletes: false,
            ignore_version_deletes: false,
            page: 1000,
            next_id: 0,
            current: HashMap::new(),
            older: BTreeMap::new(),
            list_requests: 0,
            version_deletes: 0,
        })));
        let server = VersionedFs {
            fs,
            root: root.to_path_buf(),
            versions: versions.clone(),
            op: tokio::sync::Mutex::new(()),
        };
        (server, versions)
    }

    fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(key)
    }

    fn side_dir(&self) -> PathBuf {
        self.root.join(".versions")
    }

    /// Moves the current object of `key` aside as a noncurrent version, or removes it when
    /// the bucket is suspended and it is the `null` version (which the next write replaces).
    fn retire_current(&self, state: &mut State, bucket: &str, key: &str) {
        let path = self.object_path(bucket, key);
        if !path.is_file() {
            return;
        }
        let id = state
            .current
            .remove(key)
            .unwrap_or_else(|| "null".to_owned());
        if state.mode == Mode::Suspended && id == "null" {
            std::fs::remove_file(&path).expect("the null version is replaced");
            return;
        }
        std::fs::create_dir_all(self.side_dir()).expect("the side directory");
        state.next_id += 1;
        // Named after the key's last part, so that a search decodes it as the key's kind.
        let name = key.rsplit('/').next().unwrap_or(key);
        let kept = self.side_dir().join(format!("{:08}-{name}", state.next_id));
        std::fs::rename(&path, &kept).expect("a version moved aside");
        state.older.entry(key.to_owned()).or_default().push(Old {
            id,
            file: Some(kept),
        });
    }

    /// A suspended bucket's write replaces the key's `null` version or marker.
    fn drop_null(state: &mut State, key: &str) {
        if let Some(old) = state.older.get_mut(key) {
            old.retain(|o| {
                let replaced = o.id == "null";
                if let (true, Some(f)) = (replaced, &o.file) {
                    let _ = std::fs::remove_file(f);
                }
                !replaced
            });
        }
    }

    fn new_id(state: &mut State) -> String {
        state.next_id += 1;
        format!("v{:08}.{}", state.next_id, state.next_id * 7919 % 1000)
    }

    /// DeleteObject of `key` on a bucket that is or was versioned (`version_id`: of one
    /// version): the answer's version id and delete-marker flag.
    fn delete_one(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<String>,
    ) -> S3Result<(Option<String>, Option<bool>)> {
        let path = self.object_path(bucket, key);
        let mut state = self.versions.state();
        let Some(id) = version_id else {
            let mode = state.mode;
            self.retire_current(&mut state, bucket, key);
            if mode == Mode::Suspended {
                Self::drop_null(&mut state, key);
            }
            let id = match mode {
                Mode::Enabled => Self::new_id(&mut state),
                _ => "null".to_owned(),
            };
            state.older.entry(key.to_owned()).or_default().push(Old {
                id: id.clone(),
                file: None,
            });
            return Ok((Some(id), Some(true)));
        };
        if state.refuse_version_deletes {
            return Err(s3_error!(
                AccessDenied,
                "s3:DeleteObjectVersion is not allowed on this bucket"
            ));
        }
        state.version_deletes += 1;
        if state.ignore_version_deletes {
            return Ok((Some(id), None));
        }
        let current = state
            .current
            .get(key)
            .cloned()
            .unwrap_or_else(|| "null".to_owned());
        let mut marker = None;
        if path.is_file() && current == id {
            std::fs::remove_file(&path).expect("the current version removed");
            state.current.remove(key);
            // The newest older version, if bytes, becomes current again.
            let older = state.older.entry(key.to_owned()).or_default();
            if older.last().is_some_and(|o| o.file.is_some()) {
                let back = older.pop().expect("checked");
                std::fs::rename(back.file.expect("checked"), &path)
                    .expect("a version made current");
                state.current.insert(key.to_owned(), back.id);
            }
        } else if let Some(older) = state.older.get_mut(key) {
            if let Some(at) = older.iter().position(|o| o.id == id) {
                let gone = older.remove(at);
                marker = Some(gone.file.is_none());
                if let Some(f) = gone.file {
                    std::fs::remove_file(f).expect("a version removed");
                }
            }
        }
        if state.older.get(key).is_some_and(Vec::is_empty) {
            state.older.remove(key);
        }
        Ok((Some(id), marker))
    }

    /// Every object file of the bucket (recursively), as keys.
    fn current_keys(&self, bucket: &str) -> Vec<(String, i64)> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, i64)>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let path = e.path();
                if path.is_dir() {
                    walk(&path, base, out);
                } else if let Ok(rel) = path.strip_prefix(base) {
                    let key = rel.to_string_lossy().replace('\\', "/");
                    let size = e.metadata().map_or(0, |m| m.len() as i64);
                    out.push((key, size));
                }
            }
        }
        let base = self.root.join(bucket);
        let mut out = Vec::new();
        walk(&base, &base, &mut out);
        out
    }
}

#[async_trait::async_trait]
impl S3 for VersionedFs {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.fs.create_bucket(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.fs.head_bucket(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.fs.get_bucket_location(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        if req.input.version_id.is_some() {
            return Err(s3_error!(NotImplemented, "GET of a version"));
        }
        self.fs.get_object(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.fs.head_object(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.fs.list_objects(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.fs.list_objects_v2(req).await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let _op = self.op.lock().await;
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let mode = self.versions.state().mode;
        if mode == Mode::Never {
            return self.fs.put_object(req).await;
        }
        {
            let mut state = self.versions.state();
            self.retire_current(&mut state, &bucket, &key);
            if mode == Mode::Suspended {
                Self::drop_null(&mut state, &key);
            }
        }
        let mut out = self.fs.put_object(req).await?;
        let mut state = self.versions.state();
        let id = match mode {
            Mode::Enabled => Self::new_id(&mut state),
            _ => "null".to_owned(),
        };
        state.current.insert(key, id.clone());
        out.output.version_id = Some(id);
        Ok(out)
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let _op = self.op.lock().await;
        let mode = self.versions.state().mode;
        if mode == Mode::Never && req.input.version_id.is_none() {
            return self.fs.delete_object(req).await;
        }
        let input = &req.input;
        let (version_id, delete_marker) =
            self.delete_one(&input.bucket, &input.key, input.version_id.clone())?;
        Ok(S3Response::new(DeleteObjectOutput {
            version_id,
            delete_marker,
            ..DeleteObjectOutput::default()
        }))
    }

    /// `object_store`'s DELETE: each object as DeleteObject does, refusals as errors in the
    /// answer.
    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let _op = self.op.lock().await;
        let mode = self.versions.state().mode;
        let versioned_ids = req
            .input
            .delete
            .objects
            .iter()
            .any(|o| o.version_id.is_some());
        if mode == Mode::Never && !versioned_ids {
            return self.fs.delete_objects(req).await;
        }
        let (mut deleted, mut errors) = (Vec::new(), Vec::new());
        for o in &req.input.delete.objects {
            match self.delete_one(&req.input.bucket, &o.key, o.version_id.clone()) {
                Ok((version_id, delete_marker)) => deleted.push(DeletedObject {
                    key: Some(o.key.clone()),
                    delete_marker_version_id: delete_marker.filter(|m| *m).and(version_id.clone()),
                    version_id,
                    delete_marker,
                }),
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_owned()),
                    key: Some(o.key.clone()),
                    message: e.message().map(str::to_owned),
                    version_id: o.version_id.clone(),
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: Some(errors),
            ..DeleteObjectsOutput::default()
        }))
    }

    async fn get_bucket_versioning(
        &self,
        _req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let state = self.versions.state();
        if state.refuse_get_versioning {
            return Err(s3_error!(
                AccessDenied,
                "s3:GetBucketVersioning is not allowed"
            ));
        }
        let status = match state.mode {
            Mode::Never => None,
            Mode::Enabled => Some(BucketVersioningStatus::from_static(
                BucketVersioningStatus::ENABLED,
            )),
            Mode::Suspended => Some(BucketVersioningStatus::from_static(
                BucketVersioningStatus::SUSPENDED,
            )),
        };
        Ok(S3Response::new(GetBucketVersioningOutput {
            status,
            ..GetBucketVersioningOutput::default()
        }))
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let _op = self.op.lock().await;
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let mut state = self.versions.state();
        state.list_requests += 1;
        // Every entry, by key then newest first: (key, id, delete marker, latest, size).
        let mut by_key: BTreeMap<String, Vec<(String, bool, i64)>> = BTreeMap::new();
        for (key, size) in self.current_keys(&input.bucket) {
            if key.starts_with(&prefix) {
                let id = state
                    .current
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| "null".to_owned());
                by_key.entry(key).or_default().push((id, false, size));
            }
        }
        for (key, old) in &state.older {
            if key.starts_with(&prefix) {
                let entries = by_key.entry(key.clone()).or_default();
                for o in old.iter().rev() {
                    let size = o
                        .file
                        .as_ref()
                        .and_then(|f| std::fs::metadata(f).ok())
                        .map_or(0, |m| m.len() as i64);
                    entries.push((o.id.clone(), o.file.is_none(), size));
                }
            }
        }
        let all: Vec<(String, String, bool, bool, i64)> = by_key
            .into_iter()
            .flat_map(|(key, entries)| {
                entries
                    .into_iter()
                    .enumerate()
                    .map(move |(i, (id, marker, size))| (key.clone(), id, marker, i == 0, size))
            })
            .collect();
        let start = match (&input.key_marker, &input.version_id_marker) {
            (Some(k), Some(v)) if !v.is_empty() => all
                .iter()
                .position(|e| &e.0 == k && &e.1 == v)
                .map_or(all.len(), |p| p + 1),
            (Some(k), _) => all.iter().position(|e| &e.0 > k).unwrap_or(all.len()),
            (None, _) => 0,
        };
        let max = (input.max_keys.unwrap_or(1000).max(1) as usize).min(state.page);
        let page: Vec<_> = all[start..].iter().take(max).cloned().collect();
        let truncated = start + page.len() < all.len();
        let mut out = ListObjectVersionsOutput {
            name: Some(input.bucket.clone()),
            prefix: input.prefix.clone(),
            key_marker: input.key_marker.clone(),
            version_id_marker: input.version_id_marker.clone(),
            max_keys: input.max_keys,
            is_truncated: Some(truncated),
            ..ListObjectVersionsOutput::default()
        };
        if truncated {
            let last = page.last().expect("a truncated page is not empty");
            out.next_key_marker = Some(last.0.clone());
            out.next_version_id_marker = Some(last.1.clone());
        }
        let (mut versions, mut markers) = (Vec::new(), Vec::new());
        for (key, id, marker, latest, size) in page {
            if marker {
                markers.push(DeleteMarkerEntry {
                    key: Some(key),
                    version_id: Some(id),
                    is_latest: Some(latest),
                    ..DeleteMarkerEntry::default()
                });
            } else {
                versions.push(ObjectVersion {
                    key: Some(key),
                    version_id: Some(id),
                    is_latest: Some(latest),
                    size: Some(size),
                    ..ObjectVersion::default()
                });
            }
        }
        out.versions = Some(versions);
        out.delete_markers = Some(markers);
        Ok(S3Response::new(out))
    }
}
