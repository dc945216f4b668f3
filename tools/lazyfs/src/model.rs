//! The durability model: an in-memory tree of files and directories that keeps, beside what
//! programs see, what a disk would still hold after a power cut. Pure (no FUSE), so the rules
//! are unit-tested on their own; [`crate::fs`] maps FUSE requests onto it.
//!
//! The rules (strict: anything POSIX does not promise is lost):
//!
//! * **File data and size** become durable at `fsync`/`fdatasync` of that file (either: the
//!   model keeps no metadata besides the size, and the size is data here). Everything written
//!   or truncated since the last sync of the file is lost at a cut.
//! * **Names** (an entry of a directory: a create, `mkdir`, `rename`, `unlink`, `rmdir`) become
//!   durable only at an `fsync` of that directory. A file created and fsynced but whose
//!   directory was not fsynced vanishes; a rename not followed by an fsync of the directories
//!   involved is undone (a rename across directories where only one was fsynced leaves the
//!   file under both names or under neither, as each directory's own entries decide); an
//!   unlink not followed by a directory fsync comes back, with the file's durable data.
//! * A directory's own name is an entry of its parent, so a new directory vanishes (with
//!   everything in it) unless its parent was fsynced after the `mkdir`.
//! * Permissions, owners and times are kept as set (not part of the model: no program here
//!   depends on them after a crash).
//!
//! Optionally ([`Tree::restore`] with a random source) the cut **tears** unsynced data: of
//! each file's bytes written since its last sync, a random prefix (in offset order) survives,
//! ending at a page boundary ([`TEAR_UNIT`]) or at the end of the range, as a disk that had
//! written back some of the dirty pages when the power went. Whole pages, because the page
//! cache writes back whole pages: a tear inside a page (some of its sectors written) is a
//! failure of the disk, not of the file system, and not modelled here.
//!
//! A cut is two steps, as a power loss is seen from outside: [`Tree::cut`] freezes the tree
//! (every change and sync fails with `EIO`, so nothing after the cut can become durable), the
//! test kills the program, and [`Tree::restore`] replaces the tree by its durable view and
//! thaws it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

/// An inode number. Numbers are never reused, so a kernel that still remembers an inode the
/// cut removed gets `ENOENT`, never another file.
pub type Ino = u64;

/// The root directory's inode number (FUSE's).
pub const ROOT: Ino = 1;

/// Largest file the model holds (a write past it fails with `EFBIG`): everything is in memory.
pub const MAX_FILE_SIZE: u64 = 4 << 30;

/// Why an operation was refused; each maps to one errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    Exists,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory not empty")]
    NotEmpty,
    #[error("invalid argument")]
    Invalid,
    #[error("file too large")]
    TooBig,
    #[error("the power is cut: I/O error")]
    PoweredOff,
    #[error("operation not supported")]
    Unsupported,
}

impl FsError {
    /// The errno a program sees.
    pub fn errno(self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::Exists => libc::EEXIST,
            FsError::NotDir => libc::ENOTDIR,
            FsError::IsDir => libc::EISDIR,
            FsError::NotEmpty => libc::ENOTEMPTY,
            FsError::Invalid => libc::EINVAL,
            FsError::TooBig => libc::EFBIG,
            FsError::PoweredOff => libc::EIO,
            FsError::Unsupported => libc::EOPNOTSUPP,
        }
    }
}

/// A file's bytes: what programs see and what the disk holds.
#[derive(Debug, Default, Clone)]
struct FileData {
    cur: Vec<u8>,
    durable: Vec<u8>,
    /// The byte range changed since the last sync (covering every write and truncation).
    dirty: Option<(u64, u64)>,
}

impl FileData {
    fn touch(&mut self, lo: u64, hi: u64) {
        if lo >= hi {
            return;
        }
        self.dirty = Some(match self.dirty {
            None => (lo, hi),
            Some((a, b)) => (a.min(lo), b.max(hi)),
        });
    }
}

/// A directory's entries: what programs see and what the disk holds.
#[derive(Debug, Default, Clone)]
struct DirData {
    cur: BTreeMap<OsString, Ino>,
    durable: BTreeMap<OsString, Ino>,
}

#[derive(Debug, Clone)]
enum Content {
    File(FileData),
    Dir(DirData),
}

/// What kind of node an inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

/// An inode's attributes as a program sees them.
#[derive(Debug, Clone, Copy)]
pub struct Attr {
    pub ino: Ino,
    pub kind: Kind,
    pub size: u64,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
}

