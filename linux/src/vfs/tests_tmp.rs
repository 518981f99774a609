//! `/tmp`: creation, writes, the byte limit, directories, rename, and a
//! long pseudo-random sequence checked against a model.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use mayfly_proto::pack::Pack;

use super::tests::{big, build, read_all, sample};
use super::*;
use crate::abi::*;

const RW: u32 = O_CREAT | O_RDWR;

fn names(vfs: &Vfs<'_>, dir: &[u8]) -> Vec<String> {
    let entries = vfs.list(b"/", dir).unwrap();
    entries
        .iter()
        .skip(2)
        .map(|e| String::from_utf8(e.name.clone()).unwrap())
        .collect()
}

#[test]
fn files_are_created_written_appended_and_truncated() {
    let bytes = build(&[]);
    let mut vfs = Vfs::new(Pack::parse(&bytes).unwrap(), 1 << 20);
    let mut f = vfs.open(b"/tmp", b"f.txt", RW | O_EXCL, 0o640, 11).unwrap();
    assert_eq!(f.path(), b"/tmp/f.txt");
    assert_eq!(f.write(&mut vfs, b"hello", 12), Ok(5));
    assert_eq!(f.write(&mut vfs, b" world", 13), Ok(6));
    assert_eq!(f.seek(&vfs, 0, SEEK_CUR), Ok(11));
    let st = vfs.stat(b"/", b"/tmp/f.txt", true).unwrap();
    assert_eq!(
        (st.mode, st.size, st.mtime_ns, st.uid),
        (S_IFREG | 0o640, 11, 13, UID)
    );
    assert_eq!(f.seek(&vfs, 0, SEEK_SET), Ok(0));
    let mut buf = [0u8; 32];
    assert_eq!(f.read(&vfs, &mut buf), Ok(11));
    assert_eq!(&buf[..11], b"hello world");
    // A write past the end leaves zeros between.
    assert_eq!(f.pwrite(&mut vfs, b"!", 15, 14), Ok(1));
    assert_eq!(read_all(&vfs, &f), b"hello world\0\0\0\0!");
    assert_eq!(f.seek(&vfs, 0, SEEK_CUR), Ok(11), "pwrite left the offset");
    assert_eq!(vfs.tmp_used(), 16);
    // O_APPEND: every write at the end, whatever the offset.
    let mut a = vfs
        .open(b"/", b"/tmp/f.txt", O_WRONLY | O_APPEND, 0, 20)
        .unwrap();
    a.seek(&vfs, 0, SEEK_SET).unwrap();
    assert_eq!(a.write(&mut vfs, b"+", 21), Ok(1));
    assert_eq!(a.seek(&vfs, 0, SEEK_CUR), Ok(17));
    assert_eq!(
        a.pwrite(&mut vfs, b"-", 0, 22),
        Ok(1),
        "Linux appends even for pwrite"
    );
    assert_eq!(read_all(&vfs, &f), b"hello world\0\0\0\0!+-");
    assert_eq!(a.read(&vfs, &mut buf), Err(Errno::EBADF));
    // ftruncate shrinks and grows with zeros; O_TRUNC empties.
    f.truncate(&mut vfs, 5, 30).unwrap();
    assert_eq!(read_all(&vfs, &f), b"hello");
    f.truncate(&mut vfs, 8, 31).unwrap();
    assert_eq!(read_all(&vfs, &f), b"hello\0\0\0");
    assert_eq!(vfs.tmp_used(), 8);
    assert_eq!(vfs.stat(b"/", b"/tmp/f.txt", true).unwrap().mtime_ns, 31);
    let ro = vfs.open(b"/", b"/tmp/f.txt", O_RDONLY, 0, 0).unwrap();
    let mut ro2 = vfs.open(b"/", b"/tmp/f.txt", O_RDONLY, 0, 0).unwrap();
    assert_eq!(
        ro2.truncate(&mut vfs, 0, 0),
        Err(Errno::EINVAL),
        "not open for writing"
    );
    assert_eq!(f.truncate(&mut vfs, u64::MAX, 0), Err(Errno::EINVAL));
    vfs.open(b"/", b"/tmp/f.txt", O_WRONLY | O_TRUNC, 0, 40)
        .unwrap();
    assert_eq!(read_all(&vfs, &ro), b"");
    assert_eq!(vfs.tmp_used(), 0);
    assert_eq!(
        vfs.open(b"/tmp", b"f.txt", RW | O_EXCL, 0o644, 0).err(),
        Some(Errno::EEXIST)
    );
    // O_CREAT of an existing file opens it as it is.
    let again = vfs.open(b"/tmp", b"f.txt", RW, 0o777, 0).unwrap();
    assert_eq!(again.stat(&vfs).mode, S_IFREG | 0o640);
    // Through a symlink of the package into /tmp.
    let big = big();
    let bytes = sample(&big);
    let mut vfs = Vfs::new(Pack::parse(&bytes).unwrap(), 100);
    let mut s = vfs.open(b"/var/task", b"totmp/new", RW, 0o600, 0).unwrap();
    assert_eq!(s.path(), b"/tmp/new");
    assert_eq!(s.write(&mut vfs, b"via link", 0), Ok(8));
    assert_eq!(vfs.stat(b"/", b"/tmp/new", true).unwrap().size, 8);
    assert_eq!(
        vfs.open(b"/var/task", b"totmp", RW | O_EXCL, 0o600, 0)
            .err(),
        Some(Errno::EEXIST)
    );
    assert_eq!(
        vfs.open(b"/var/task", b"dangling", RW | O_EXCL, 0o600, 0)
            .err(),
        Some(Errno::EEXIST)
    );
    assert_eq!(
        vfs.canonical_dir(b"/var/task", b"totmp"),
        Ok(b"/tmp".to_vec())
    );
}

