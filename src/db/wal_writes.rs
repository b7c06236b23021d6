//! Hands SQLite's write-ahead log to the kernel in one write per commit
//! instead of two per page.
//!
//! SQLite appends each WAL frame as two `pwrite`s, the 24-byte frame header
//! and then the page. Under full load that was about 380 system calls per
//! commit and 15 % of the writer's time (`strace`, `perf`, BENCHMARKS.md
//! "Ninth pass"); the same bytes handed over in one call cost a third as
//! much.
//!
//! A VFS of our own, registered as the process default by [`register`],
//! wraps the platform's. Every file but a write-ahead log is opened as the
//! platform's file itself, untouched. A log collects consecutive writes in
//! memory ([`Coalescer`]) and hands them on in one write:
//! - as soon as the page of a commit frame is in, so that a commit is in the
//!   file before SQLite publishes it to other connections (through the
//!   shared-memory index, which is no call on this file), whatever the
//!   `synchronous` setting;
//! - before a write that does not continue the collected bytes, and when
//!   they reach [`MAX_COLLECTED`];
//! - before any other call on the file (a read, a sync, a truncation, its
//!   size, a lock or a file control), so SQLite never sees the file without
//!   its own writes, and a sync covers every write made before it.
//!
//! So the bytes, their order and every sync are SQLite's own; only the
//! number of system calls changes. A write that fails when handed on fails
//! the call that handed it on (the commit's page write or its sync), and
//! SQLite then treats the commit as failed, as it would have had the first
//! write failed.

use std::ffi::{c_int, c_void, CStr};
use std::mem::size_of;
use std::ptr;

use libsqlite3_sys as ffi;

/// Bytes collected before they are handed on regardless: a batch of 256
/// webhook bodies writes about 14 MB of frames.
const MAX_COLLECTED: usize = 4 << 20;

/// The most one write of the platform VFS takes: SQLite's unix VFS keeps
/// the low 17 bits of a write's length (larger writes come out short and it
/// reports the disk full), so pieces stay below 128 KiB.
const MAX_PLATFORM_WRITE: usize = 30 * 4096;

/// Size of a WAL frame header; its bytes 4..8 are the database size after
/// the commit for a commit frame, zero otherwise.
const FRAME_HEADER: usize = 24;

/// Size of the WAL file header, before the first frame.
const WAL_HEADER: i64 = 32;

/// The name the VFS is registered under.
const VFS_NAME: &CStr = c"leadhook-coalesced-wal";

/// Where collected bytes go: the wrapped file, or a recorder in the tests.
pub trait Sink {
    /// Writes all of `data` at `offset`; an SQLite result code.
    fn write_at(&mut self, data: &[u8], offset: i64) -> c_int;
}

/// Consecutive writes to one log, collected until they are handed on.
#[derive(Debug, Default)]
pub struct Coalescer {
    collected: Vec<u8>,
    /// File offset of the first collected byte.
    start: i64,
    /// The last write was the header of a commit frame: its page comes next.
    commit_header_in: bool,
}

