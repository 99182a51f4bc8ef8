//! Files, directories and Maildirs: e-mail, chat, call and social exports on disk.
//!
//! Each file has a checkpoint (size, mtime, resume offset, a hash of its first 4 KiB). An
//! unchanged file is skipped; an append-only file (mbox, NDJSON, twcs CSV) that grew is
//! resumed at the offset after its last stored unit; any other changed file is read again,
//! and JetStream's duplicate window drops what was already stored.
//!
//! Memory stays bounded by the parse window, not the file: splittable files (mbox, NDJSON)
//! are read from the resume offset a window at a time; other files are read whole, up to
//! `ingest.max_file_bytes`.
//!
//! A watched file may be caught mid-write. With a settle time (the daemon), a file modified
//! more recently than that is treated as unfinished: a whole document waits for the next
//! scan, and an append-only file's last unit is held back when it may be incomplete.

use std::collections::HashMap;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use futures::future::BoxFuture;
use rapport_connectors::{Format, detect, interactions};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tracing::{debug, info, warn};

use crate::bus::{BusError, Published};
use crate::checkpoint::Checkpoints;
use crate::sources::context::{CommitBatch, SourceContext};
use crate::sources::emit::{emit_unit, parse_guarded};
use crate::sources::kind::{BuiltSource, SourceKind, Tested, Verdict};
use crate::sources::run::{Pass, Source, SourceError};
use crate::sources::sink::Sink;

/// Interactions handed to the sink between two commits (and checkpoint writes).
const COMMIT_EVERY: usize = 8192;
/// Bytes of a splittable file parsed at a time (then cut at the next unit boundary).
const PARSE_WINDOW: usize = 8 << 20;
/// The head hash that recognises a rewritten file covers this many bytes.
const HEAD_BYTES: usize = 4096;
/// Bytes read to detect a file's format (JSON documents larger than this are read whole).
const DETECT_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How a directory is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Any files below the path; `None` detects each file's format from its content.
    Files(Option<Format>),
    /// A Maildir: messages in `new/` and `cur/`, keyed by their unique name so that a
    /// message moving from new/ to cur/ (read by a mail client) is not read twice.
    Maildir,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileCheckpoint {
    pub source: String,
    pub size: u64,
    pub mtime_ns: i128,
    /// Byte offset after the last unit whose interactions are stored.
    pub offset: u64,
    /// Hash of the first 4 KiB: a rotated or rewritten file starts over.
    pub head: String,
    pub complete: bool,
}

/// What one scan did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ScanReport {
    pub files_read: u64,
    pub files_unchanged: u64,
    pub units: u64,
    pub interactions: u64,
    pub stored: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

impl ScanReport {
    fn add_published(&mut self, p: Published) {
        self.stored += p.stored;
        self.duplicates += p.duplicates;
    }
}

/// Progress callback: (bytes done, bytes total) over the files this scan reads.
pub type Progress<'a> = &'a mut (dyn FnMut(u64, u64) + Send);

pub struct FileReader {
    cx: SourceContext,
    root: PathBuf,
    layout: Layout,
    checkpoints_by_key: HashMap<String, FileCheckpoint>,
    loaded: bool,
    /// See [`FileReader::settle`].
    settle: Option<Duration>,
    parse_window: usize,
    poll_interval: Duration,
}

impl FileReader {
    /// Reads `root` with `cx`'s parse settings; source and time are set per file.
    pub fn new(cx: SourceContext, root: PathBuf, layout: Layout) -> Self {
        let layout = match layout {
            Layout::Files(Some(Format::Maildir)) => Layout::Maildir,
            Layout::Files(None) if is_maildir(&root) => Layout::Maildir,
            other => other,
        };
        FileReader {
            cx,
            root,
            layout,
            checkpoints_by_key: HashMap::new(),
            loaded: false,
            settle: None,
            parse_window: PARSE_WINDOW,
            poll_interval: Duration::from_secs(1),
        }
    }

    /// Files modified within `settle` may still be being written (see the module doc).
    /// One-off imports leave it unset: what is there is read.
    pub fn settle(mut self, settle: Duration) -> Self {
        self.settle = Some(settle);
        self
    }