#[test]
fn the_limit_is_exact_and_freed_space_is_reused() {
    let bytes = build(&[]);
    let mut vfs = Vfs::new(Pack::parse(&bytes).unwrap(), 100);
    let mut a = vfs.open(b"/", b"/tmp/a", RW, 0o644, 0).unwrap();
    assert_eq!(a.write(&mut vfs, &[1; 60], 0), Ok(60));
    let mut b = vfs.open(b"/", b"/tmp/b", RW, 0o644, 0).unwrap();
    assert_eq!(
        b.write(&mut vfs, &[2; 60], 0),
        Ok(40),
        "cut short at the limit"
    );
    assert_eq!(vfs.tmp_used(), 100);
    assert_eq!(b.write(&mut vfs, &[2; 1], 0), Err(Errno::ENOSPC));
    assert_eq!(b.write(&mut vfs, &[], 0), Ok(0));
    // Overwriting inside a file needs no room.
    assert_eq!(a.pwrite(&mut vfs, &[3; 60], 0, 0), Ok(60));
    assert_eq!(a.pwrite(&mut vfs, &[3; 10], 55, 0), Ok(5));
    assert_eq!(
        a.truncate(&mut vfs, 61, 0),
        Err(Errno::ENOSPC),
        "truncate is never partial"
    );
    assert_eq!(a.pwrite(&mut vfs, &[3; 1], 1 << 40, 0), Err(Errno::ENOSPC));
    assert_eq!(a.stat(&vfs).size, 60);
    // Shrinking a file makes room.
    a.truncate(&mut vfs, 30, 0).unwrap();
    assert_eq!(vfs.tmp_used(), 70);
    assert_eq!(b.write(&mut vfs, &[2; 50], 0), Ok(30));
    assert_eq!(vfs.tmp_used(), 100);
    // Unlinking an open file keeps its bytes until the last holder drops.
    let a2 = vfs.open(b"/", b"/tmp/a", O_RDONLY, 0, 0).unwrap();
    vfs.unlink(b"/", b"/tmp/a").unwrap();
    assert_eq!(vfs.stat(b"/", b"/tmp/a", true), Err(Errno::ENOENT));
    assert_eq!(names(&vfs, b"/tmp"), ["b"]);
    assert_eq!(read_all(&vfs, &a2), [3; 30]);
    assert_eq!(
        a.write(&mut vfs, &[4; 5], 0),
        Err(Errno::ENOSPC),
        "still counted"
    );
    assert_eq!(vfs.tmp_used(), 100);
    drop(a);
    assert_eq!(vfs.tmp_used(), 100);
    drop(a2);
    assert_eq!(vfs.tmp_used(), 70, "freed with the last holder");
    // Unlinking a closed file frees at once.
    drop(b);
    vfs.unlink(b"/", b"/tmp/b").unwrap();
    assert_eq!(vfs.tmp_used(), 0);
    let mut c = vfs.open(b"/", b"/tmp/c", RW, 0o644, 0).unwrap();
    assert_eq!(c.write(&mut vfs, &[5; 100], 0), Ok(100));
    assert_eq!(c.truncate(&mut vfs, 0, 0), Ok(()));
    assert_eq!(c.pwrite(&mut vfs, &[5; 101], 0, 0), Ok(100));
    // A zero limit holds empty files only.
    let mut none = Vfs::new(Pack::parse(&bytes).unwrap(), 0);
    let mut z = none.open(b"/", b"/tmp/z", RW, 0o644, 0).unwrap();
    assert_eq!(z.write(&mut none, b"x", 0), Err(Errno::ENOSPC));
    assert_eq!(z.truncate(&mut none, 0, 0), Ok(()));
}

