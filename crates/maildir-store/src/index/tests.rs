use super::*;
use proptest::prelude::*;

fn entry(modseq: u64, name: &str) -> IndexEntry {
    IndexEntry {
        modseq,
        mtime: 1_600_000_000,
        size: 123,
        name: name.to_string(),
    }
}

fn fresh(dir: &Path) -> FolderIndex {
    let mut idx = FolderIndex::default();
    idx.refresh(dir);
    idx
}

#[test]
fn crc32_matches_the_zlib_check_value() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
}

#[test]
fn round_trip_through_the_file_and_appends() {
    let d = tempfile::tempdir().unwrap();
    let mut idx = fresh(d.path());
    idx.ensure_validity(UidValidity(42));
    let start = idx.highest();
    assert!(start >= now_micros() - 60_000_000, "starts at the clock");
    let m1 = idx.next_modseq();
    idx.put(Uid(1), entry(m1, "a:2,S"));
    let m2 = idx.next_modseq();
    idx.put(Uid(2), entry(m2, "b:2,"));
    idx.commit(d.path());
    assert!(m1 > start && m2 > m1);

    let mut other = fresh(d.path());
    assert_eq!(other.uid_validity(), Some(42));
    assert_eq!(other.get(Uid(1)), Some(&entry(m1, "a:2,S")));
    assert_eq!(other.highest(), m2);

    // An append (a flag change) is read as a tail by the other copy.
    let len_before = fs::metadata(d.path().join(INDEX_FILE)).unwrap().len();
    idx.refresh(d.path());
    let m3 = idx.next_modseq();
    idx.put(Uid(2), entry(m3, "b:2,F"));
    idx.remove(Uid(1));
    idx.commit(d.path());
    let len_after = fs::metadata(d.path().join(INDEX_FILE)).unwrap().len();
    assert!(len_after - len_before < 100, "a change appends a few bytes");
    other.refresh(d.path());
    assert_eq!(other.get(Uid(2)), Some(&entry(m3, "b:2,F")));
    assert_eq!(other.get(Uid(1)), None, "expunged");
    assert!(other.highest() > m3, "the expunge raised HIGHESTMODSEQ");
    assert_eq!(other.highest(), idx.highest());
}

#[test]
fn a_torn_tail_is_ignored_and_rewritten_by_the_next_writer() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join(INDEX_FILE);
    let mut idx = fresh(d.path());
    idx.ensure_validity(UidValidity(1));
    let m = idx.next_modseq();
    idx.put(Uid(1), entry(m, "a:2,"));
    idx.commit(d.path());
    idx.refresh(d.path());
    let m2 = idx.next_modseq();
    idx.put(Uid(2), entry(m2, "b:2,"));
    idx.commit(d.path());
    let full = fs::read(&path).unwrap();
    for cut in 1..30 {
        fs::write(&path, &full[..full.len() - cut]).unwrap();
        let mut reader = fresh(d.path());
        assert_eq!(reader.get(Uid(1)), Some(&entry(m, "a:2,")), "cut {cut}");
        assert_eq!(reader.get(Uid(2)), None, "cut {cut}");
        // The next writer rewrites the file, after which it is whole.
        let m3 = reader.next_modseq();
        assert!(m3 > m, "never backwards");
        reader.put(Uid(3), entry(m3, "c:2,"));
        reader.commit(d.path());
        let again = fresh(d.path());
        assert_eq!(again.get(Uid(3)), Some(&entry(m3, "c:2,")));
        assert_eq!(again.len(), 2);
    }
}

#[test]
fn a_corrupt_or_foreign_file_is_never_trusted() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join(INDEX_FILE);
    let mut idx = fresh(d.path());
    idx.ensure_validity(UidValidity(5));
    let m = idx.next_modseq();
    idx.put(Uid(1), entry(m, "a:2,"));
    idx.commit(d.path());
    let good = fs::read(&path).unwrap();

    // A flipped bit in the only message record: the record is dropped.
    let mut bad = good.clone();
    let at = bad.len() - 1;
    bad[at] ^= 1;
    fs::write(&path, &bad).unwrap();
    let reader = fresh(d.path());
    assert_eq!(reader.get(Uid(1)), None);
    assert_eq!(reader.uid_validity(), Some(5));

    // A broken header: nothing trusted; starting over never goes backwards.
    let mut bad = good.clone();
    bad[12] ^= 0xff;
    fs::write(&path, &bad).unwrap();
    let mut reader = fresh(d.path());
    assert!(reader.is_empty());
    assert_eq!(reader.uid_validity(), None);
    reader.ensure_validity(UidValidity(5));
    assert!(reader.next_modseq() > m);

    // Garbage, an absurd length, an empty file: no panic, empty index.
    for junk in [
        vec![0xffu8; 64],
        vec![0u8; 3],
        Vec::new(),
        b"3 V1 N1\n".to_vec(),
    ] {
        fs::write(&path, &junk).unwrap();
        let reader = fresh(d.path());
        assert!(reader.is_empty());
    }

    // Another UIDVALIDITY: the index starts over.
    fs::write(&path, &good).unwrap();
    let mut reader = fresh(d.path());
    reader.ensure_validity(UidValidity(6));
    assert!(reader.is_empty());
    assert!(reader.highest() > m);
}