    /// Bytes of a splittable file parsed at a time (default 8 MiB).
    pub fn parse_window(mut self, bytes: usize) -> Self {
        self.parse_window = bytes.max(1);
        self
    }

    /// How long a running connector waits between scans (default 1 s).
    pub fn poll_every(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// A scan ends early, at the next file or commit, once the context's shutdown comes.
    fn stopping(&self) -> bool {
        self.cx.shutdown.requested()
    }

    /// Reads every new or changed file once. A file that cannot be read is recorded and
    /// left for the next scan; only a failing bus ends the scan with an error.
    pub async fn scan(
        &mut self,
        sink: &mut Sink,
        progress: Progress<'_>,
    ) -> Result<ScanReport, IngestError> {
        if !self.loaded {
            if let Some(checkpoints) = &self.cx.checkpoints {
                let prefix = Checkpoints::prefix(&self.cx.name);
                self.checkpoints_by_key = checkpoints.load_prefix(&prefix).await?;
            }
            self.loaded = true;
        }
        let (root, layout) = (self.root.clone(), self.layout);
        let files = tokio::task::spawn_blocking(move || list_files(&root, layout))
            .await
            .expect("directory listing thread panicked")?;
        let mut report = ScanReport::default();
        let mut pending = Vec::new();
        for path in files {
            let meta = match std::fs::metadata(&path) {
                Ok(meta) => meta,
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "file vanished before it was read");
                    continue;
                }
            };
            let key = self.checkpoint_key(&path);
            let mtime_ns = mtime_ns(&meta);
            match self.checkpoints_by_key.get(&key) {
                Some(cp) if cp.complete && cp.size == meta.len() && cp.mtime_ns == mtime_ns => {
                    report.files_unchanged += 1;
                }
                _ => pending.push((path, key, meta.len(), mtime_ns)),
            }
        }
        let total: u64 = pending.iter().map(|(_, _, size, _)| size).sum();
        let mut done = 0;
        progress(0, total);
        for (path, key, size, mtime_ns) in pending {
            if self.stopping() {
                break;
            }
            let file = FileAtScan {
                source: path.display().to_string(),
                path,
                key,
                size,
                mtime_ns,
            };
            match self.read_file(&file, sink, &mut report).await {
                Ok(()) => {}
                Err(IngestError::Io { path, source }) => {
                    // The file changed under us or cannot be read: next scan tries again.
                    warn!(path = %path.display(), error = %source, "file read failed; retrying next scan");
                    self.cx
                        .counters
                        .record_error(format!("{}: {source}", path.display()));
                }
                Err(e) => return Err(e),
            }
            done += size;
            progress(done, total);
        }
        Ok(report)
    }

    async fn read_file(
        &mut self,
        file: &FileAtScan,
        sink: &mut Sink,
        report: &mut ScanReport,
    ) -> Result<(), IngestError> {
        let io = |source| IngestError::Io {
            path: file.path.clone(),
            source,
        };
        let (source, size) = (&file.source, file.size);
        let recently_written = self.settle.is_some_and(|settle| {
            let age = OffsetDateTime::now_utc().unix_timestamp_nanos() - file.mtime_ns;
            age < settle.as_nanos() as i128
        });
        let mut handle = match tokio::fs::File::open(&file.path).await {
            Ok(handle) => handle,
            Err(e) => {
                self.reject_file(
                    file,
                    None,
                    format!("cannot read file: {e}"),
                    Bytes::new(),
                    sink,
                    report,
                )
                .await?;
                return Ok(());
            }
        };
        report.files_read += 1;
        let head = read_range(&mut handle, 0, size.min(DETECT_BYTES as u64) as usize)
            .await
            .map_err(io)?;
        let mut whole: Option<Bytes> = (head.len() as u64 == size).then(|| head.clone());
        let mut format = match self.layout {
            Layout::Maildir => Some(Format::Eml),
            Layout::Files(Some(format)) => Some(format),
            Layout::Files(None) => detect(&file.path, &head),
        };
        // A large JSON document tells its shape only by keys that may come late.
        if format.is_none() && whole.is_none() && size <= self.cx.template.max_file_bytes as u64 {
            let bytes = read_range(&mut handle, 0, size as usize)
                .await
                .map_err(io)?;
            format = detect(&file.path, &bytes);
            whole = Some(bytes);
        }
        let Some(format) = format else {
            if recently_written {
                return Ok(()); // perhaps a file still being written: look again next scan
            }
            let reason = "unrecognised format: not an e-mail, mbox, chat/call/social JSON, WebVTT, SRT or twcs CSV (set the connector's format to force one)";
            self.reject_file(file, Some(0), reason.into(), head.clone(), sink, report)
                .await?;
            return self.save_complete(file, &head).await.map_err(Into::into);
        };
        if recently_written && !format.is_append_only() {
            debug!(source = %source, "modified moments ago; read when it has settled");
            return Ok(());
        }
        let splits = format.splits(&head);
        if !splits && whole.is_none() && size > self.cx.template.max_file_bytes as u64 {
            let reason = format!(
                "too large: {size} bytes, over the cap of {} bytes (ingest.max_file_bytes)",
                self.cx.template.max_file_bytes
            );
            self.reject_file(file, Some(0), reason, head.clone(), sink, report)
                .await?;
            return self.save_complete(file, &head).await.map_err(Into::into);
        }
        // The head hash covers the bytes the checkpointed file had (up to 4 KiB), so a file
        // that grew still matches and one that was rewritten does not.
        let resume = match self.checkpoints_by_key.get(&file.key) {
            Some(cp)
                if format.is_append_only()
                    && cp.offset <= size
                    && cp.size <= size
                    && cp.head == head_hash(&head[..(cp.size as usize).min(head.len())]) =>
            {
                cp.offset
            }
            _ => 0,
        };
        let modified = OffsetDateTime::from_unix_timestamp_nanos(file.mtime_ns)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let mut ctx = self.cx.parse_context(source, modified);
        if splits && matches!(format, Format::ChatJson | Format::Mastodon) {
            ctx.ndjson = Some(true); // decided on the file's head, kept for every window
        }
        let head_digest = head_hash(&head);
        let mut window_start = if splits { resume } else { 0 };
        let mut batch = CommitBatch::every(COMMIT_EVERY);
        let mut held_back_at = None;
        'windows: loop {
            let window = match (&whole, splits) {
                (Some(bytes), false) => bytes.clone(),
                (_, false) => read_range(&mut handle, 0, size as usize)
                    .await
                    .map_err(io)?,
                (_, true) => {
                    read_window(&mut handle, window_start, size, format, self.parse_window)
                        .await
                        .map_err(io)?
                }
            };
            let window_end = window_start + window.len() as u64;
            let at_eof = window_end >= size;
            // An append-only file caught mid-write: its last unit may be cut short even
            // when it parses (a partial mbox message, a CSV row cut inside a field).
            let tail_may_be_cut = recently_written
                && at_eof
                && format.is_append_only()
                && (format == Format::Mbox || !window.ends_with(b"\n"));
            let (input, parse_ctx) = (window.clone(), ctx.clone());
            let units = tokio::task::spawn_blocking(move || {
                parse_guarded(input.len(), || format.parse(&input, &parse_ctx))
            })
            .await
            .expect("parse_guarded catches parser panics");
            debug!(source = %source, %format, units = units.len(), window_start, "parsed");
            for unit in units {
                let (start, end) = (window_start + unit.start, window_start + unit.end);
                if resume > 0 && end <= resume {
                    continue; // stored before the last checkpoint
                }
                if tail_may_be_cut && end >= size {
                    debug!(source = %source, offset = start, "last unit may be unfinished; read again once the file settles");
                    held_back_at = Some(start);
                    break 'windows;
                }
                report.units += 1;
                let handed =
                    match emit_unit(sink, &self.cx, source, unit, &window, window_start).await? {
                        Ok(n) => {
                            report.interactions += n;
                            n
                        }
                        Err(_) => {
                            report.rejected += 1;
                            0
                        }
                    };
                if batch.handed(handed as usize) {
                    self.commit(sink, report, file, end, &head_digest, false)
                        .await?;
                    if self.stopping() {
                        return Ok(());
                    }
                }
            }
            if at_eof {
                break;
            }
            window_start = window_end;
        }
        let offset = held_back_at.unwrap_or(size);
        self.commit(
            sink,
            report,
            file,
            offset,
            &head_digest,
            held_back_at.is_none(),
        )
        .await?;
        Ok(())
    }

    /// Waits for the sink to store everything handed over, then moves the checkpoint.
    async fn commit(
        &mut self,
        sink: &mut Sink,
        report: &mut ScanReport,
        file: &FileAtScan,
        offset: u64,
        head: &str,
        complete: bool,
    ) -> Result<(), BusError> {
        let published = self.cx.commit(sink).await?;
        report.add_published(published);
        self.save(
            &file.key,
            file.checkpoint(offset, head.to_string(), complete),
        )
        .await
    }

    async fn save_complete(&mut self, file: &FileAtScan, head: &[u8]) -> Result<(), BusError> {
        let checkpoint = file.checkpoint(file.size, head_hash(head), true);
        self.save(&file.key, checkpoint).await
    }

    /// A whole file that cannot be read as interactions: dead-lettered and counted.
    async fn reject_file(
        &self,
        file: &FileAtScan,
        offset: Option<u64>,
        reason: String,
        raw: Bytes,
        sink: &mut Sink,
        report: &mut ScanReport,
    ) -> Result<(), BusError> {
        self.cx
            .reject(sink, &file.source, offset, reason, raw)
            .await?;
        sink.commit().await?;
        report.rejected += 1;
        Ok(())
    }

    async fn save(&mut self, key: &str, checkpoint: FileCheckpoint) -> Result<(), BusError> {
        if let Some(checkpoints) = &self.cx.checkpoints {
            checkpoints.put(key, &checkpoint).await?;
        }
        self.checkpoints_by_key.insert(key.to_string(), checkpoint);
        Ok(())
    }

    fn checkpoint_key(&self, path: &Path) -> String {
        let source_key = match self.layout {
            Layout::Maildir => {
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                format!("maildir:{}", name.split(':').next().unwrap_or(name))
            }
            Layout::Files(_) => {
                let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
                format!("file:{}", absolute.display())
            }
        };
        Checkpoints::key(&self.cx.name, &source_key)
    }
}