#[test]
fn directories_are_made_and_removed() {
    let bytes = build(&[]);
    let mut vfs = Vfs::new(Pack::parse(&bytes).unwrap(), 1000);
    vfs.mkdir(b"/tmp", b"d", 0o750, 5).unwrap();
    vfs.mkdir(b"/tmp/d", b"e/", 0o755, 6).unwrap();
    assert_eq!(vfs.mkdir(b"/", b"/tmp/d", 0o755, 0), Err(Errno::EEXIST));
    assert_eq!(
        vfs.mkdir(b"/", b"/tmp/d/e/..", 0o755, 0),
        Err(Errno::EEXIST)
    );
    assert_eq!(vfs.mkdir(b"/", b"/tmp/x/y", 0o755, 0), Err(Errno::ENOENT));
    let d = vfs.stat(b"/", b"/tmp/d", true).unwrap();
    assert_eq!((d.mode, d.nlink, d.mtime_ns), (S_IFDIR | 0o750, 3, 6));
    assert_eq!(vfs.stat(b"/", b"/tmp", true).unwrap().nlink, 3);
    vfs.open(b"/tmp/d/e", b"f", RW, 0o644, 0).unwrap();
    assert_eq!(
        vfs.canonical_dir(b"/tmp/d/e", b"../e/./"),
        Ok(b"/tmp/d/e".to_vec())
    );
    assert_eq!(vfs.rmdir(b"/", b"/tmp/d"), Err(Errno::ENOTEMPTY));
    assert_eq!(vfs.rmdir(b"/", b"/tmp/d/e/f"), Err(Errno::ENOTDIR));
    assert_eq!(vfs.unlink(b"/", b"/tmp/d/e"), Err(Errno::EISDIR));
    assert_eq!(vfs.unlink(b"/", b"/tmp/d/e/f/"), Err(Errno::ENOTDIR));
    assert_eq!(vfs.rmdir(b"/", b"/tmp"), Err(Errno::EBUSY));
    assert_eq!(vfs.rmdir(b"/", b"/tmp/."), Err(Errno::EINVAL));
    assert_eq!(vfs.rmdir(b"/", b"/tmp/d/.."), Err(Errno::ENOTEMPTY));
    assert_eq!(vfs.rmdir(b"/", b"/tmp/nope"), Err(Errno::ENOENT));
    let mut open_e = vfs
        .open(b"/", b"/tmp/d/e", O_RDONLY | O_DIRECTORY, 0, 0)
        .unwrap();
    vfs.unlink(b"/tmp/d/e", b"f").unwrap();
    vfs.rmdir(b"/", b"/tmp/d/e/").unwrap();
    assert_eq!(vfs.stat(b"/", b"/tmp/d/e", true), Err(Errno::ENOENT));
    assert_eq!(
        open_e.getdents64(&vfs, &mut [0; 256]),
        Err(Errno::ENOENT),
        "a removed directory"
    );
    assert_eq!(
        vfs.open(b"/tmp/d/e", b"g", RW, 0o644, 0).err(),
        Some(Errno::ENOENT)
    );
    assert_eq!(vfs.stat(b"/", b"/tmp/d", true).unwrap().nlink, 2);
    vfs.rmdir(b"/tmp", b"d").unwrap();
    assert!(names(&vfs, b"/tmp").is_empty());
}