#[test]
fn a_lost_file_restarts_above_every_earlier_value() {
    let d = tempfile::tempdir().unwrap();
    let mut idx = fresh(d.path());
    idx.ensure_validity(UidValidity(1));
    let mut last = 0;
    // A burst of changes runs ahead of the clock by at most its length.
    for uid in 1..=1000 {
        last = idx.next_modseq();
        idx.put(Uid(uid), entry(last, "x:2,"));
    }
    idx.commit(d.path());
    fs::remove_file(d.path().join(INDEX_FILE)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let mut other = fresh(d.path());
    other.ensure_validity(UidValidity(1));
    assert!(other.next_modseq() > last);
}

#[test]
fn superseded_records_are_compacted() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join(INDEX_FILE);
    let mut idx = fresh(d.path());
    idx.ensure_validity(UidValidity(1));
    for uid in 1..=10 {
        let m = idx.next_modseq();
        idx.put(Uid(uid), entry(m, "x:2,"));
    }
    idx.commit(d.path());
    let small = fs::metadata(&path).unwrap().len();
    for round in 0..300 {
        idx.refresh(d.path());
        for uid in 1..=10 {
            let m = idx.next_modseq();
            idx.put(
                Uid(uid),
                entry(m, if round % 2 == 0 { "x:2,S" } else { "x:2," }),
            );
        }
        idx.commit(d.path());
    }
    let len = fs::metadata(&path).unwrap().len();
    assert!(len < small * 200, "compacted: {len} vs {small}");
    let reader = fresh(d.path());
    assert_eq!(reader.len(), 10);
    assert_eq!(reader.highest(), idx.highest());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any sequence of puts and removes reads back the same, through the
    /// file, whether appended or compacted; any truncation of the file
    /// reads back a prefix of the history and never panics.
    #[test]
    fn index_round_trip_and_truncation(
        ops in proptest::collection::vec((1u32..20, any::<bool>(), "[a-z0-9.,:]{1,20}"), 1..60),
        cut in 0usize..4000,
    ) {
        let d = tempfile::tempdir().unwrap();
        let mut idx = fresh(d.path());
        idx.ensure_validity(UidValidity(9));
        let mut model: HashMap<Uid, IndexEntry> = HashMap::new();
        for (i, (uid, remove, name)) in ops.iter().enumerate() {
            idx.refresh(d.path());
            if *remove {
                idx.remove(Uid(*uid));
                model.remove(&Uid(*uid));
            } else {
                let e = IndexEntry { modseq: idx.next_modseq(), mtime: i as i64, size: 7, name: name.clone() };
                idx.put(Uid(*uid), e.clone());
                model.insert(Uid(*uid), e);
            }
            idx.commit(d.path());
        }
        let reader = fresh(d.path());
        prop_assert_eq!(reader.len(), model.len());
        for (uid, e) in &model {
            prop_assert_eq!(reader.get(*uid), Some(e));
        }
        prop_assert_eq!(reader.highest(), idx.highest());

        let path = d.path().join(INDEX_FILE);
        let bytes = fs::read(&path).unwrap();
        let keep = bytes.len().saturating_sub(cut % (bytes.len() + 1));
        fs::write(&path, &bytes[..keep]).unwrap();
        let mut cut_reader = fresh(d.path());
        prop_assert!(cut_reader.highest() <= idx.highest());
        cut_reader.ensure_validity(UidValidity(9));
        prop_assert!(cut_reader.len() <= model.len().max(reader.len()));
    }

    /// A flipped byte anywhere never panics and never yields an entry that
    /// was not written, nor a HIGHESTMODSEQ above the real one.
    #[test]
    fn index_flipped_bytes_are_never_trusted(
        count in 1u32..40,
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let d = tempfile::tempdir().unwrap();
        let mut idx = fresh(d.path());
        idx.ensure_validity(UidValidity(3));
        let mut written = Vec::new();
        for uid in 1..=count {
            let e = IndexEntry { modseq: idx.next_modseq(), mtime: 5, size: 9, name: format!("n{uid}:2,") };
            idx.put(Uid(uid), e.clone());
            written.push((Uid(uid), e));
            if uid % 7 == 0 {
                idx.commit(d.path());
                idx.refresh(d.path());
            }
        }
        idx.commit(d.path());
        let path = d.path().join(INDEX_FILE);
        let mut bytes = fs::read(&path).unwrap();
        let i = at.index(bytes.len());
        bytes[i] ^= xor;
        fs::write(&path, &bytes).unwrap();
        let reader = fresh(d.path());
        prop_assert!(reader.highest() <= idx.highest());
        for uid in reader.uids() {
            let got = reader.get(uid).unwrap();
            prop_assert!(written.iter().any(|(u, e)| *u == uid && e == got));
        }
    }
}
