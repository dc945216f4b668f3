//! The lazy file system mounted for real (FUSE), driven by ordinary `std::fs` calls and cut
//! through its control socket. Needs `/dev/fuse` and root (or `fusermount3`): `.ci/powercut`
//! installs what it needs and runs these. Without FUSE they FAIL (loudly, with the reason),
//! never skip: a power-cut test that silently did not run would prove nothing.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use rill_lazyfs::control::request;

mod common;
use common::Mounted;

fn sync_dir(p: &Path) {
    File::open(p).and_then(|d| d.sync_all()).expect("fsync dir");
}

fn field(report: &str, key: &str) -> u64 {
    report
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {report:?}"))
}

#[test]
fn unsynced_write_is_gone_synced_write_is_kept() {
    let m = Mounted::new("data", None);
    let mut f = File::create(m.path("f")).expect("create");
    sync_dir(&m.mnt);
    f.write_all(b"durable").expect("write");
    f.sync_data().expect("fdatasync");
    f.write_all(b" and lost").expect("write");
    drop(f);
    let mut g = File::create(m.path("never-synced")).expect("create");
    g.write_all(b"gone").expect("write");
    drop(g);
    sync_dir(&m.mnt);
    assert_eq!(fs::read(m.path("f")).expect("read"), b"durable and lost");
    let report = m.power_cycle();
    assert_eq!(fs::read(m.path("f")).expect("read"), b"durable");
    // The name of never-synced is durable (its directory was fsynced), its data is not.
    assert_eq!(fs::read(m.path("never-synced")).expect("read"), b"");
    assert_eq!(field(&report, "bytes_dropped"), 9 + 4, "{report}");
}

#[test]
fn new_file_without_directory_fsync_vanishes() {
    let m = Mounted::new("create", None);
    let mut f = File::create(m.path("new")).expect("create");
    f.write_all(b"data").expect("write");
    f.sync_all().expect("fsync");
    drop(f);
    m.power_cycle();
    assert!(
        !m.path("new").exists(),
        "an unsynced create survived the cut"
    );
    // With the directory synced it stays.
    let mut f = File::create(m.path("new")).expect("create");
    f.write_all(b"data").expect("write");
    f.sync_all().expect("fsync");
    sync_dir(&m.mnt);
    m.power_cycle();
    assert_eq!(fs::read(m.path("new")).expect("read"), b"data");
}

#[test]
fn rename_without_directory_fsync_is_undone() {
    let m = Mounted::new("rename", None);
    fs::write(m.path("ckp"), b"old").expect("write");
    File::open(m.path("ckp"))
        .and_then(|f| f.sync_all())
        .expect("fsync");
    fs::write(m.path("ckp.tmp"), b"new").expect("write");
    File::open(m.path("ckp.tmp"))
        .and_then(|f| f.sync_all())
        .expect("fsync");
    sync_dir(&m.mnt);
    fs::rename(m.path("ckp.tmp"), m.path("ckp")).expect("rename");
    assert_eq!(fs::read(m.path("ckp")).expect("read"), b"new");
    m.power_cycle();
    assert_eq!(fs::read(m.path("ckp")).expect("read"), b"old");
    assert_eq!(fs::read(m.path("ckp.tmp")).expect("read"), b"new");
    fs::rename(m.path("ckp.tmp"), m.path("ckp")).expect("rename");
    sync_dir(&m.mnt);
    m.power_cycle();
    assert_eq!(fs::read(m.path("ckp")).expect("read"), b"new");
    assert!(!m.path("ckp.tmp").exists());
}

#[test]
fn unlink_and_mkdir_follow_their_directory_fsync() {
    let m = Mounted::new("unlink", None);
    fs::write(m.path("seg"), b"records").expect("write");
    File::open(m.path("seg"))
        .and_then(|f| f.sync_all())
        .expect("fsync");
    fs::create_dir(m.path("log")).expect("mkdir");
    fs::write(m.path("log/inner"), b"x").expect("write");
    sync_dir(&m.path("log"));
    sync_dir(&m.mnt);
    fs::remove_file(m.path("seg")).expect("unlink");
    fs::create_dir(m.path("log2")).expect("mkdir");
    sync_dir(&m.path("log2"));
    m.power_cycle();
    assert_eq!(fs::read(m.path("seg")).expect("read"), b"records");
    assert!(m.path("log/inner").exists());
    assert!(
        !m.path("log2").exists(),
        "mkdir without a parent fsync survived"
    );
}

#[test]
fn writes_after_the_cut_fail_and_never_become_durable() {
    let m = Mounted::new("frozen", None);
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(m.path("f"))
        .expect("create");
    sync_dir(&m.mnt);
    request(&m.ctl, "cut").expect("cut");
    assert!(
        f.write_all(b"late").is_err(),
        "a write after the cut succeeded"
    );
    assert!(f.sync_all().is_err(), "an fsync after the cut succeeded");
    request(&m.ctl, "restore").expect("restore");
    drop(f);
    assert_eq!(fs::read(m.path("f")).expect("read"), b"");
}

#[test]
fn torn_tail_keeps_a_prefix_of_the_unsynced_pages() {
    let m = Mounted::new("tear", Some(7));
    let page = rill_lazyfs::model::TEAR_UNIT as usize;
    let mut want = b"synced.".to_vec();
    want.extend((0..2 * page).map(|i| (i % 251) as u8 + 1));
    let mut lens = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(m.path("log"))
            .expect("open");
        f.write_all(&want[..7]).expect("write");
        f.sync_all().expect("fsync");
        sync_dir(&m.mnt);
        f.write_all(&want[7..]).expect("write");
        drop(f);
        m.power_cycle();
        let got = fs::read(m.path("log")).expect("read");
        assert!(
            want.starts_with(&got) && got.len() >= 7,
            "torn content is not a prefix ({} bytes)",
            got.len()
        );
        assert!(
            [7, page, 2 * page, want.len()].contains(&got.len()),
            "a tear inside a page: {} bytes kept",
            got.len()
        );
        lens.insert(got.len());
    }
    assert!(lens.len() > 2, "tears at too few places: {lens:?}");
}