#[test]
fn rename_moves_and_replaces_in_one_step() {
    let bytes = build(&[]);
    let mut vfs = Vfs::new(Pack::parse(&bytes).unwrap(), 1000);
    let mut a = vfs.open(b"/", b"/tmp/a", RW, 0o644, 0).unwrap();
    a.write(&mut vfs, b"AAAA", 0).unwrap();
    let mut b = vfs.open(b"/", b"/tmp/b", RW, 0o644, 0).unwrap();
    b.write(&mut vfs, b"BB", 0).unwrap();
    vfs.rename(b"/tmp", b"a", b"b").unwrap();
    assert_eq!(names(&vfs, b"/tmp"), ["b"]);
    let now_b = vfs.open(b"/", b"/tmp/b", O_RDONLY, 0, 0).unwrap();
    assert_eq!(read_all(&vfs, &now_b), b"AAAA");
    assert_eq!(
        read_all(&vfs, &b),
        b"BB",
        "the replaced file lives while open"
    );
    assert_eq!(vfs.tmp_used(), 6);
    drop(b);
    assert_eq!(vfs.tmp_used(), 4);
    assert_eq!(
        a.write(&mut vfs, b"!", 0),
        Ok(1),
        "a handle follows its file"
    );
    vfs.rename(b"/", b"/tmp/b", b"/tmp/b").unwrap();
    assert_eq!(
        vfs.rename(b"/", b"/tmp/missing", b"/tmp/x"),
        Err(Errno::ENOENT)
    );
    assert_eq!(
        vfs.rename(b"/", b"/tmp/b", b"/tmp/nodir/x"),
        Err(Errno::ENOENT)
    );
    assert_eq!(vfs.rename(b"/", b"/tmp/b", b"/tmp/x/"), Err(Errno::ENOTDIR));
    vfs.mkdir(b"/", b"/tmp/d", 0o755, 0).unwrap();
    vfs.mkdir(b"/", b"/tmp/d/sub", 0o755, 0).unwrap();
    vfs.mkdir(b"/", b"/tmp/empty", 0o755, 0).unwrap();
    vfs.mkdir(b"/", b"/tmp/full", 0o755, 0).unwrap();
    vfs.open(b"/", b"/tmp/full/x", RW, 0o644, 0).unwrap();
    assert_eq!(vfs.rename(b"/", b"/tmp/b", b"/tmp/d"), Err(Errno::EISDIR));
    assert_eq!(vfs.rename(b"/", b"/tmp/d", b"/tmp/b"), Err(Errno::ENOTDIR));
    assert_eq!(
        vfs.rename(b"/", b"/tmp/d", b"/tmp/full"),
        Err(Errno::ENOTEMPTY)
    );
    assert_eq!(
        vfs.rename(b"/", b"/tmp/d", b"/tmp/d/sub/d"),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        vfs.rename(b"/", b"/tmp/d", b"/tmp/d/sub"),
        Err(Errno::EINVAL)
    );
    assert_eq!(vfs.rename(b"/", b"/tmp", b"/tmp/t"), Err(Errno::EBUSY));
    assert_eq!(vfs.rename(b"/", b"/tmp/b", b"/tmp"), Err(Errno::EBUSY));
    assert_eq!(vfs.rename(b"/", b"/tmp/d/.", b"/tmp/z"), Err(Errno::EBUSY));
    let mut in_empty = vfs.open(b"/", b"/tmp/empty", O_RDONLY, 0, 0).unwrap();
    vfs.rename(b"/", b"/tmp/d", b"/tmp/empty").unwrap();
    assert_eq!(
        in_empty.getdents64(&vfs, &mut [0; 256]),
        Err(Errno::ENOENT),
        "replaced"
    );
    assert_eq!(names(&vfs, b"/tmp/empty"), ["sub"]);
    vfs.rename(b"/tmp/empty", b"sub", b"../full/sub").unwrap();
    assert_eq!(names(&vfs, b"/tmp/full"), ["sub", "x"]);
    let sub = vfs.list(b"/", b"/tmp/full/sub").unwrap();
    assert_eq!(
        sub[1].ino,
        vfs.stat(b"/", b"/tmp/full", true).unwrap().ino,
        "`..` moved"
    );
    vfs.rename(b"/", b"/tmp/full/x", b"/tmp/full/sub/y")
        .unwrap();
    assert_eq!(names(&vfs, b"/tmp"), ["b", "empty", "full"]);
    assert_eq!(vfs.tmp_used(), 5);
}