#[derive(Debug, Clone)]
struct Node {
    content: Content,
    perm: u16,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
}

impl Node {
    fn new(content: Content, perm: u16, uid: u32, gid: u32) -> Node {
        let now = SystemTime::now();
        Node {
            content,
            perm,
            uid,
            gid,
            atime: now,
            mtime: now,
            ctime: now,
        }
    }

    fn kind(&self) -> Kind {
        match self.content {
            Content::File(_) => Kind::File,
            Content::Dir(_) => Kind::Dir,
        }
    }
}

/// What a [`Tree::restore`] threw away (and, when tearing, kept of the unsynced data).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CutReport {
    /// Files whose content went back to their last synced version.
    pub files_reverted: u64,
    /// Unsynced bytes discarded (the size of the changed ranges).
    pub bytes_dropped: u64,
    /// Unsynced bytes that survived a tear.
    pub bytes_torn_kept: u64,
    /// Directory entries whose unsynced change (create, rename, unlink) was undone.
    pub names_reverted: u64,
    /// Inodes that no durable name reaches any more (unsynced creates) and were removed.
    pub inodes_removed: u64,
}

/// The unit a tear keeps or drops: the page the page cache writes back (x86-64, arm64 4K).
pub const TEAR_UNIT: u64 = 4096;

/// A small deterministic random source for tearing (splitmix64), seeded by the caller.
#[derive(Debug, Clone)]
pub struct TearRng(u64);

