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
use rapport_connectors::{Format, ParseContext, detect};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::{ConnectorState, Sink, emit_unit, ingest_dead_letter, parse_guarded};
use crate::bus::{BusError, Published};
use crate::checkpoint::Checkpoints;

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
    state: ConnectorState,
    root: PathBuf,
    layout: Layout,
    template: ParseContext,
    checkpoints_by_key: HashMap<String, FileCheckpoint>,
    loaded: bool,
    /// See [`FileReader::settle`].
    settle: Option<Duration>,
    parse_window: usize,
    stop: Option<watch::Receiver<bool>>,
}

impl FileReader {
    /// `template` carries the connector-wide parse settings; source and time are per file.
    pub fn new(
        state: ConnectorState,
        root: PathBuf,
        layout: Layout,
        template: ParseContext,
    ) -> Self {
        let layout = match layout {
            Layout::Files(Some(Format::Maildir)) => Layout::Maildir,
            Layout::Files(None) if is_maildir(&root) => Layout::Maildir,
            other => other,
        };
        FileReader {
            state,
            root,
            layout,
            template,
            checkpoints_by_key: HashMap::new(),
            loaded: false,
            settle: None,
            parse_window: PARSE_WINDOW,
            stop: None,
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

    /// Ends a scan early, at the next file or commit, once `stop` turns true.
    pub fn stop_on(mut self, stop: watch::Receiver<bool>) -> Self {
        self.stop = Some(stop);
        self
    }

    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|stop| *stop.borrow())
    }

    /// Reads every new or changed file once. A file that cannot be read is recorded and
    /// left for the next scan; only a failing bus ends the scan with an error.
    pub async fn scan(
        &mut self,
        sink: &mut Sink,
        progress: Progress<'_>,
    ) -> Result<ScanReport, IngestError> {
        if !self.loaded {
            if let Some(checkpoints) = &self.state.checkpoints {
                let prefix = Checkpoints::prefix(&self.state.name);
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
                    self.state
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
        if format.is_none() && whole.is_none() && size <= self.template.max_file_bytes as u64 {
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
        if !splits && whole.is_none() && size > self.template.max_file_bytes as u64 {
            let reason = format!(
                "too large: {size} bytes, over the cap of {} bytes (ingest.max_file_bytes)",
                self.template.max_file_bytes
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
        let mut ctx = self.template.clone();
        ctx.source = source.clone();
        ctx.source_time = OffsetDateTime::from_unix_timestamp_nanos(file.mtime_ns)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        if splits && matches!(format, Format::ChatJson | Format::Mastodon) {
            ctx.ndjson = Some(true); // decided on the file's head, kept for every window
        }
        let head_digest = head_hash(&head);
        let mut window_start = if splits { resume } else { 0 };
        let mut since_commit = 0;
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
                match emit_unit(sink, &self.state, source, unit, &window, window_start).await? {
                    Ok(n) => {
                        report.interactions += n;
                        since_commit += n as usize;
                    }
                    Err(_) => report.rejected += 1,
                }
                if since_commit >= COMMIT_EVERY {
                    since_commit = 0;
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
        let published = sink.commit().await?;
        let counters = &self.state.counters;
        counters.add(&counters.published, published.stored);
        counters.add(&counters.duplicates, published.duplicates);
        report.add_published(published);
        self.save(
            &file.key,
            FileCheckpoint {
                source: file.source.clone(),
                size: file.size,
                mtime_ns: file.mtime_ns,
                offset,
                head: head.to_string(),
                complete,
            },
        )
        .await
    }

    async fn save_complete(&mut self, file: &FileAtScan, head: &[u8]) -> Result<(), BusError> {
        self.save(
            &file.key,
            FileCheckpoint {
                source: file.source.clone(),
                size: file.size,
                mtime_ns: file.mtime_ns,
                offset: file.size,
                head: head_hash(head),
                complete: true,
            },
        )
        .await
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
        let counters = &self.state.counters;
        counters.add(&counters.read, 1);
        counters.add(&counters.failed, 1);
        counters.record_error(format!("{}: {reason}", file.source));
        let letter = ingest_dead_letter(&self.state.name, &file.source, offset, reason, raw);
        sink.dead_letter(&letter).await?;
        sink.commit().await?;
        report.rejected += 1;
        Ok(())
    }

    async fn save(&mut self, key: &str, checkpoint: FileCheckpoint) -> Result<(), BusError> {
        if let Some(checkpoints) = &self.state.checkpoints {
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
        Checkpoints::key(&self.state.name, &source_key)
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

/// The parse settings shared by every file of a connector.
pub fn parse_template(
    connector: &rapport_config::Connector,
    ingest: &rapport_config::settings::IngestSettings,
) -> ParseContext {
    let mut ctx = ParseContext::new(connector.name.clone(), String::new());
    ctx.company_domains = connector.company_domains.clone();
    ctx.speaker_roles = connector.speaker_roles.clone();
    ctx.max_message_bytes = ingest.max_message_bytes;
    ctx.max_file_bytes = ingest.max_file_bytes;
    ctx
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rapport_connectors::ParseContext;

    use super::{FileReader, Layout, ScanReport};
    use crate::ingest::{ConnectorState, Counters, Sink};

    async fn dry_run(path: &std::path::Path, window: usize) -> ScanReport {
        let state = ConnectorState {
            name: "t".into(),
            checkpoints: None,
            counters: Arc::new(Counters::default()),
        };
        let mut reader = FileReader::new(
            state,
            path.to_path_buf(),
            Layout::Files(None),
            ParseContext::new("t", ""),
        )
        .parse_window(window);
        let mut sink = Sink::Print {
            json: false,
            printed: 0,
        };
        reader.scan(&mut sink, &mut |_, _| {}).await.unwrap()
    }

    fn reader(path: &std::path::Path) -> FileReader {
        let state = ConnectorState {
            name: "t".into(),
            checkpoints: None,
            counters: Arc::new(Counters::default()),
        };
        FileReader::new(
            state,
            path.to_path_buf(),
            Layout::Files(None),
            ParseContext::new("t", ""),
        )
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
        let units = crate::ingest::parse_guarded(42, || panic!("boom"));
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