impl Coalescer {
    /// Takes one write of SQLite's; hands on what was collected first if
    /// this write does not continue it, and everything after the page of a
    /// commit frame.
    pub fn write(&mut self, sink: &mut impl Sink, data: &[u8], offset: i64) -> c_int {
        let continues = offset == self.start + self.collected.len() as i64;
        if !self.collected.is_empty()
            && (!continues || self.collected.len() + data.len() > MAX_COLLECTED)
        {
            let rc = self.flush(sink);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        if self.collected.is_empty() {
            self.start = offset;
        }
        self.collected.extend_from_slice(data);
        let completes_commit = self.commit_header_in;
        self.commit_header_in = is_commit_header(data, offset);
        if completes_commit || self.collected.len() >= MAX_COLLECTED {
            return self.flush(sink);
        }
        ffi::SQLITE_OK
    }

    /// Hands on everything collected. What fails to be written is dropped:
    /// the caller's error fails the transaction those bytes belonged to.
    pub fn flush(&mut self, sink: &mut impl Sink) -> c_int {
        self.commit_header_in = false;
        if self.collected.is_empty() {
            return ffi::SQLITE_OK;
        }
        let rc = sink.write_at(&self.collected, self.start);
        // Keeps the allocation for the next commit.
        self.collected.clear();
        rc
    }
}

fn is_commit_header(data: &[u8], offset: i64) -> bool {
    data.len() == FRAME_HEADER && offset >= WAL_HEADER && data[4..8] != [0, 0, 0, 0]
}

/// Registers the VFS as the default of this process, wrapping the default
/// there was. Call once, after `sqlite3_config` and before the first
/// connection; returns SQLite's result code.
pub fn register() -> c_int {
    // SAFETY: sqlite3_vfs_find(NULL) returns the default VFS, which lives as
    // long as the process. The VFS built from it is leaked on purpose:
    // SQLite keeps a pointer to it for as long as the process runs.
    unsafe {
        let platform = ffi::sqlite3_vfs_find(ptr::null());
        if platform.is_null() {
            return ffi::SQLITE_ERROR;
        }
        if !ffi::sqlite3_vfs_find(VFS_NAME.as_ptr()).is_null() {
            return ffi::SQLITE_OK;
        }
        let mut vfs = *platform;
        vfs.pNext = ptr::null_mut();
        vfs.zName = VFS_NAME.as_ptr();
        vfs.szOsFile = (log_offset() + (*platform).szOsFile as usize) as c_int;
        vfs.pAppData = platform.cast();
        vfs.xOpen = Some(open);
        ffi::sqlite3_vfs_register(Box::into_raw(Box::new(vfs)), 1)
    }
}

/// The name of the process's default VFS (for the tests).
#[cfg(test)]
fn default_vfs_name() -> String {
    // SAFETY: the default VFS and its name live as long as the process.
    unsafe {
        let vfs = ffi::sqlite3_vfs_find(ptr::null());
        CStr::from_ptr((*vfs).zName).to_string_lossy().into_owned()
    }
}

/// A log file: SQLite's handle, the collected writes, then (at
/// [`log_offset`]) the platform's own file.
#[repr(C)]
struct LogFile {
    base: ffi::sqlite3_file,
    pending: *mut Coalescer,
}

/// Where the platform's file starts inside a [`LogFile`]'s allocation.
fn log_offset() -> usize {
    size_of::<LogFile>().next_multiple_of(16)
}

/// The platform's file inside a [`LogFile`].
unsafe fn inner(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    file.cast::<u8>().add(log_offset()).cast()
}

unsafe extern "C" fn open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let platform = (*vfs).pAppData.cast::<ffi::sqlite3_vfs>();
    let Some(platform_open) = (*platform).xOpen else {
        return ffi::SQLITE_ERROR;
    };
    if flags & ffi::SQLITE_OPEN_WAL == 0 {
        // SQLite's memory for the file is larger than the platform needs:
        // the platform's file lives in it directly, with its own methods.
        return platform_open(platform, name, file, flags, out_flags);
    }
    let log = file.cast::<LogFile>();
    (*log).base.pMethods = ptr::null();
    (*log).pending = ptr::null_mut();
    let rc = platform_open(platform, name, inner(file), flags, out_flags);
    let methods = (*inner(file)).pMethods;
    if methods.is_null() {
        return if rc == ffi::SQLITE_OK {
            ffi::SQLITE_CANTOPEN
        } else {
            rc
        };
    }
    if rc != ffi::SQLITE_OK {
        // SQLite closes only files whose methods we set: close this one here.
        if let Some(close) = (*methods).xClose {
            close(inner(file));
        }
        return rc;
    }
    (*log).pending = Box::into_raw(Box::default());
    (*log).base.pMethods = &LOG_METHODS;
    ffi::SQLITE_OK
}

/// The platform's file and its methods.
struct Platform {
    file: *mut ffi::sqlite3_file,
    methods: *const ffi::sqlite3_io_methods,
}