#[test]
fn listings_stay_stable_while_entries_change() {
    let bytes = build(&[]);
    let mut vfs = Vfs::new(Pack::parse(&bytes).unwrap(), 1000);
    for i in 0..20 {
        vfs.open(b"/tmp", format!("f{i:02}").as_bytes(), RW, 0o644, 0)
            .unwrap();
    }
    let mut dir = vfs
        .open(b"/", b"/tmp", O_RDONLY | O_DIRECTORY, 0, 0)
        .unwrap();
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let mut buf = [0u8; 64];
    let mut round = 0;
    loop {
        let n = dir.getdents64(&vfs, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        let mut at = 0;
        while at < n {
            let reclen = u16::from_le_bytes([buf[at + 16], buf[at + 17]]) as usize;
            let name = &buf[at + 19..at + reclen];
            seen.push(name[..name.iter().position(|&b| b == 0).unwrap()].to_vec());
            at += reclen;
        }
        // Between calls: remove one name not yet listed and add others
        // before and after the cursor.
        round += 1;
        let _ = vfs.unlink(b"/tmp", format!("f{:02}", 19 - round).as_bytes());
        if round > 1 {
            // The first call stopped before every name, so `a…` is behind
            // the cursor only from the second on.
            vfs.open(b"/tmp", format!("a{round}").as_bytes(), RW, 0o644, 0)
                .unwrap();
        }
        vfs.open(b"/tmp", format!("z{round}").as_bytes(), RW, 0o644, 0)
            .unwrap();
    }
    let mut sorted = seen.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "nothing repeated");
    for i in 0..20 {
        let name = format!("f{i:02}").into_bytes();
        let stayed = vfs.stat(b"/tmp", &name, true).is_ok();
        if stayed {
            assert!(seen.contains(&name), "{i} stayed, so it was listed");
        }
    }
    assert!(
        seen.iter().any(|n| n.starts_with(b"z")),
        "names added ahead are listed"
    );
    assert!(
        !seen.iter().any(|n| n.starts_with(b"a")),
        "names added behind are not"
    );
}