impl TearRng {
    pub fn new(seed: u64) -> TearRng {
        TearRng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=n`.
    pub fn upto(&mut self, n: u64) -> u64 {
        match n.checked_add(1) {
            Some(m) => self.next_u64() % m,
            None => self.next_u64(),
        }
    }
}

/// The file system's state.
#[derive(Debug)]
pub struct Tree {
    nodes: HashMap<Ino, Node>,
    next_ino: Ino,
    /// Open file handles: handle -> inode (an unlinked open file lives on until released).
    handles: HashMap<u64, Ino>,
    next_fh: u64,
    frozen: bool,
}

/// A name a new entry may take: not empty, `.` or `..`.
fn check_name(name: &OsStr) -> Result<(), FsError> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(FsError::Invalid);
    }
    Ok(())
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

impl Tree {
    /// An empty file system whose root directory is durable (as a freshly made one is).
    pub fn new() -> Tree {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node::new(Content::Dir(DirData::default()), 0o755, 0, 0),
        );
        Tree {
            nodes,
            next_ino: ROOT + 1,
            handles: HashMap::new(),
            next_fh: 1,
            frozen: false,
        }
    }

    /// True between [`Tree::cut`] and [`Tree::restore`].
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    fn live(&self) -> Result<(), FsError> {
        if self.frozen {
            Err(FsError::PoweredOff)
        } else {
            Ok(())
        }
    }

    fn node(&self, ino: Ino) -> Result<&Node, FsError> {
        self.nodes.get(&ino).ok_or(FsError::NotFound)
    }

    fn node_mut(&mut self, ino: Ino) -> Result<&mut Node, FsError> {
        self.nodes.get_mut(&ino).ok_or(FsError::NotFound)
    }

    fn dir(&self, ino: Ino) -> Result<&DirData, FsError> {
        match &self.node(ino)?.content {
            Content::Dir(d) => Ok(d),
            Content::File(_) => Err(FsError::NotDir),
        }
    }

    fn dir_mut(&mut self, ino: Ino) -> Result<&mut DirData, FsError> {
        match &mut self.node_mut(ino)?.content {
            Content::Dir(d) => Ok(d),
            Content::File(_) => Err(FsError::NotDir),
        }
    }

    fn file_mut(&mut self, ino: Ino) -> Result<&mut FileData, FsError> {
        match &mut self.node_mut(ino)?.content {
            Content::File(f) => Ok(f),
            Content::Dir(_) => Err(FsError::IsDir),
        }
    }

    /// Attributes of `ino`.
    pub fn attr(&self, ino: Ino) -> Result<Attr, FsError> {
        let n = self.node(ino)?;
        let size = match &n.content {
            Content::File(f) => f.cur.len() as u64,
            Content::Dir(d) => d.cur.len() as u64,
        };
        Ok(Attr {
            ino,
            kind: n.kind(),
            size,
            perm: n.perm,
            uid: n.uid,
            gid: n.gid,
            atime: n.atime,
            mtime: n.mtime,
            ctime: n.ctime,
        })
    }

    /// The inode named `name` in directory `parent`.
    pub fn lookup(&self, parent: Ino, name: &OsStr) -> Result<Ino, FsError> {
        self.dir(parent)?
            .cur
            .get(name)
            .copied()
            .ok_or(FsError::NotFound)
    }

    fn add_node(&mut self, parent: Ino, name: &OsStr, node: Node) -> Result<Ino, FsError> {
        self.live()?;
        check_name(name)?;
        if self.dir(parent)?.cur.contains_key(name) {
            return Err(FsError::Exists);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, node);
        self.dir_mut(parent)?.cur.insert(name.to_os_string(), ino);
        self.touch_dir(parent);
        Ok(ino)
    }

    fn touch_dir(&mut self, ino: Ino) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            let now = SystemTime::now();
            n.mtime = now;
            n.ctime = now;
        }
    }

    /// Creates an empty file (not durable until `parent` is fsynced).
    pub fn create_file(
        &mut self,
        parent: Ino,
        name: &OsStr,
        perm: u16,
        uid: u32,
        gid: u32,
    ) -> Result<Ino, FsError> {
        let node = Node::new(Content::File(FileData::default()), perm, uid, gid);
        self.add_node(parent, name, node)
    }

    /// Creates an empty directory (not durable until `parent` is fsynced).
    pub fn mkdir(
        &mut self,
        parent: Ino,
        name: &OsStr,
        perm: u16,
        uid: u32,
        gid: u32,
    ) -> Result<Ino, FsError> {
        let node = Node::new(Content::Dir(DirData::default()), perm, uid, gid);
        self.add_node(parent, name, node)
    }

    /// Removes the file `name` from `parent` (the file lives on while open, and at a cut
    /// comes back unless the removal was made durable).
    pub fn unlink(&mut self, parent: Ino, name: &OsStr) -> Result<(), FsError> {
        self.live()?;
        let ino = self.lookup(parent, name)?;
        if self.node(ino)?.kind() == Kind::Dir {
            return Err(FsError::IsDir);
        }
        self.remove_name(parent, name)
    }

    /// Removes the empty directory `name` from `parent`.
    pub fn rmdir(&mut self, parent: Ino, name: &OsStr) -> Result<(), FsError> {
        self.live()?;
        let ino = self.lookup(parent, name)?;
        if !self.dir(ino)?.cur.is_empty() {
            return Err(FsError::NotEmpty);
        }
        self.remove_name(parent, name)
    }

    /// Drops the current name `name` from `parent` and whatever nothing refers to any more.
    fn remove_name(&mut self, parent: Ino, name: &OsStr) -> Result<(), FsError> {
        self.dir_mut(parent)?.cur.remove(name);
        self.touch_dir(parent);
        self.collect_garbage();
        Ok(())
    }

    /// Renames `parent/name` to `newparent/newname`, replacing a file there (or an empty
    /// directory, when a directory moves), unless `noreplace`.
    pub fn rename(
        &mut self,
        parent: Ino,
        name: &OsStr,
        newparent: Ino,
        newname: &OsStr,
        noreplace: bool,
    ) -> Result<(), FsError> {
        self.live()?;
        check_name(newname)?;
        let ino = self.lookup(parent, name)?;
        self.dir(newparent)?;
        if parent == newparent && name == newname {
            return Ok(());
        }
        let kind = self.node(ino)?.kind();
        if kind == Kind::Dir && self.is_within(newparent, ino) {
            return Err(FsError::Invalid);
        }
        if let Ok(old) = self.lookup(newparent, newname) {
            if noreplace {
                return Err(FsError::Exists);
            }
            match (kind, self.node(old)?.kind()) {
                (Kind::File, Kind::Dir) => return Err(FsError::IsDir),
                (Kind::Dir, Kind::File) => return Err(FsError::NotDir),
                (Kind::Dir, Kind::Dir) if !self.dir(old)?.cur.is_empty() => {
                    return Err(FsError::NotEmpty)
                }
                _ => {}
            }
        }
        self.dir_mut(parent)?.cur.remove(name);
        self.dir_mut(newparent)?
            .cur
            .insert(newname.to_os_string(), ino);
        self.touch_dir(parent);
        self.touch_dir(newparent);
        self.collect_garbage();
        Ok(())
    }

    /// True when `ino` is `dir` or below it (in the current tree).
    fn is_within(&self, ino: Ino, dir: Ino) -> bool {
        let mut stack = vec![dir];
        let mut seen = BTreeSet::new();
        while let Some(d) = stack.pop() {
            if d == ino {
                return true;
            }
            if !seen.insert(d) {
                continue;
            }
            if let Ok(dd) = self.dir(d) {
                stack.extend(dd.cur.values().copied());
            }
        }
        false
    }

    /// The entries of directory `ino`, in name order.
    pub fn readdir(&self, ino: Ino) -> Result<Vec<(Ino, Kind, OsString)>, FsError> {
        let d = self.dir(ino)?;
        Ok(d.cur
            .iter()
            .filter_map(|(name, i)| self.nodes.get(i).map(|n| (*i, n.kind(), name.clone())))
            .collect())
    }

    /// Opens `ino` (a file or a directory); returns a handle for [`Tree::release`].
    pub fn open(&mut self, ino: Ino) -> Result<u64, FsError> {
        self.node(ino)?;
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, ino);
        Ok(fh)
    }

    /// Closes a handle (unknown handles, e.g. from before a cut, are ignored).
    pub fn release(&mut self, fh: u64) {
        if self.handles.remove(&fh).is_some() {
            self.collect_garbage();
        }
    }

    /// Up to `size` bytes of `ino` from `offset`.
    pub fn read(&self, ino: Ino, offset: u64, size: u32) -> Result<&[u8], FsError> {
        match &self.node(ino)?.content {
            Content::File(f) => {
                let len = f.cur.len();
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(len);
                let end = start.saturating_add(size as usize).min(len);
                Ok(&f.cur[start..end])
            }
            Content::Dir(_) => Err(FsError::IsDir),
        }
    }

    /// Writes `data` at `offset` (not durable until the file is fsynced).
    pub fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> Result<usize, FsError> {
        self.live()?;
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|e| *e <= MAX_FILE_SIZE)
            .ok_or(FsError::TooBig)?;
        let f = self.file_mut(ino)?;
        // Both fit in usize: end <= MAX_FILE_SIZE.
        let (start, stop) = (offset as usize, end as usize);
        if f.cur.len() < stop {
            let old = f.cur.len() as u64;
            f.cur.resize(stop, 0);
            // A hole between the old end and the write is a change too.
            f.touch(old.min(offset), offset);
        }
        f.cur[start..stop].copy_from_slice(data);
        f.touch(offset, end);
        if let Ok(n) = self.node_mut(ino) {
            let now = SystemTime::now();
            n.mtime = now;
            n.ctime = now;
        }
        Ok(data.len())
    }

    /// Sets the size of file `ino` (cuts or zero-extends; not durable until fsynced).
    pub fn set_len(&mut self, ino: Ino, len: u64) -> Result<(), FsError> {
        self.live()?;
        if len > MAX_FILE_SIZE {
            return Err(FsError::TooBig);
        }
        let f = self.file_mut(ino)?;
        let old = f.cur.len() as u64;
        f.cur.resize(len as usize, 0);
        f.touch(old.min(len), old.max(len));
        Ok(())
    }

    /// Sets permissions, owner and times (kept as set; outside the model).
    pub fn set_meta(
        &mut self,
        ino: Ino,
        perm: Option<u16>,
        uid: Option<u32>,
        gid: Option<u32>,
        atime: Option<SystemTime>,
        mtime: Option<SystemTime>,
    ) -> Result<(), FsError> {
        self.live()?;
        let n = self.node_mut(ino)?;
        if let Some(p) = perm {
            n.perm = p;
        }
        if let Some(u) = uid {
            n.uid = u;
        }
        if let Some(g) = gid {
            n.gid = g;
        }
        if let Some(t) = atime {
            n.atime = t;
        }
        if let Some(t) = mtime {
            n.mtime = t;
        }
        n.ctime = SystemTime::now();
        Ok(())
    }

    /// `fsync`/`fdatasync`: a file's data, or a directory's entries, become durable.
    pub fn fsync(&mut self, ino: Ino) -> Result<(), FsError> {
        self.live()?;
        match &mut self.node_mut(ino)?.content {
            Content::File(f) => {
                if let Some((lo, hi)) = f.dirty.take() {
                    let len = f.cur.len();
                    f.durable.resize(len, 0);
                    let lo = (lo as usize).min(len);
                    let hi = (hi as usize).min(len);
                    f.durable[lo..hi].copy_from_slice(&f.cur[lo..hi]);
                }
            }
            Content::Dir(d) => d.durable.clone_from(&d.cur),
        }
        Ok(())
    }

    /// The power goes: nothing changes or becomes durable any more until [`Tree::restore`].
    pub fn cut(&mut self) {
        self.frozen = true;
    }

    /// Replaces the tree by its durable view (tearing unsynced data when `tear` is given) and
    /// powers it back on. Open handles are forgotten: the programs that held them are dead.
    pub fn restore(&mut self, mut tear: Option<&mut TearRng>) -> CutReport {
        let mut report = CutReport::default();
        self.handles.clear();
        // Everything a durable name reaches, from the root.
        let reach = self.reachable(vec![ROOT], false);
        let before = self.nodes.len() as u64;
        self.nodes.retain(|ino, _| reach.contains(ino));
        report.inodes_removed = before - self.nodes.len() as u64;
        for node in self.nodes.values_mut() {
            match &mut node.content {
                Content::Dir(d) => {
                    let changed = d
                        .cur
                        .iter()
                        .filter(|(k, v)| d.durable.get(*k) != Some(*v))
                        .count()
                        + d.durable.keys().filter(|k| !d.cur.contains_key(*k)).count();
                    report.names_reverted += changed as u64;
                    d.cur.clone_from(&d.durable);
                }
                Content::File(f) => {
                    let Some((lo, hi)) = f.dirty.take() else {
                        continue;
                    };
                    report.files_reverted += 1;
                    let unsynced = hi - lo;
                    let kept = match tear.as_deref_mut() {
                        Some(rng) => {
                            // A prefix of the changed range reached the disk: it ends
                            // where the range starts, at one of the page boundaries inside
                            // it, or where it ends, each as likely.
                            let cur_len = f.cur.len() as u64;
                            // Multiples of the unit strictly between lo and hi.
                            let first = lo / TEAR_UNIT + 1;
                            let last = hi.saturating_sub(1) / TEAR_UNIT;
                            let inner = (last + 1).saturating_sub(first);
                            let pick = rng.upto(inner + 1);
                            let end = if pick == 0 {
                                lo
                            } else if pick > inner {
                                hi
                            } else {
                                (first + pick - 1) * TEAR_UNIT
                            };
                            let stop = end.min(cur_len.max(lo));
                            let mut data = std::mem::take(&mut f.durable);
                            if (data.len() as u64) < stop {
                                data.resize(stop as usize, 0);
                            }
                            if lo < stop {
                                data[lo as usize..stop as usize]
                                    .copy_from_slice(&f.cur[lo as usize..stop as usize]);
                            }
                            f.durable = data;
                            stop.saturating_sub(lo)
                        }
                        None => 0,
                    };
                    report.bytes_torn_kept += kept;
                    report.bytes_dropped += unsynced - kept.min(unsynced);
                    f.cur.clone_from(&f.durable);
                }
            }
        }
        self.frozen = false;
        report
    }

    /// Drops inodes nothing refers to: no current or durable name, no open handle.
    fn collect_garbage(&mut self) {
        let mut roots: Vec<Ino> = self.handles.values().copied().collect();
        roots.push(ROOT);
        let keep = self.reachable(roots, true);
        self.nodes.retain(|ino, _| keep.contains(ino));
    }

    /// The inodes reachable from `roots` through durable names, and through current names
    /// as well when `current`.
    fn reachable(&self, mut stack: Vec<Ino>, current: bool) -> BTreeSet<Ino> {
        let mut seen = BTreeSet::new();
        while let Some(ino) = stack.pop() {
            if !seen.insert(ino) {
                continue;
            }
            if let Some(Node {
                content: Content::Dir(d),
                ..
            }) = self.nodes.get(&ino)
            {
                if current {
                    stack.extend(d.cur.values().copied());
                }
                stack.extend(d.durable.values().copied());
            }
        }
        seen
    }

    /// Number of inodes held (for tests and the status line).
    pub fn inode_count(&self) -> usize {
        self.nodes.len()
    }

    /// Bytes of file data held (current and durable copies).
    pub fn bytes_held(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| match &n.content {
                Content::File(f) => (f.cur.len() + f.durable.len()) as u64,
                Content::Dir(_) => 0,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    fn content(t: &Tree, parent: Ino, n: &str) -> Option<Vec<u8>> {
        let ino = t.lookup(parent, name(n)).ok()?;
        t.read(ino, 0, u32::MAX).ok().map(<[u8]>::to_vec)
    }

    /// Creates ROOT/a with its name and `data` durable (root and file fsynced).
    fn durable_file(t: &mut Tree, data: &[u8]) -> Ino {
        let f = t.create_file(ROOT, name("a"), 0o644, 0, 0).unwrap();
        t.fsync(ROOT).unwrap();
        t.write(f, 0, data).unwrap();
        t.fsync(f).unwrap();
        f
    }

    #[test]
    fn unsynced_create_vanishes_even_with_file_fsync() {
        let mut t = Tree::new();
        let f = t.create_file(ROOT, name("a"), 0o644, 0, 0).unwrap();
        t.write(f, 0, b"hello").unwrap();
        t.fsync(f).unwrap();
        t.cut();
        let r = t.restore(None);
        assert_eq!(content(&t, ROOT, "a"), None);
        assert_eq!(r.inodes_removed, 1);
        assert_eq!(r.names_reverted, 1);
    }

    #[test]
    fn synced_data_and_name_survive_unsynced_tail_does_not() {
        let mut t = Tree::new();
        let f = durable_file(&mut t, b"hello");
        t.write(f, 5, b" world").unwrap();
        t.write(f, 0, b"J").unwrap();
        t.cut();
        let r = t.restore(None);
        assert_eq!(content(&t, ROOT, "a").as_deref(), Some(&b"hello"[..]));
        assert_eq!(r.files_reverted, 1);
        assert_eq!(r.bytes_dropped, 11);
    }

    #[test]
    fn truncation_is_undone_unless_synced() {
        let mut t = Tree::new();
        let f = durable_file(&mut t, b"0123456789");
        t.set_len(f, 3).unwrap();
        t.cut();
        t.restore(None);
        assert_eq!(content(&t, ROOT, "a").as_deref(), Some(&b"0123456789"[..]));
        t.set_len(f, 3).unwrap();
        t.fsync(f).unwrap();
        t.cut();
        t.restore(None);
        assert_eq!(content(&t, ROOT, "a").as_deref(), Some(&b"012"[..]));
    }

    #[test]
    fn rename_without_directory_fsync_is_undone() {
        let mut t = Tree::new();
        let tmp = t.create_file(ROOT, name("x.tmp"), 0o644, 0, 0).unwrap();
        t.write(tmp, 0, b"new").unwrap();
        t.fsync(tmp).unwrap();
        let old = t.create_file(ROOT, name("x"), 0o644, 0, 0).unwrap();
        t.write(old, 0, b"old").unwrap();
        t.fsync(old).unwrap();
        t.fsync(ROOT).unwrap();
        t.rename(ROOT, name("x.tmp"), ROOT, name("x"), false)
            .unwrap();
        assert_eq!(content(&t, ROOT, "x").as_deref(), Some(&b"new"[..]));
        t.cut();
        t.restore(None);
        assert_eq!(content(&t, ROOT, "x").as_deref(), Some(&b"old"[..]));
        assert_eq!(content(&t, ROOT, "x.tmp").as_deref(), Some(&b"new"[..]));
        // With the directory fsynced the rename holds.
        t.rename(ROOT, name("x.tmp"), ROOT, name("x"), false)
            .unwrap();
        t.fsync(ROOT).unwrap();
        t.cut();
        t.restore(None);
        assert_eq!(content(&t, ROOT, "x").as_deref(), Some(&b"new"[..]));
        assert_eq!(content(&t, ROOT, "x.tmp"), None);
    }

    #[test]
    fn unlink_without_directory_fsync_comes_back() {
        let mut t = Tree::new();
        let f = t.create_file(ROOT, name("a"), 0o644, 0, 0).unwrap();
        t.write(f, 0, b"data").unwrap();
        t.fsync(f).unwrap();
        t.fsync(ROOT).unwrap();
        t.unlink(ROOT, name("a")).unwrap();
        assert_eq!(content(&t, ROOT, "a"), None);
        t.cut();
        t.restore(None);
        assert_eq!(content(&t, ROOT, "a").as_deref(), Some(&b"data"[..]));
        t.unlink(ROOT, name("a")).unwrap();
        t.fsync(ROOT).unwrap();
        t.cut();
        t.restore(None);
        assert_eq!(content(&t, ROOT, "a"), None);
        assert_eq!(t.inode_count(), 1);
    }

    #[test]
    fn new_directory_needs_its_parent_synced() {
        let mut t = Tree::new();
        let d = t.mkdir(ROOT, name("log"), 0o755, 0, 0).unwrap();
        let f = t.create_file(d, name("seg"), 0o644, 0, 0).unwrap();
        t.write(f, 0, b"rec").unwrap();
        t.fsync(f).unwrap();
        t.fsync(d).unwrap();
        t.cut();
        t.restore(None);
        assert_eq!(t.lookup(ROOT, name("log")), Err(FsError::NotFound));
        let d = t.mkdir(ROOT, name("log"), 0o755, 0, 0).unwrap();
        t.fsync(ROOT).unwrap();
        let f = t.create_file(d, name("seg"), 0o644, 0, 0).unwrap();
        t.write(f, 0, b"rec").unwrap();
        t.fsync(f).unwrap();
        t.fsync(d).unwrap();
        t.cut();
        t.restore(None);
        let d = t.lookup(ROOT, name("log")).unwrap();
        assert_eq!(content(&t, d, "seg").as_deref(), Some(&b"rec"[..]));
    }

    #[test]
    fn frozen_tree_refuses_changes_and_syncs() {
        let mut t = Tree::new();
        let f = t.create_file(ROOT, name("a"), 0o644, 0, 0).unwrap();
        t.fsync(ROOT).unwrap();
        t.write(f, 0, b"x").unwrap();
        t.cut();
        assert_eq!(t.fsync(f), Err(FsError::PoweredOff));
        assert_eq!(t.write(f, 1, b"y"), Err(FsError::PoweredOff));
        assert_eq!(
            t.create_file(ROOT, name("b"), 0o644, 0, 0),
            Err(FsError::PoweredOff)
        );
        t.restore(None);
        assert_eq!(content(&t, ROOT, "a").as_deref(), Some(&b""[..]));
        assert!(!t.is_frozen());
    }

    #[test]
    fn tearing_keeps_a_prefix_of_the_unsynced_range_up_to_a_page_boundary() {
        let mut want = b"synced|".to_vec();
        want.extend((0..3 * TEAR_UNIT).map(|i| (i % 251) as u8 + 1));
        let mut seen = BTreeSet::new();
        for seed in 0..64 {
            let mut t = Tree::new();
            let f = durable_file(&mut t, &want[..7]);
            t.write(f, 7, &want[7..]).unwrap();
            t.cut();
            let mut rng = TearRng::new(seed);
            let r = t.restore(Some(&mut rng));
            let got = content(&t, ROOT, "a").unwrap();
            assert!(want.starts_with(&got), "not a prefix: {} bytes", got.len());
            assert_eq!(r.bytes_torn_kept + r.bytes_dropped, 3 * TEAR_UNIT);
            seen.insert(got.len() as u64);
        }
        // Nothing, up to each of the three page boundaries inside the range, or all of it.
        let all = 7 + 3 * TEAR_UNIT;
        let expected: BTreeSet<u64> = [7, TEAR_UNIT, 2 * TEAR_UNIT, 3 * TEAR_UNIT, all].into();
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_tear_inside_one_page_keeps_all_or_nothing() {
        let mut seen = BTreeSet::new();
        for seed in 0..32 {
            let mut t = Tree::new();
            let f = durable_file(&mut t, b"synced|");
            t.write(f, 7, b"abcdefgh").unwrap();
            t.cut();
            t.restore(Some(&mut TearRng::new(seed)));
            seen.insert(content(&t, ROOT, "a").unwrap());
        }
        let expected: BTreeSet<Vec<u8>> = [b"synced|".to_vec(), b"synced|abcdefgh".to_vec()].into();
        assert_eq!(seen, expected);
    }

    #[test]
    fn writes_past_the_limit_are_refused_not_allocated() {
        let mut t = Tree::new();
        let f = t.create_file(ROOT, name("a"), 0o644, 0, 0).unwrap();
        assert_eq!(t.write(f, u64::MAX - 1, b"xy"), Err(FsError::TooBig));
        assert_eq!(t.write(f, MAX_FILE_SIZE, b"x"), Err(FsError::TooBig));
        assert_eq!(t.set_len(f, MAX_FILE_SIZE + 1), Err(FsError::TooBig));
    }
}