impl Sink for Platform {
    fn write_at(&mut self, data: &[u8], offset: i64) -> c_int {
        let Some(write) = (unsafe { (*self.methods).xWrite }) else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        let mut at = offset;
        for piece in data.chunks(MAX_PLATFORM_WRITE) {
            // SAFETY: `file` is an open file of the platform VFS, whose
            // xWrite writes all of a piece this size or reports why not.
            let rc = unsafe { write(self.file, piece.as_ptr().cast(), piece.len() as c_int, at) };
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            at += piece.len() as i64;
        }
        ffi::SQLITE_OK
    }
}

unsafe fn platform(file: *mut ffi::sqlite3_file) -> Platform {
    let file = inner(file);
    Platform {
        file,
        methods: (*file).pMethods,
    }
}

/// Hands on what the log collected; an SQLite result code.
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    let mut sink = platform(file);
    (*(*file.cast::<LogFile>()).pending).flush(&mut sink)
}

unsafe extern "C" fn log_write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    let Ok(len) = usize::try_from(amount) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    let data = std::slice::from_raw_parts(data.cast::<u8>(), len);
    let mut sink = platform(file);
    (*(*file.cast::<LogFile>()).pending).write(&mut sink, data, offset)
}

unsafe extern "C" fn log_close(file: *mut ffi::sqlite3_file) -> c_int {
    let flushed = flush(file);
    let log = file.cast::<LogFile>();
    drop(Box::from_raw((*log).pending));
    (*log).pending = ptr::null_mut();
    let inner_file = platform(file);
    let closed = match (*inner_file.methods).xClose {
        Some(close) => close(inner_file.file),
        None => ffi::SQLITE_OK,
    };
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        closed
    }
}

/// Defines a method of [`LOG_METHODS`] that hands on the collected writes
/// and then calls the platform's method of the same name.
macro_rules! flush_then {
    ($name:ident, $method:ident ( $($arg:ident : $ty:ty),* )) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            let rc = flush(file);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            let inner_file = platform(file);
            match (*inner_file.methods).$method {
                Some(method) => method(inner_file.file $(, $arg)*),
                None => ffi::SQLITE_MISUSE,
            }
        }
    };
}

flush_then!(log_read, xRead(buf: *mut c_void, amount: c_int, offset: ffi::sqlite3_int64));
flush_then!(log_truncate, xTruncate(size: ffi::sqlite3_int64));
flush_then!(log_sync, xSync(flags: c_int));
flush_then!(log_file_size, xFileSize(size: *mut ffi::sqlite3_int64));
flush_then!(log_lock, xLock(level: c_int));
flush_then!(log_unlock, xUnlock(level: c_int));
flush_then!(log_check_reserved_lock, xCheckReservedLock(out: *mut c_int));
flush_then!(log_file_control, xFileControl(op: c_int, arg: *mut c_void));
flush_then!(log_shm_map, xShmMap(region: c_int, size: c_int, extend: c_int, out: *mut *mut c_void));
flush_then!(log_shm_lock, xShmLock(offset: c_int, n: c_int, flags: c_int));
flush_then!(log_shm_unmap, xShmUnmap(delete: c_int));
flush_then!(log_fetch, xFetch(offset: ffi::sqlite3_int64, amount: c_int, out: *mut *mut c_void));
flush_then!(log_unfetch, xUnfetch(offset: ffi::sqlite3_int64, page: *mut c_void));

/// Questions about the device change nothing and need no flush.
unsafe extern "C" fn log_sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    let inner_file = platform(file);
    match (*inner_file.methods).xSectorSize {
        Some(method) => method(inner_file.file),
        None => 4096,
    }
}

unsafe extern "C" fn log_device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    let inner_file = platform(file);
    match (*inner_file.methods).xDeviceCharacteristics {
        Some(method) => method(inner_file.file),
        None => 0,
    }
}

unsafe extern "C" fn log_shm_barrier(file: *mut ffi::sqlite3_file) {
    let inner_file = platform(file);
    if let Some(method) = (*inner_file.methods).xShmBarrier {
        method(inner_file.file);
    }
}

