//! Trace formats, the lackey converter and the replacement policies.

use oxmm_sim::trace::binary::{self, encode, BinaryReader, Trailer, HEADER_LEN};
use oxmm_sim::trace::lackey::{self, convert};
use oxmm_sim::trace::{
    pages, read_all, simulate, Dedup, Format, Kind, Location, Policy, Record, RefString, TraceReader, MAX_PAGE,
};
use proptest::prelude::*;

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Instr), Just(Kind::Read), Just(Kind::Write)]
}

fn record() -> impl Strategy<Value = Record> {
    // Mostly nearby pages (like a program), sometimes anywhere, and the extremes.
    let page = prop_oneof![4 => 0u64..64, 2 => 0x7ff0_0000u64..0x7ff0_0100, 1 => 0..=MAX_PAGE, 1 => Just(MAX_PAGE)];
    (page, kind()).prop_map(|(page, kind)| Record { page, kind })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn compact_format_round_trips(recs in proptest::collection::vec(record(), 0..300), accesses in any::<u64>()) {
        let bytes = encode(&recs, accesses).unwrap();
        let mut r = BinaryReader::new(&bytes[..], "t").unwrap();
        let back: Vec<Record> = r.by_ref().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(&back, &recs);
        let distinct = recs.iter().map(|r| r.page).collect::<std::collections::HashSet<_>>().len() as u64;
        prop_assert_eq!(r.trailer(), Some(Trailer { records: recs.len() as u64, accesses, distinct_pages: distinct }));
        // Detected without being told, too.
        prop_assert_eq!(read_all(&bytes, "t", None).unwrap(), recs);
    }

    #[test]
    fn any_prefix_or_corruption_is_an_error_not_a_panic(
        recs in proptest::collection::vec(record(), 1..50),
        cut in any::<prop::sample::Index>(),
        flip in any::<(prop::sample::Index, u8)>(),
    ) {
        let bytes = encode(&recs, 7).unwrap();
        let cut = cut.index(bytes.len());
        let e = read_all(&bytes[..cut], "cut.trace", Some(Format::Oxmm)).unwrap_err();
        prop_assert!(e.to_string().starts_with("cut.trace: byte "), "{}", e);
        let mut bad = bytes.clone();
        let i = flip.0.index(bad.len());
        bad[i] ^= flip.1 | 1;
        let _ = read_all(&bad, "bad.trace", None);
    }

    #[test]
    fn pages_format_round_trips(recs in proptest::collection::vec(record(), 0..200)) {
        let text = pages::write(recs.iter().copied(), Vec::new()).unwrap();
        prop_assert_eq!(read_all(&text, "p", Some(Format::Pages)).unwrap(), recs.clone());
        prop_assert_eq!(read_all(&text, "p", None).unwrap(), recs);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "[ILSM =,0-9a-fx#\n\r]{0,200}") {
        for f in [None, Some(Format::Lackey), Some(Format::Pages), Some(Format::Oxmm)] {
            let _ = read_all(text.as_bytes(), "fuzz", f);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        for f in [None, Some(Format::Lackey), Some(Format::Pages), Some(Format::Oxmm)] {
            let _ = read_all(&bytes, "fuzz", f);
        }
        let mut with_magic = binary::MAGIC.to_vec();
        with_magic.extend_from_slice(&[1, 0, 12, 0]);
        with_magic.extend_from_slice(&bytes);
        let _ = read_all(&with_magic, "fuzz", None);
    }

    #[test]
    fn policies_match_reference_implementations(
        refs in proptest::collection::vec(0u64..12, 0..200),
        frames in 0usize..14,
    ) {
        let s = RefString::from_pages(refs.iter().copied()).unwrap();
        for p in [Policy::Lru, Policy::Fifo, Policy::Opt] {
            let st = simulate(p, frames, &s);
            prop_assert_eq!(st.misses, reference_misses(p, frames, &refs), "{} with {} frames", p, frames);
            prop_assert_eq!(st.hits + st.misses, refs.len() as u64);
        }
        let opt = simulate(Policy::Opt, frames, &s).misses;
        for p in Policy::ALL {
            let st = simulate(p, frames, &s);
            prop_assert!(st.misses >= opt, "{} beat Belady", p);
            prop_assert!(st.misses >= st.cold_misses);
            prop_assert_eq!(st.cold_misses, s.distinct() as u64);
        }
    }
}

/// Straightforward O(frames) implementations to check the fast ones against.
fn reference_misses(policy: Policy, frames: usize, refs: &[u64]) -> u64 {
    let mut mem: Vec<u64> = Vec::new(); // LRU: least recent first; FIFO: oldest first
    let mut misses = 0;
    for (i, &p) in refs.iter().enumerate() {
        if let Some(pos) = mem.iter().position(|&q| q == p) {
            if policy == Policy::Lru {
                mem.remove(pos);
                mem.push(p);
            }
            continue;
        }
        misses += 1;
        if frames == 0 {
            continue;
        }
        if mem.len() == frames {
            let victim = match policy {
                Policy::Opt => {
                    let next = |q: u64| refs[i + 1..].iter().position(|&r| r == q).unwrap_or(usize::MAX);
                    (0..mem.len()).max_by_key(|&k| next(mem[k])).unwrap()
                }
                _ => 0,
            };
            mem.remove(victim);
        }
        mem.push(p);
    }
    misses
}

#[test]
fn belady_anomaly_for_fifo() {
    let s = RefString::from_pages([1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5]).unwrap();
    assert_eq!(simulate(Policy::Fifo, 3, &s).misses, 9);
    assert_eq!(simulate(Policy::Fifo, 4, &s).misses, 10);
    // LRU is a stack algorithm: no anomaly.
    assert_eq!(simulate(Policy::Lru, 3, &s).misses, 10);
    assert_eq!(simulate(Policy::Lru, 4, &s).misses, 8);
    assert_eq!(simulate(Policy::Opt, 3, &s).misses, 7);
    assert_eq!(simulate(Policy::Opt, 4, &s).misses, 6);
}

#[test]
fn clock_gives_a_second_chance() {
    // 3 frames: 1 2 3 fill; 1 is referenced; 4 sweeps: 1 (referenced -> cleared), evicts 2;
    // then 1 hits, 2 misses and evicts 3 (1 is referenced again and survives).
    let s = RefString::from_pages([1, 2, 3, 1, 4, 1, 2, 1]).unwrap();
    let st = simulate(Policy::Clock, 3, &s);
    assert_eq!((st.misses, st.hits, st.cold_misses, st.refaults(), st.evictions), (5, 3, 4, 1, 2));
    // FIFO evicts 1 there instead.
    assert_eq!(simulate(Policy::Fifo, 3, &s).misses, 6);
}

#[test]
fn edge_frame_counts() {
    let s = RefString::from_pages([5, 6, 5, 7, 6]).unwrap();
    for p in Policy::ALL {
        let none = simulate(p, 0, &s);
        assert_eq!((none.misses, none.evictions, none.cold_misses), (5, 0, 3), "{p}");
        let all = simulate(p, 3, &s);
        assert_eq!((all.misses, all.hits, all.evictions), (3, 2, 0), "{p}");
        let one = simulate(p, 1, &s);
        assert_eq!((one.misses, one.evictions), (5, 4), "{p}");
    }
    let empty = RefString::from_pages([]).unwrap();
    assert_eq!(simulate(Policy::Opt, 4, &empty).accesses, 0);
    assert_eq!(simulate(Policy::Opt, 4, &empty).miss_ratio(), 0.0);
}

#[test]
fn policy_and_format_names() {
    for p in Policy::ALL {
        assert_eq!(p.name().parse::<Policy>(), Ok(p));
    }
    assert!("lfu2".parse::<Policy>().unwrap_err().contains("lru, fifo, clock, opt, random"));
    for f in Format::ALL {
        assert_eq!(f.name().parse::<Format>(), Ok(f));
    }
    assert!("csv".parse::<Format>().unwrap_err().contains("oxmm, lackey, pages"));
}

#[test]
fn ref_string_is_dense_in_first_touch_order() {
    let recs = [
        Record::new(0x7ff00, Kind::Instr),
        Record::new(9, Kind::Write),
        Record::new(0x7ff00, Kind::Read),
        Record::new(3, Kind::Read),
    ];
    let s = RefString::from_records(recs.iter().map(|r| Ok::<_, String>(*r))).unwrap();
    assert_eq!(s.refs(), [0, 1, 0, 2]);
    assert_eq!(s.pages(), [0x7ff00, 9, 3]);
    assert_eq!((s.count(Kind::Instr), s.count(Kind::Read), s.count(Kind::Write)), (1, 2, 1));
    assert_eq!((s.len(), s.distinct(), s.is_empty()), (4, 3, false));
}

const LACKEY: &str = "==3162== Lackey, an example Valgrind tool
==3162== Command: true
==3162== 
I  0401ab70,3
 S 1fff000698,8
I  0401ab73,5
 L 0401bffc,8
 M 0402a000,4
I  0401ab78,2

 L 00000fff,1
==3162== Exit code:       0
";

#[test]
fn lackey_records_and_straddling() {
    let recs = read_all(LACKEY.as_bytes(), "lk", None).unwrap();
    let r = |p, k| Record::new(p, k);
    assert_eq!(
        recs,
        [
            r(0x401a, Kind::Instr),
            r(0x1fff000, Kind::Write),
            r(0x401a, Kind::Instr),
            // 8 bytes at 0x401bffc cross into 0x401c000.
            r(0x401b, Kind::Read),
            r(0x401c, Kind::Read),
            r(0x402a, Kind::Write),
            r(0x401a, Kind::Instr),
            r(0, Kind::Read),
        ]
    );
    let mut reader = TraceReader::new(LACKEY.as_bytes(), "lk", None).unwrap();
    assert_eq!(reader.format(), Format::Lackey);
    assert_eq!(reader.by_ref().count(), 8);
    assert_eq!(reader.accesses(), 7);
}

#[test]
fn lackey_conversion_collapses_repeats_and_keeps_counts() {
    let text = "I  1000,4\nI  1004,4\n L 1008,4\nI  1008,4\n S 2ffe,4\n";
    let (bytes, s) = convert(text.as_bytes(), "lk", Vec::new(), "out").unwrap();
    let recs = read_all(&bytes, "out", None).unwrap();
    let r = |p, k| Record::new(p, k);
    assert_eq!(recs, [r(1, Kind::Instr), r(1, Kind::Read), r(1, Kind::Instr), r(2, Kind::Write), r(3, Kind::Write)]);
    assert_eq!((s.lines, s.written.accesses, s.written.records, s.written.distinct_pages), (5, 5, 5, 3));
    assert_eq!(s.written.bytes, bytes.len() as u64);
    let mut d = Dedup::new();
    assert!(d.keep(r(1, Kind::Read)) && !d.keep(r(1, Kind::Read)) && d.keep(r(1, Kind::Write)));
}

#[test]
fn lackey_errors_name_the_line() {
    let text = "==1== hello\nI  1000,4\n L 1008\n";
    let e = read_all(text.as_bytes(), "prog.lackey", Some(Format::Lackey)).unwrap_err();
    assert_eq!(e.at, Location::Line(3));
    assert!(e.to_string().starts_with("prog.lackey:3: not a lackey line: ` L 1008`"), "{e}");
    let e = convert("I  1000,4\nI  zz,4\n".as_bytes(), "in", Vec::new(), "out").unwrap_err();
    assert!(e.to_string().starts_with("in:2: bad address `zz`"), "{e}");
    let e = read_all(b"I  ffffffffffffffff,2\n", "in", None).unwrap_err();
    assert!(e.to_string().contains("past the end of the address space"), "{e}");
    let e = read_all(b" L 10,2000000\n", "in", None).unwrap_err();
    assert!(e.to_string().contains("larger than"), "{e}");
    // A line that is not UTF-8 is shown lossily, not a panic.
    assert!(read_all(b"I  10,4\n\xff\xfe\n", "in", Some(Format::Lackey)).is_err());
    assert!(lackey::parse_line(b"I  ffffffffffffffff,1").is_ok(), "the last byte itself is fine");
}

#[test]
fn pages_errors_name_the_line() {
    let text = "# page refs\n1\n0x2000 W\n\nthree\n";
    let e = read_all(text.as_bytes(), "refs.txt", None).unwrap_err();
    assert_eq!(e.at, Location::Line(5));
    assert!(e.to_string().starts_with("refs.txt:5: `three` is not a page number"), "{e}");
    let e = read_all(b"1\n\xff\n", "refs.txt", Some(Format::Pages)).unwrap_err();
    assert_eq!(e.to_string(), "refs.txt:2: not UTF-8 text");
}

#[test]
fn binary_errors_name_the_byte() {
    let e = read_all(b"hello world!", "x.trace", Some(Format::Oxmm)).unwrap_err();
    assert_eq!(e.to_string(), "x.trace: byte 0: not an oxmm trace (no `OXMMTRC` magic)");
    let mut v = encode(&[Record::new(1, Kind::Read)], 1).unwrap();
    v[8] = 9;
    let e = read_all(&v, "x.trace", None).unwrap_err();
    assert!(e.to_string().contains("unsupported trace version 9"), "{e}");
    let v = encode(&[Record::new(1, Kind::Read)], 1).unwrap();
    let e = read_all(&v[..HEADER_LEN + 1], "x.trace", None).unwrap_err();
    assert!(e.to_string().contains("truncated: no end mark after 1 records"), "{e}");
    let mut extra = v.clone();
    extra.push(0);
    let e = read_all(&extra, "x.trace", None).unwrap_err();
    assert!(e.to_string().contains("data after the trailer"), "{e}");
    let e = read_all(&binary::MAGIC[..5], "x.trace", Some(Format::Oxmm)).unwrap_err();
    assert!(e.to_string().contains("truncated header"), "{e}");
}

#[test]
fn detects_each_format() {
    assert_eq!(Format::detect(b"OXMMTRC\0\x01\0\x0c\0"), Format::Oxmm);
    assert_eq!(Format::detect(b"==12== Lackey\n"), Format::Lackey);
    assert_eq!(Format::detect(b"\n I  10,4\n"), Format::Pages, "an indented I is not lackey");
    assert_eq!(Format::detect(b"I  10,4\n"), Format::Lackey);
    assert_eq!(Format::detect(b" L 10,4\n"), Format::Lackey);
    assert_eq!(Format::detect(b"# refs\n12\n"), Format::Pages);
    assert_eq!(Format::detect(b""), Format::Pages);
}