#[test]
fn the_number_of_nodes_is_bounded() {
    let bytes = build(&[]);
    let mut vfs = Vfs::new(Pack::parse(&bytes).unwrap(), 0);
    for i in 1..TMP_MAX_NODES {
        vfs.open(b"/tmp", format!("{i:06}").as_bytes(), RW, 0o644, 0)
            .unwrap();
    }
    assert_eq!(
        vfs.open(b"/tmp", b"one-more", RW, 0o644, 0).err(),
        Some(Errno::ENOSPC)
    );
    assert_eq!(vfs.mkdir(b"/tmp", b"dir", 0o755, 0), Err(Errno::ENOSPC));
    vfs.unlink(b"/tmp", b"000001").unwrap();
    vfs.mkdir(b"/tmp", b"dir", 0o755, 0).unwrap();
}

#[test]
fn a_deep_tree_is_dropped_without_recursion() {
    let bytes = build(&[]);
    let mut vfs = Vfs::new(Pack::parse(&bytes).unwrap(), 0);
    let mut cwd = b"/tmp".to_vec();
    for _ in 0..200 {
        vfs.mkdir(&cwd, b"d", 0o755, 0).unwrap();
        cwd.extend_from_slice(b"/d");
    }
    assert_eq!(
        vfs.canonical_dir(&cwd, b".").map(|p| p.len()),
        Ok(cwd.len())
    );
    // Deeper than paths reach cheaply (walking a 120 KB working directory
    // per level is quadratic), built below the path layer: dropped
    // recursively, 60,000 levels would overflow a test thread's stack.
    let mut dir = vfs.tmp.root.clone();
    for _ in 0..60_000 {
        let node = vfs.tmp.new_node(true, 0o755, 0).unwrap();
        dir.dir()
            .unwrap()
            .insert(b"d".to_vec(), node.clone())
            .unwrap();
        dir = node;
    }
    drop(dir);
    drop(vfs);
}