static LOG_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(log_close),
    xRead: Some(log_read),
    xWrite: Some(log_write),
    xTruncate: Some(log_truncate),
    xSync: Some(log_sync),
    xFileSize: Some(log_file_size),
    xLock: Some(log_lock),
    xUnlock: Some(log_unlock),
    xCheckReservedLock: Some(log_check_reserved_lock),
    xFileControl: Some(log_file_control),
    xSectorSize: Some(log_sector_size),
    xDeviceCharacteristics: Some(log_device_characteristics),
    xShmMap: Some(log_shm_map),
    xShmLock: Some(log_shm_lock),
    xShmBarrier: Some(log_shm_barrier),
    xShmUnmap: Some(log_shm_unmap),
    xFetch: Some(log_fetch),
    xUnfetch: Some(log_unfetch),
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Records every write it is handed; fails them when told to.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<(i64, Vec<u8>)>,
        fail: bool,
    }

    impl Sink for Recorder {
        fn write_at(&mut self, data: &[u8], offset: i64) -> c_int {
            if self.fail {
                return ffi::SQLITE_IOERR_WRITE;
            }
            self.writes.push((offset, data.to_vec()));
            ffi::SQLITE_OK
        }
    }

    fn header(commit: bool) -> Vec<u8> {
        let mut h = vec![0u8; FRAME_HEADER];
        h[3] = 7; // page number
        if commit {
            h[7] = 42; // database size after the commit
        }
        h
    }

    const PAGE: usize = 4096;
    const FRAME: i64 = (FRAME_HEADER + PAGE) as i64;

    /// Writes frames the way SQLite does: header, then page.
    fn frames(c: &mut Coalescer, r: &mut Recorder, first: i64, commits: &[bool]) {
        for (n, commit) in commits.iter().enumerate() {
            let at = first + n as i64 * FRAME;
            assert_eq!(c.write(r, &header(*commit), at), ffi::SQLITE_OK);
            assert_eq!(
                c.write(r, &[n as u8; PAGE], at + FRAME_HEADER as i64),
                ffi::SQLITE_OK
            );
        }
    }

    #[test]
    fn a_transaction_reaches_the_file_in_one_write_once_its_commit_frame_is_in() {
        let (mut c, mut r) = (Coalescer::default(), Recorder::default());
        frames(&mut c, &mut r, WAL_HEADER, &[false, false, false]);
        assert!(
            r.writes.is_empty(),
            "nothing is handed on before the commit"
        );
        frames(&mut c, &mut r, WAL_HEADER + 3 * FRAME, &[true]);
        assert_eq!(r.writes.len(), 1);
        let (offset, bytes) = &r.writes[0];
        assert_eq!(*offset, WAL_HEADER);
        assert_eq!(bytes.len() as i64, 4 * FRAME);
        assert_eq!(&bytes[..FRAME_HEADER], &header(false)[..]);
        assert_eq!(
            bytes[FRAME_HEADER + PAGE + FRAME_HEADER],
            1,
            "frames in order"
        );
        assert_eq!(
            &bytes[3 * FRAME as usize..][..FRAME_HEADER],
            &header(true)[..]
        );
    }

    #[test]
    fn a_write_elsewhere_hands_on_what_came_before_it_first() {
        let (mut c, mut r) = (Coalescer::default(), Recorder::default());
        frames(&mut c, &mut r, WAL_HEADER, &[false, false]);
        // SQLite rewrites a frame of this transaction in place.
        assert_eq!(c.write(&mut r, &[9; PAGE], WAL_HEADER + 24), ffi::SQLITE_OK);
        assert_eq!(r.writes.len(), 1);
        assert_eq!(r.writes[0].0, WAL_HEADER);
        assert_eq!(r.writes[0].1.len() as i64, 2 * FRAME);
        assert_eq!(c.flush(&mut r), ffi::SQLITE_OK);
        assert_eq!(r.writes[1], (WAL_HEADER + 24, vec![9; PAGE]));
        assert_eq!(c.flush(&mut r), ffi::SQLITE_OK);
        assert_eq!(r.writes.len(), 2, "an empty flush writes nothing");
    }

    #[test]
    fn a_frame_header_at_the_start_of_the_file_is_not_taken_for_a_commit() {
        // The 32-byte log header has non-zero bytes 4..8 (the format
        // version); only a 24-byte write after it is a frame header.
        let (mut c, mut r) = (Coalescer::default(), Recorder::default());
        let log_header = [0x37u8; WAL_HEADER as usize];
        assert_eq!(c.write(&mut r, &log_header, 0), ffi::SQLITE_OK);
        assert_eq!(c.write(&mut r, &[1; PAGE], WAL_HEADER), ffi::SQLITE_OK);
        assert!(r.writes.is_empty());
        assert_eq!(c.flush(&mut r), ffi::SQLITE_OK);
        assert_eq!(r.writes[0].1.len(), WAL_HEADER as usize + PAGE);
    }

    #[test]
    fn collected_bytes_are_handed_on_at_the_limit() {
        let (mut c, mut r) = (Coalescer::default(), Recorder::default());
        let n = MAX_COLLECTED / FRAME as usize + 1;
        frames(&mut c, &mut r, WAL_HEADER, &vec![false; n]);
        assert_eq!(r.writes.len(), 1);
        assert!(r.writes[0].1.len() <= MAX_COLLECTED);
        assert_eq!(c.flush(&mut r), ffi::SQLITE_OK);
        let total: usize = r.writes.iter().map(|(_, b)| b.len()).sum();
        assert_eq!(total as i64, n as i64 * FRAME);
        assert_eq!(r.writes[1].0, r.writes[0].0 + r.writes[0].1.len() as i64);
    }

    #[test]
    fn a_failed_write_is_reported_by_the_call_that_hands_it_on() {
        let (mut c, mut r) = (Coalescer::default(), Recorder::default());
        frames(&mut c, &mut r, WAL_HEADER, &[false]);
        r.fail = true;
        assert_eq!(
            c.write(&mut r, &header(true), WAL_HEADER + FRAME),
            ffi::SQLITE_OK
        );
        let page = c.write(&mut r, &[0; PAGE], WAL_HEADER + FRAME + 24);
        assert_eq!(page, ffi::SQLITE_IOERR_WRITE);
        r.fail = false;
        assert_eq!(c.flush(&mut r), ffi::SQLITE_OK);
        assert!(
            r.writes.is_empty(),
            "the failed bytes are not written later"
        );
    }

    #[test]
    fn registering_makes_it_the_default_and_commits_are_seen_by_other_connections() {
        use diesel::connection::SimpleConnection;
        use diesel::sql_types::BigInt;
        use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};

        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        assert_eq!(register(), ffi::SQLITE_OK);
        assert_eq!(
            register(),
            ffi::SQLITE_OK,
            "registering twice changes nothing"
        );
        assert_eq!(default_vfs_name(), VFS_NAME.to_string_lossy());

        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("wal.db").display().to_string();
        let mut writer = SqliteConnection::establish(&path).expect("open");
        // NORMAL: no sync at commit, so only the commit-frame rule puts the
        // frames in the file before the reader looks.
        writer
            .batch_execute(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                 CREATE TABLE t (v TEXT NOT NULL);",
            )
            .expect("schema");
        let mut reader = SqliteConnection::establish(&path).expect("open");
        for round in 1..=50i64 {
            writer
                // About 160 KB of log per commit: more than one platform write.
                .batch_execute(
                    "BEGIN; INSERT INTO t SELECT hex(randomblob(500)) FROM \
                     (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
                     WHERE i < 150) SELECT i FROM n); COMMIT;",
                )
                .expect("a commit");
            let seen: Count = diesel::sql_query("SELECT count(*) AS n FROM t")
                .get_result(&mut reader)
                .expect("a read");
            assert_eq!(seen.n, round * 150);
        }
        // The log is whole on disk: a fresh connection that checkpoints it
        // back reads every row.
        drop(writer);
        drop(reader);
        let mut again = SqliteConnection::establish(&path).expect("open");
        let seen: Count = diesel::sql_query("SELECT count(*) AS n FROM t")
            .get_result(&mut again)
            .expect("a read");
        assert_eq!(seen.n, 50 * 150);
    }
}