/// One file as the scan saw it.
struct FileAtScan {
    path: PathBuf,
    source: String,
    key: String,
    size: u64,
    mtime_ns: i128,
}

impl FileAtScan {
    /// Its checkpoint: stored up to `offset`, the whole file once `complete`.
    fn checkpoint(&self, offset: u64, head: String, complete: bool) -> FileCheckpoint {
        FileCheckpoint {
            source: self.source.clone(),
            size: self.size,
            mtime_ns: self.mtime_ns,
            offset,
            head,
            complete,
        }
    }
}

/// The files a connector reads, sorted: everything below a directory (hidden files
/// skipped), or a Maildir's `new/` and `cur/` (never `tmp/`, where deliveries are written).
/// An unreadable subdirectory is logged and skipped; an unreadable root is an error.
pub fn list_files(root: &Path, layout: Layout) -> Result<Vec<PathBuf>, IngestError> {
    let io = |source| IngestError::Io {
        path: root.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(root).map_err(io)?;
    if meta.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    std::fs::read_dir(root).map_err(io)?;
    let mut files = Vec::new();
    match layout {
        Layout::Maildir => {
            for sub in ["new", "cur"] {
                let dir = root.join(sub);
                if dir.is_dir() {
                    walk(&dir, false, &mut files);
                }
            }
        }
        Layout::Files(_) if is_maildir(root) => return list_files(root, Layout::Maildir),
        Layout::Files(_) => walk(root, true, &mut files),
    }
    Ok(files)
}

fn walk(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            warn!(dir = %dir.display(), error = %e, "directory not readable; skipped");
            return;
        }
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        // Hidden files are editor swap files, partial downloads and the like.
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if file_type.is_dir() {
            if recursive {
                walk(&path, true, out);
            }
        } else if file_type.is_file() || file_type.is_symlink() && path.is_file() {
            out.push(path);
        }
    }
}