/// A xorshift generator: the same sequence on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn random_operations_match_a_model() {
    const LIMIT: u64 = 5000;
    let bytes = build(&[]);
    let mut vfs = Vfs::new(Pack::parse(&bytes).unwrap(), LIMIT);
    vfs.mkdir(b"/", b"/tmp/d1", 0o755, 0).unwrap();
    vfs.mkdir(b"/", b"/tmp/d2", 0o755, 0).unwrap();
    let paths: Vec<Vec<u8>> = ["/tmp", "/tmp/d1", "/tmp/d2"]
        .iter()
        .flat_map(|d| (0..4).map(move |i| format!("{d}/f{i}").into_bytes()))
        .collect();
    // The model: files by id, what each path names, the open handles.
    let mut files: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    let mut names: BTreeMap<Vec<u8>, u32> = BTreeMap::new();
    let mut handles: Vec<(u32, OpenFile<'_>)> = Vec::new();
    let mut next_id = 0;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut full, mut compared, mut renamed) = (0, 0, 0);
    for step in 0..4000u64 {
        let path = paths[rng.below(paths.len() as u64) as usize].clone();
        match rng.below(10) {
            0 | 1 => {
                let trunc = rng.below(4) == 0;
                let flags = RW | if trunc { O_TRUNC } else { 0 };
                let f = vfs.open(b"/", &path, flags, 0o644, step).unwrap();
                let id = *names.entry(path.clone()).or_insert_with(|| {
                    next_id += 1;
                    files.insert(next_id, Vec::new());
                    next_id
                });
                if trunc {
                    files.get_mut(&id).unwrap().clear();
                }
                handles.push((id, f));
                if handles.len() > 5 {
                    handles.remove(rng.below(6) as usize);
                }
            }
            2 | 3 if !handles.is_empty() => {
                let h = rng.below(handles.len() as u64) as usize;
                let (len, off) = (rng.below(400) as usize, rng.below(1500));
                let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                let used: u64 = model_used(&files, &names, &handles);
                let (id, f) = &mut handles[h];
                let model = files.get_mut(id).unwrap();
                let cur = model.len() as u64;
                let end = (off + len as u64).min(cur + (LIMIT - used));
                let expect = if len == 0 {
                    Ok(0)
                } else if end <= off {
                    full += 1;
                    Err(Errno::ENOSPC)
                } else {
                    let n = (end - off) as usize;
                    if model.len() < end as usize {
                        model.resize(end as usize, 0);
                    }
                    model[off as usize..end as usize].copy_from_slice(&data[..n]);
                    Ok(n)
                };
                assert_eq!(f.pwrite(&mut vfs, &data, off, step), expect, "step {step}");
            }
            4 if !handles.is_empty() => {
                let h = rng.below(handles.len() as u64) as usize;
                let len = rng.below(1200);
                let used = model_used(&files, &names, &handles);
                let (id, f) = &mut handles[h];
                let model = files.get_mut(id).unwrap();
                let expect = if len > model.len() as u64 && len - model.len() as u64 > LIMIT - used
                {
                    Err(Errno::ENOSPC)
                } else {
                    model.resize(len as usize, 0);
                    Ok(())
                };
                assert_eq!(f.truncate(&mut vfs, len, step), expect, "step {step}");
            }
            5 => {
                let expect = names.remove(&path).map(|_| ()).ok_or(Errno::ENOENT);
                assert_eq!(vfs.unlink(b"/", &path), expect, "step {step}");
            }
            6 => {
                let to = paths[rng.below(paths.len() as u64) as usize].clone();
                let expect = match names.get(&path).copied() {
                    None => Err(Errno::ENOENT),
                    Some(id) => {
                        names.remove(&path);
                        names.insert(to.clone(), id);
                        renamed += 1;
                        Ok(())
                    }
                };
                assert_eq!(vfs.rename(b"/", &path, &to), expect, "step {step}");
            }
            7 if !handles.is_empty() => {
                handles.swap_remove(rng.below(handles.len() as u64) as usize);
            }
            2..=7 => {}
            _ => match names.get(&path) {
                Some(id) => {
                    let f = vfs.open(b"/", &path, O_RDONLY, 0, 0).unwrap();
                    assert_eq!(&read_all(&vfs, &f), &files[id], "step {step}");
                    compared += 1;
                }
                None => assert_eq!(vfs.stat(b"/", &path, true), Err(Errno::ENOENT)),
            },
        }
        files.retain(|id, _| {
            names.values().any(|n| n == id) || handles.iter().any(|(h, _)| h == id)
        });
        assert_eq!(
            vfs.tmp_used(),
            model_used(&files, &names, &handles),
            "step {step}"
        );
        if step % 100 == 0 {
            for dir in [&b"/tmp/d1"[..], b"/tmp/d2"] {
                let mut want: Vec<String> = names
                    .keys()
                    .filter(|p| p.starts_with(dir) && p.len() == dir.len() + 3)
                    .map(|p| String::from_utf8(p[dir.len() + 1..].to_vec()).unwrap())
                    .collect();
                want.sort();
                assert_eq!(self::names(&vfs, dir), want, "step {step}");
            }
        }
    }
    assert!(
        full > 20 && compared > 100 && renamed > 100,
        "{full} {compared} {renamed}"
    );
    drop(handles);
    names.clear();
    for path in &paths {
        let _ = vfs.unlink(b"/", path);
    }
    assert_eq!(vfs.tmp_used(), 0);
}

fn model_used(
    files: &BTreeMap<u32, Vec<u8>>,
    names: &BTreeMap<Vec<u8>, u32>,
    handles: &[(u32, OpenFile<'_>)],
) -> u64 {
    files
        .iter()
        .filter(|(id, _)| names.values().any(|n| n == *id) || handles.iter().any(|(h, _)| h == *id))
        .map(|(_, d)| d.len() as u64)
        .sum()
}
