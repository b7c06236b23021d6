//! SQLite's own page cache, with the end-of-transaction truncation skipped
//! when there is nothing to truncate.
//!
//! At the end of every transaction SQLite asks its page cache to drop the
//! pages past the end of the database. The cache scans only the slots of
//! the page numbers in between, unless the largest page number it has seen
//! is far past the end: then it walks every page it holds. When SQLite
//! rebalances a b-tree it swaps pages through a temporary number past the
//! 1 GiB mark (the "pending byte" page, never a real page), and from then
//! on every commit walked the whole cache: about 7,900 pages of a 32 MiB
//! cache per commit, 8 % of the writer's time at full load (`perf`,
//! BENCHMARKS.md "Ninth pass").
//!
//! This wrapper, installed by [`install`] before SQLite starts, passes every
//! call to the built-in cache and keeps one number per cache: the largest
//! page number the cache may hold, not counting a page that is only passing
//! through the temporary number. A truncation that starts above it cannot
//! drop anything and is not passed on; every other one is.

use std::ffi::{c_int, c_uint};
use std::sync::OnceLock;

use libsqlite3_sys as ffi;

/// SQLite's locking range starts at this byte offset; the page holding it
/// is never part of a database, so the b-tree uses its number as scratch.
const PENDING_BYTE: u32 = 0x4000_0000;

/// The built-in cache, as SQLite had it before [`install`].
struct BuiltIn(ffi::sqlite3_pcache_methods2);

// SAFETY: the methods are plain functions of SQLite's and `pArg` is SQLite's
// own (null for the built-in cache); SQLite calls them from any thread.
unsafe impl Send for BuiltIn {}
unsafe impl Sync for BuiltIn {}

static BUILT_IN: OnceLock<BuiltIn> = OnceLock::new();

fn built_in() -> &'static ffi::sqlite3_pcache_methods2 {
    &BUILT_IN.get().expect("installed before use").0
}

/// Page numbers the cache may hold, as far as a truncation is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// The scratch page number of this cache's page size.
    scratch: u32,
    /// No page numbered higher is in the cache, except possibly `scratch`.
    highest: u32,
    /// A page is at the scratch number right now.
    scratch_in_use: bool,
}

impl Extent {
    pub fn new(page_size: u32) -> Extent {
        Extent {
            scratch: PENDING_BYTE / page_size.max(1) + 1,
            highest: 0,
            scratch_in_use: false,
        }
    }

    /// A page with this number was fetched (or created).
    pub fn holds(&mut self, key: u32) {
        if key == self.scratch {
            self.scratch_in_use = true;
        } else {
            self.highest = self.highest.max(key);
        }
    }

    /// A page was renumbered.
    pub fn renumbered(&mut self, old: u32, new: u32) {
        if old == self.scratch {
            self.scratch_in_use = false;
        }
        self.holds(new);
    }

    /// Whether dropping every page numbered `limit` or higher could drop
    /// anything; when it could, the drop is assumed to happen.
    pub fn truncate(&mut self, limit: u32) -> bool {
        let could = limit <= self.highest || (self.scratch_in_use && limit <= self.scratch);
        if could {
            self.highest = self.highest.min(limit.saturating_sub(1));
            if limit <= self.scratch {
                self.scratch_in_use = false;
            }
        }
        could
    }
}

/// One cache: the built-in one and its [`Extent`].
struct Cache {
    inner: *mut ffi::sqlite3_pcache,
    extent: Extent,
}

unsafe fn cache<'a>(p: *mut ffi::sqlite3_pcache) -> &'a mut Cache {
    // SAFETY (callers): `p` came from `create` and SQLite uses a cache from
    // one connection, so from one thread, at a time.
    &mut *p.cast::<Cache>()
}

/// Installs the wrapper. Call before SQLite is initialised (before
/// `sqlite3_config` is refused); returns SQLite's result code.
pub fn install() -> c_int {
    // SAFETY: both calls copy a plain struct of function pointers; SQLite
    // refuses them (SQLITE_MISUSE) once it is initialised.
    unsafe {
        let mut current: ffi::sqlite3_pcache_methods2 = std::mem::zeroed();
        let rc = ffi::sqlite3_config(
            ffi::SQLITE_CONFIG_GETPCACHE2,
            &mut current as *mut ffi::sqlite3_pcache_methods2,
        );
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        if BUILT_IN.set(BuiltIn(current)).is_err() {
            return ffi::SQLITE_MISUSE;
        }
        let mut ours = current;
        ours.xCreate = Some(create);
        ours.xFetch = Some(fetch);
        ours.xRekey = Some(rekey);
        ours.xTruncate = Some(truncate);
        ours.xDestroy = Some(destroy);
        ours.xCachesize = Some(cachesize);
        ours.xPagecount = Some(pagecount);
        ours.xUnpin = Some(unpin);
        ours.xShrink = Some(shrink);
        ffi::sqlite3_config(
            ffi::SQLITE_CONFIG_PCACHE2,
            &ours as *const ffi::sqlite3_pcache_methods2,
        )
    }
}