async fn read_range(file: &mut tokio::fs::File, start: u64, len: usize) -> std::io::Result<Bytes> {
    file.seek(SeekFrom::Start(start)).await?;
    let mut buf = vec![0; len];
    file.read_exact(&mut buf).await?;
    Ok(buf.into())
}

/// The bytes from `start` up to a unit boundary about `window` bytes on (or to the end):
/// a window that parses on its own. A unit larger than the window widens it.
async fn read_window(
    file: &mut tokio::fs::File,
    start: u64,
    size: u64,
    format: Format,
    window: usize,
) -> std::io::Result<Bytes> {
    let mut want = window as u64;
    loop {
        let len = (size - start).min(want) as usize;
        let buf = read_range(file, start, len).await?;
        if start + len as u64 >= size {
            return Ok(buf);
        }
        if let Some(boundary) = format.unit_boundary(&buf, len / 2).filter(|&b| b > 0) {
            return Ok(buf.slice(..boundary));
        }
        want *= 2;
    }
}

fn head_hash(bytes: &[u8]) -> String {
    rapport_connectors::ids::content_hash(&bytes[..bytes.len().min(HEAD_BYTES)])
}

fn is_maildir(path: &Path) -> bool {
    path.join("cur").is_dir() && path.join("new").is_dir()
}

