//! The FUSE side: maps each kernel request onto the [`Tree`] model.
//!
//! Two choices keep the kernel from remembering what the model forgets at a cut: every entry
//! and attribute is answered with a time-to-live of zero (each path walk asks again), and
//! files are opened with `FOPEN_DIRECT_IO` (no page cache: every read and write comes here).
//! Inode numbers are never reused, so a cached inode the cut removed answers `ENOENT`.

use std::ffi::OsStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    BsdFileFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::model::{Attr, FsError, Kind, Tree};

const TTL: Duration = Duration::ZERO;

/// The tree shared by the FUSE session and the control socket.
#[derive(Clone, Default)]
pub struct Shared(Arc<Mutex<Tree>>);

impl Shared {
    pub fn new(tree: Tree) -> Shared {
        Shared(Arc::new(Mutex::new(tree)))
    }

    /// Locks the tree. A panic while it was held leaves a tree that is still consistent
    /// for the model's purposes (each operation checks before it changes), so a poisoned
    /// lock is taken over rather than propagated.
    pub fn lock(&self) -> MutexGuard<'_, Tree> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The file system handed to `fuser`.
pub struct LazyFs {
    tree: Shared,
    sync_delay: Duration,
}

impl LazyFs {
    pub fn new(tree: Shared) -> LazyFs {
        LazyFs {
            tree,
            sync_delay: Duration::ZERO,
        }
    }

    /// Makes every `fsync`/`fsyncdir` take `delay` before it syncs, as a disk's flush does.
    /// In memory a sync is instant, so a cut would almost never land between a write and the
    /// sync that makes it durable; with a delay most cuts find unsynced data (written, its
    /// sync still under way), the state a real power loss meets. The tree is not locked
    /// while waiting, and a cut during the wait makes the sync fail with `EIO`.
    pub fn with_sync_delay(mut self, delay: Duration) -> LazyFs {
        self.sync_delay = delay;
        self
    }

    fn sync(&self, ino: INodeNo, reply: ReplyEmpty) {
        if !self.sync_delay.is_zero() {
            std::thread::sleep(self.sync_delay);
        }
        reply_empty(reply, self.tree.lock().fsync(ino.0));
    }
}

fn errno(e: FsError) -> Errno {
    Errno::from_i32(e.errno())
}

// The replies that every request answers the same way: the model's result, or its errno.

fn reply_entry(reply: ReplyEntry, r: Result<Attr, FsError>) {
    match r {
        Ok(a) => reply.entry(&TTL, &file_attr(&a), Generation(0)),
        Err(e) => reply.error(errno(e)),
    }
}

fn reply_attr(reply: ReplyAttr, r: Result<Attr, FsError>) {
    match r {
        Ok(a) => reply.attr(&TTL, &file_attr(&a)),
        Err(e) => reply.error(errno(e)),
    }
}

fn reply_empty(reply: ReplyEmpty, r: Result<(), FsError>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(e)),
    }
}

