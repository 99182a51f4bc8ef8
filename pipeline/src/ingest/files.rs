//! Files, directories and Maildirs: e-mail, chat, call and social exports on disk.
//!
//! Each file has a checkpoint (size, mtime, resume offset, a hash of its first 4 KiB). An
//! unchanged file is skipped; an append-only file (mbox, NDJSON, twcs CSV) that grew is
//! resumed at the offset after its last stored unit; any other changed file is read again,
//! and JetStream's duplicate window drops what was already stored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use rapport_connectors::{Format, ParseContext, detect};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::{debug, warn};

use super::{ConnectorState, Sink, emit_unit, ingest_dead_letter};
use crate::bus::{BusError, Published};
use crate::checkpoint::Checkpoints;

/// Interactions handed to the sink between two commits (and checkpoint writes).
const COMMIT_EVERY: usize = 8192;
/// Bytes of a splittable file parsed at a time (then cut at the next unit boundary).
const PARSE_WINDOW: usize = 8 << 20;
const HEAD_BYTES: usize = 4096;

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
    /// See [`FileReader::hold_unfinished_tail`].
    settle: Option<std::time::Duration>,
    parse_window: usize,
}

impl FileReader {
    /// A watched file may be caught mid-write: its last line is then unfinished and does not
    /// parse. With this set, such a tail of an append-only file modified within `settle` is
    /// left for the next scan instead of being dead-lettered. One-off imports leave it unset.
    pub fn hold_unfinished_tail(mut self, settle: std::time::Duration) -> Self {
        self.settle = Some(settle);
        self
    }

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
        }
    }

    /// Bytes of a splittable file parsed at a time (default 8 MiB).
    pub fn parse_window(mut self, bytes: usize) -> Self {
        self.parse_window = bytes.max(1);
        self
    }

    /// Reads every new or changed file once.
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
        let files = self.list_files()?;
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
            self.read_file(&path, &key, mtime_ns, sink, &mut report)
                .await?;
            done += size;
            progress(done, total);
        }
        Ok(report)
    }

    async fn read_file(
        &mut self,
        path: &Path,
        key: &str,
        mtime_ns: i128,
        sink: &mut Sink,
        report: &mut ScanReport,
    ) -> Result<(), IngestError> {
        let source = path.display().to_string();
        let bytes = match tokio::fs::read(path).await {
            Ok(bytes) => Bytes::from(bytes),
            Err(e) => {
                let reason = format!("cannot read file: {e}");
                self.state
                    .counters
                    .record_error(format!("{source}: {reason}"));
                let letter =
                    ingest_dead_letter(&self.state.name, &source, None, reason, Bytes::new());
                sink.dead_letter(&letter).await?;
                report.rejected += 1;
                return Ok(());
            }
        };
        report.files_read += 1;
        let size = bytes.len() as u64;
        let head = head_hash(&bytes);
        let format = match self.layout {
            Layout::Maildir => Some(Format::Eml),
            Layout::Files(Some(format)) => Some(format),
            Layout::Files(None) => detect(path, &bytes),
        };
        let Some(format) = format else {
            let reason = "unrecognised format: not an e-mail, mbox, chat/call/social JSON, WebVTT, SRT or twcs CSV (set the connector's format to force one)";
            let letter =
                ingest_dead_letter(&self.state.name, &source, Some(0), reason, bytes.clone());
            sink.dead_letter(&letter).await?;
            self.state.counters.add(&self.state.counters.failed, 1);
            report.rejected += 1;
            self.save(
                key,
                FileCheckpoint {
                    source,
                    size,
                    mtime_ns,
                    offset: size,
                    head,
                    complete: true,
                },
            )
            .await?;
            return Ok(());
        };
        // The head hash covers the bytes the checkpointed file had (up to 4 KiB), so a file
        // that grew still matches and one that was rewritten does not.
        let resume = match self.checkpoints_by_key.get(key) {
            Some(cp)
                if format.is_append_only()
                    && cp.offset <= size
                    && cp.size <= size
                    && cp.head == head_hash(&bytes[..(cp.size as usize).min(bytes.len())]) =>
            {
                cp.offset
            }
            _ => 0,
        };
        let mut ctx = self.template.clone();
        ctx.source = source.clone();
        ctx.source_time = OffsetDateTime::from_unix_timestamp_nanos(mtime_ns)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let recently_written = self.settle.is_some_and(|settle| {
            let age = OffsetDateTime::now_utc().unix_timestamp_nanos() - mtime_ns;
            age < settle.as_nanos() as i128
        });
        let unfinished_tail =
            format.is_append_only() && recently_written && !bytes.ends_with(b"\n");
        // Splittable formats (mbox, NDJSON) start at the resume point and are parsed a
        // window at a time, so memory holds one window's interactions, not the file's; the
        // others (CSV needs its header) are parsed whole and the stored units skipped.
        let splits = format.splits(&bytes);
        let mut window_start = if splits { resume } else { 0 };
        let mut since_commit = 0;
        let mut held_back_at = None;
        'windows: loop {
            let window_end = if splits {
                format
                    .unit_boundary(&bytes, window_start as usize + self.parse_window)
                    .map_or(size, |b| b as u64)
            } else {
                size
            };
            let window = bytes.slice(window_start as usize..window_end as usize);
            let (input, ctx) = (window.clone(), ctx.clone());
            let units = tokio::task::spawn_blocking(move || format.parse(&input, &ctx))
                .await
                .expect("parser thread panicked");
            debug!(source = %source, %format, units = units.len(), window_start, "parsed");
            for unit in units {
                let (start, end) = (window_start + unit.start, window_start + unit.end);
                if resume > 0 && end <= resume {
                    continue; // stored before the last checkpoint
                }
                if unfinished_tail && end == size && unit.outcome.is_err() {
                    debug!(source = %source, offset = start, "unfinished last line; read again next scan");
                    held_back_at = Some(start);
                    break 'windows;
                }
                report.units += 1;
                match emit_unit(sink, &self.state, &source, unit, &window, window_start).await? {
                    Some(n) => {
                        report.interactions += n;
                        since_commit += n as usize;
                    }
                    None => report.rejected += 1,
                }
                if since_commit >= COMMIT_EVERY {
                    since_commit = 0;
                    let published = sink.commit().await?;
                    self.count_published(published, report);
                    self.save(
                        key,
                        FileCheckpoint {
                            source: source.clone(),
                            size,
                            mtime_ns,
                            offset: end,
                            head: head.clone(),
                            complete: false,
                        },
                    )
                    .await?;
                }
            }
            if window_end >= size {
                break;
            }
            window_start = window_end;
        }
        let published = sink.commit().await?;
        self.count_published(published, report);
        self.save(
            key,
            FileCheckpoint {
                source,
                size,
                mtime_ns,
                offset: held_back_at.unwrap_or(size),
                head,
                complete: held_back_at.is_none(),
            },
        )
        .await?;
        Ok(())
    }

    fn count_published(&self, published: Published, report: &mut ScanReport) {
        let counters = &self.state.counters;
        counters.add(&counters.published, published.stored);
        counters.add(&counters.duplicates, published.duplicates);
        report.add_published(published);
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

    fn list_files(&self) -> Result<Vec<PathBuf>, IngestError> {
        let io = |source| IngestError::Io {
            path: self.root.clone(),
            source,
        };
        let meta = std::fs::metadata(&self.root).map_err(io)?;
        if meta.is_file() {
            return Ok(vec![self.root.clone()]);
        }
        let mut files = Vec::new();
        match self.layout {
            Layout::Maildir => {
                for sub in ["new", "cur"] {
                    let dir = self.root.join(sub);
                    if dir.is_dir() {
                        walk(&dir, false, &mut files).map_err(io)?;
                    }
                }
            }
            Layout::Files(_) => walk(&self.root, true, &mut files).map_err(io)?,
        }
        Ok(files)
    }
}

fn walk(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        // Hidden files are editor swap files, partial downloads and the like.
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let file_type = entry.file_type()?;
        let path = entry.path();
        if file_type.is_dir() {
            if recursive {
                walk(&path, true, out)?;
            }
        } else if file_type.is_file() || file_type.is_symlink() && path.is_file() {
            out.push(path);
        }
    }
    Ok(())
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
    ctx.speaker_roles = connector
        .speaker_roles
        .iter()
        .map(|(label, role)| (label.clone(), rapport_connectors::Role::from_label(role)))
        .collect();
    ctx.max_message_bytes = ingest.max_message_bytes;
    ctx.max_file_bytes = ingest.max_file_bytes;
    ctx
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rapport_connectors::{Format, ParseContext};

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

    #[test]
    fn config_knows_every_format_the_connectors_read() {
        let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(names, rapport_config::connector::FORMAT_NAMES);
    }
}
