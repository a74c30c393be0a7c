//! Replays every saved input (`regressions/<target>/*` and the seed corpus
//! `seeds/<target>/*`) through the same checks as the fuzz targets, on
//! stable Rust: `cargo test --manifest-path fuzz/Cargo.toml`.

use std::path::{Path, PathBuf};

type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 4] = [
    ("policy_parse", cairn_fuzz::policy::check),
    ("raft_codec", cairn_fuzz::raft_codec::check),
    ("request_router", cairn_fuzz::router::check),
    ("unseal_share", cairn_fuzz::unseal::check),
];

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".gitkeep"))
        .collect();
    files.sort();
    files
}

fn replay(kind: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(kind);
    let mut count = 0;
    for (target, check) in TARGETS {
        for file in inputs(&root.join(target)) {
            let data = std::fs::read(&file).expect("read input");
            eprintln!("replaying {}", file.display());
            check(&data);
            count += 1;
        }
    }
    count
}

#[test]
fn regression_inputs_pass() {
    replay("regressions");
}

#[test]
fn seed_inputs_pass() {
    // The seed corpus is committed; an empty one means the path is wrong.
    assert!(replay("seeds") > 0, "no seed inputs found");
}