fn reply_opened(reply: ReplyOpen, r: Result<u64, FsError>, flags: FopenFlags) {
    match r {
        Ok(fh) => reply.opened(FileHandle(fh), flags),
        Err(e) => reply.error(errno(e)),
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    let (kind, nlink) = match a.kind {
        Kind::File => (FileType::RegularFile, 1),
        Kind::Dir => (FileType::Directory, 2),
    };
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: UNIX_EPOCH,
        kind,
        perm: a.perm,
        nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

fn perm(mode: u32, umask: u32) -> u16 {
    // Masked to the permission bits, which fit in u16.
    ((mode & !umask) & 0o7777) as u16
}

impl Filesystem for LazyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let t = self.tree.lock();
        reply_entry(reply, t.lookup(parent.0, name).and_then(|i| t.attr(i)));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        reply_attr(reply, self.tree.lock().attr(ino.0));
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut t = self.tree.lock();
        let r = (|| {
            if let Some(len) = size {
                t.set_len(ino.0, len)?;
            }
            if mode.is_some()
                || uid.is_some()
                || gid.is_some()
                || atime.is_some()
                || mtime.is_some()
            {
                t.set_meta(
                    ino.0,
                    mode.map(|m| perm(m, 0)),
                    uid,
                    gid,
                    atime.map(time),
                    mtime.map(time),
                )?;
            }
            t.attr(ino.0)
        })();
        reply_attr(reply, r);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut t = self.tree.lock();
        let r = t
            .mkdir(parent.0, name, perm(mode, umask), req.uid(), req.gid())
            .and_then(|i| t.attr(i));
        reply_entry(reply, r);
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            reply.error(errno(FsError::Unsupported));
            return;
        }
        let mut t = self.tree.lock();
        let r = t
            .create_file(parent.0, name, perm(mode, umask), req.uid(), req.gid())
            .and_then(|i| t.attr(i));
        reply_entry(reply, r);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.tree.lock().unlink(parent.0, name));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.tree.lock().rmdir(parent.0, name));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            reply.error(errno(FsError::Invalid));
            return;
        }
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        let r = self
            .tree
            .lock()
            .rename(parent.0, name, newparent.0, newname, noreplace);
        reply_empty(reply, r);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut t = self.tree.lock();
        let r = (|| {
            if t.attr(ino.0)?.kind == Kind::Dir {
                return Err(FsError::IsDir);
            }
            if flags.0 & libc::O_TRUNC != 0 {
                t.set_len(ino.0, 0)?;
            }
            t.open(ino.0)
        })();
        reply_opened(reply, r, FopenFlags::FOPEN_DIRECT_IO);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut t = self.tree.lock();
        let r = (|| {
            let ino = match t.lookup(parent.0, name) {
                Ok(_) if flags & libc::O_EXCL != 0 => return Err(FsError::Exists),
                Ok(ino) => {
                    if t.attr(ino)?.kind == Kind::Dir {
                        return Err(FsError::IsDir);
                    }
                    if flags & libc::O_TRUNC != 0 {
                        t.set_len(ino, 0)?;
                    }
                    ino
                }
                Err(_) => t.create_file(parent.0, name, perm(mode, umask), req.uid(), req.gid())?,
            };
            let fh = t.open(ino)?;
            Ok((t.attr(ino)?, fh))
        })();
        match r {
            Ok((a, fh)) => reply.created(
                &TTL,
                &file_attr(&a),
                Generation(0),
                FileHandle(fh),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.tree.lock().read(ino.0, offset, size) {
            Ok(d) => reply.data(d),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.tree.lock().write(ino.0, offset, data) {
            // A single FUSE write is at most max_write (well under 4 GiB).
            Ok(n) => reply.written(u32::try_from(n).unwrap_or(u32::MAX)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close() makes nothing durable.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.tree.lock().release(fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.sync(ino, reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut t = self.tree.lock();
        let r = (|| {
            if t.attr(ino.0)?.kind != Kind::Dir {
                return Err(FsError::NotDir);
            }
            t.open(ino.0)
        })();
        reply_opened(reply, r, FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.tree.lock().readdir(ino.0) {
            Ok(e) => e,
            Err(e) => {
                reply.error(errno(e));
                return;
            }
        };
        let dots = [
            (ino.0, Kind::Dir, OsStr::new(".").to_os_string()),
            (ino.0, Kind::Dir, OsStr::new("..").to_os_string()),
        ];
        let all = dots.into_iter().chain(entries);
        for (i, (child, kind, name)) in all.enumerate().skip(offset as usize) {
            let ft = match kind {
                Kind::File => FileType::RegularFile,
                Kind::Dir => FileType::Directory,
            };
            if reply.add(INodeNo(child), (i + 1) as u64, ft, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.tree.lock().release(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.sync(ino, reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Plenty of room: the model holds data in memory, and a server that checks free
        // space before writing must not refuse.
        let blocks = 1 << 24;
        reply.statfs(blocks, blocks, blocks, 1 << 20, 1 << 20, 4096, 255, 4096);
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if mode != 0 {
            reply.error(errno(FsError::Unsupported));
            return;
        }
        let mut t = self.tree.lock();
        let r = (|| {
            let end = offset.checked_add(length).ok_or(FsError::TooBig)?;
            if end > t.attr(ino.0)?.size {
                t.set_len(ino.0, end)?;
            }
            Ok(())
        })();
        reply_empty(reply, r);
    }
}