unsafe extern "C" fn create(
    page_size: c_int,
    extra: c_int,
    purgeable: c_int,
) -> *mut ffi::sqlite3_pcache {
    let Some(create) = built_in().xCreate else {
        return std::ptr::null_mut();
    };
    let inner = create(page_size, extra, purgeable);
    if inner.is_null() {
        return inner;
    }
    let extent = Extent::new(u32::try_from(page_size).unwrap_or(1));
    Box::into_raw(Box::new(Cache { inner, extent })).cast()
}

unsafe extern "C" fn fetch(
    p: *mut ffi::sqlite3_pcache,
    key: c_uint,
    create: c_int,
) -> *mut ffi::sqlite3_pcache_page {
    let cache = cache(p);
    let page = match built_in().xFetch {
        Some(fetch) => fetch(cache.inner, key, create),
        None => std::ptr::null_mut(),
    };
    if !page.is_null() {
        cache.extent.holds(key);
    }
    page
}

unsafe extern "C" fn rekey(
    p: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    old: c_uint,
    new: c_uint,
) {
    let cache = cache(p);
    if let Some(rekey) = built_in().xRekey {
        rekey(cache.inner, page, old, new);
    }
    cache.extent.renumbered(old, new);
}

unsafe extern "C" fn truncate(p: *mut ffi::sqlite3_pcache, limit: c_uint) {
    let cache = cache(p);
    if cache.extent.truncate(limit) {
        if let Some(truncate) = built_in().xTruncate {
            truncate(cache.inner, limit);
        }
    }
}

unsafe extern "C" fn destroy(p: *mut ffi::sqlite3_pcache) {
    let cache = Box::from_raw(p.cast::<Cache>());
    if let Some(destroy) = built_in().xDestroy {
        destroy(cache.inner);
    }
}

unsafe extern "C" fn cachesize(p: *mut ffi::sqlite3_pcache, pages: c_int) {
    if let Some(method) = built_in().xCachesize {
        method(cache(p).inner, pages);
    }
}

unsafe extern "C" fn pagecount(p: *mut ffi::sqlite3_pcache) -> c_int {
    match built_in().xPagecount {
        Some(method) => method(cache(p).inner),
        None => 0,
    }
}

unsafe extern "C" fn unpin(
    p: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    discard: c_int,
) {
    if let Some(method) = built_in().xUnpin {
        method(cache(p).inner, page, discard);
    }
}

unsafe extern "C" fn shrink(p: *mut ffi::sqlite3_pcache) {
    if let Some(method) = built_in().xShrink {
        method(cache(p).inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRATCH_4K: u32 = PENDING_BYTE / 4096 + 1;

    #[test]
    fn the_scratch_number_is_the_page_after_the_pending_byte() {
        assert_eq!(Extent::new(4096).scratch, 262_145);
        assert_eq!(Extent::new(1024).scratch, 1_048_577);
    }

    #[test]
    fn a_truncation_past_every_page_is_skipped_and_one_that_can_drop_a_page_is_not() {
        let mut e = Extent::new(4096);
        for key in [1, 7, 3, 40] {
            e.holds(key);
        }
        assert!(!e.truncate(41), "nothing is numbered 41 or more");
        assert!(e.truncate(40), "page 40 is dropped");
        assert!(!e.truncate(40), "and then there is nothing left to drop");
        e.holds(45);
        assert!(e.truncate(20));
        assert!(!e.truncate(20), "the drop from 20 up took page 45 with it");
        assert!(e.truncate(1), "clearing the cache drops page 7");
        assert!(!e.truncate(1));
    }

    #[test]
    fn a_page_passing_through_the_scratch_number_leaves_nothing_to_truncate() {
        // The b-tree swaps pages 30 and 10: 30 → scratch, 10 → 30, scratch → 10.
        let mut e = Extent::new(4096);
        for key in [10, 20, 30] {
            e.holds(key);
        }
        e.renumbered(30, SCRATCH_4K);
        assert!(e.scratch_in_use);
        e.renumbered(10, 30);
        e.renumbered(SCRATCH_4K, 10);
        assert!(!e.scratch_in_use);
        assert!(
            !e.truncate(31),
            "the swap did not make the cache look longer"
        );
        assert!(e.truncate(30));
    }

    #[test]
    fn a_page_left_at_the_scratch_number_is_truncated() {
        let mut e = Extent::new(4096);
        e.holds(5);
        e.renumbered(5, SCRATCH_4K);
        assert!(e.truncate(6), "the scratch page is past 6");
        assert!(!e.scratch_in_use);
        assert!(!e.truncate(6));
        // A page fetched at the scratch number (a corrupt database asks for
        // it) counts too.
        e.holds(SCRATCH_4K);
        assert!(e.truncate(100));
        assert!(!e.truncate(SCRATCH_4K + 1));
    }
}