fn mtime_ns(meta: &std::fs::Metadata) -> i128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128)
}

/// `kind = "files"`: files or a directory of exports, each file's format detected unless
/// the connector names one.
pub static SOURCE: SourceKind = SourceKind {
    kind: "files",
    build: |connector, cx, settings, sink| {
        let rapport_config::ConnectorSpec::Files {
            path,
            format,
            poll_interval,
        } = &connector.spec
        else {
            unreachable!("the registry hands a files source only files connectors")
        };
        Ok(watched(
            cx,
            path,
            Layout::Files(*format),
            *poll_interval,
            settings,
            sink,
        ))
    },
    test: |connector, cx, _| {
        let rapport_config::ConnectorSpec::Files { path, format, .. } = &connector.spec else {
            unreachable!("the registry hands a files source only files connectors")
        };
        Box::pin(test_layout(cx, path, Layout::Files(*format)))
    },
};

/// A directory the daemon watches: scanned every `poll_interval`, recently written files
/// left to settle.
pub(crate) fn watched(
    cx: SourceContext,
    path: &Path,
    layout: Layout,
    poll_interval: Duration,
    settings: &rapport_config::Settings,
    sink: Sink,
) -> BuiltSource {
    let reader = FileReader::new(cx, path.to_path_buf(), layout)
        .settle(Duration::from_secs(settings.ingest.settle_secs))
        .poll_every(poll_interval);
    BuiltSource::Pulled {
        source: Box::new(reader),
        sink,
    }
}

impl Source for FileReader {
    fn context(&self) -> &SourceContext {
        &self.cx
    }

    fn pass<'a>(&'a mut self, sink: &'a mut Sink) -> BoxFuture<'a, Result<Pass, SourceError>> {
        Box::pin(async move {
            let report = self.scan(sink, &mut |_, _| {}).await?;
            if report.files_read > 0 {
                info!(connector = %self.cx.name, ?report, "files scanned");
            }
            Ok(Pass {
                handed: report.interactions,
                complete: !self.stopping(),
            })
        })
    }

    fn wait(&mut self) -> BoxFuture<'_, Result<(), SourceError>> {
        Box::pin(async move {
            let mut shutdown = self.cx.shutdown.clone();
            shutdown.sleep(self.poll_interval).await;
            Ok(())
        })
    }
}

impl From<IngestError> for SourceError {
    fn from(error: IngestError) -> Self {
        SourceError::transient(error.to_string())
    }
}

/// `rapport connectors test` for files and Maildirs: lists what is there and parses the
/// first three files, a line each.
pub async fn test_layout(cx: &SourceContext, path: &Path, layout: Layout) -> Tested {
    let files = match list_files(path, layout) {
        Ok(files) => files,
        Err(e) => {
            return Tested {
                report: e.to_string(),
                verdict: Verdict::Failed,
            };
        }
    };
    let mut report = format!("{} readable, {} file(s)", path.display(), files.len());
    let mut line = |text: String| {
        report.push('\n');
        report.push_str(&text);
    };
    let mut failures = 0;
    for file in files.iter().take(3) {
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => {
                line(format!("  {}: cannot read: {e}", file.display()));
                failures += 1;
                continue;
            }
        };
        let format = match layout {
            Layout::Maildir => Some(Format::Eml),
            Layout::Files(format) => format.or_else(|| detect(file, &bytes)),
        };
        let Some(format) = format else {
            line(format!("  {}: unrecognised format", file.display()));
            failures += 1;
            continue;
        };
        let ctx = cx.parse_context(&file.display().to_string(), cx.template.source_time);
        let units = format.parse(&bytes, &ctx);
        let ok = interactions(&units).count();
        let bad: Vec<_> = units
            .iter()
            .filter_map(|u| u.outcome.as_ref().err())
            .collect();
        line(format!(
            "  {} [{format}]: {ok} interaction(s), {} rejected",
            file.display(),
            bad.len()
        ));
        if let Some(first) = interactions(&units).next() {
            let text: String = first.text.chars().take(80).collect();
            line(format!(
                "    first: {} {:?} {}: {text:?}",
                first.occurred_at,
                first.author.role,
                first.channel.as_str()
            ));
        }
        for e in bad.iter().take(2) {
            line(format!("    rejected: {e}"));
        }
        failures += usize::from(ok == 0 && !bad.is_empty());
    }
    Tested {
        report,
        verdict: if failures > 0 {
            Verdict::Failed
        } else {
            Verdict::Ready
        },
    }
}

#[cfg(test)]
mod tests {
    use rapport_connectors::ParseContext;

    use super::{FileReader, Layout, ScanReport};
    use crate::sources::{Sink, SourceContext};

    fn context() -> SourceContext {
        SourceContext::new(ParseContext::new("t", ""), None)
    }

    async fn dry_run(path: &std::path::Path, window: usize) -> ScanReport {
        let mut reader = FileReader::new(context(), path.to_path_buf(), Layout::Files(None))
            .parse_window(window);
        let mut sink = Sink::Print {
            json: false,
            printed: 0,
        };
        reader.scan(&mut sink, &mut |_, _| {}).await.unwrap()
    }

    fn reader(path: &std::path::Path) -> FileReader {
        FileReader::new(context(), path.to_path_buf(), Layout::Files(None))
    }

    fn print_sink() -> Sink {
        Sink::Print {
            json: false,
            printed: 0,
        }
    }

    #[tokio::test]
    async fn files_still_being_written_wait_until_they_settle() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        let dir = tempfile::tempdir().unwrap();
        // A whole document just written: not read yet.
        let eml = dir.path().join("new.eml");
        std::fs::copy(fixtures.join("email/dk-thread-1.eml"), &eml).unwrap();
        // An mbox just appended to: its last message may be cut, so it waits.
        let mbox = dir.path().join("box.mbox");
        std::fs::copy(fixtures.join("email/both-threads.mbox"), &mbox).unwrap();
        let mut settling = reader(dir.path()).settle(std::time::Duration::from_secs(3600));
        let early = settling
            .scan(&mut print_sink(), &mut |_, _| {})
            .await
            .unwrap();
        assert_eq!(
            early.interactions, 5,
            "the eml waits, the mbox's last message waits: {early:?}"
        );
        // Without a settle time (or once settled) everything is read.
        let late = reader(dir.path())
            .scan(&mut print_sink(), &mut |_, _| {})
            .await
            .unwrap();
        assert_eq!(late.interactions, 7, "{late:?}");
    }

    #[test]
    fn a_panicking_parser_becomes_one_rejected_unit() {
        let units = crate::sources::parse_guarded(42, || panic!("boom"));
        assert_eq!(units.len(), 1);
        assert_eq!((units[0].start, units[0].end), (0, 42));
        let reason = &units[0].outcome.as_ref().unwrap_err().reason;
        assert!(reason.contains("boom"), "{reason}");
    }

    #[tokio::test]
    async fn small_parse_windows_give_the_same_units_as_one_window() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        for file in [
            "email/both-threads.mbox",
            "chat/mixed.ndjson",
            "social/mastodon_export.ndjson",
        ] {
            let whole = dry_run(&fixtures.join(file), 1 << 30).await;
            let windowed = dry_run(&fixtures.join(file), 64).await;
            assert!(whole.units > 3, "{file}: {whole:?}");
            assert_eq!(
                (windowed.units, windowed.interactions, windowed.rejected),
                (whole.units, whole.interactions, whole.rejected),
                "{file}"
            );
        }
    }
}
