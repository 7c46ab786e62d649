//! `pillar keygen` never overwrites a key, and never leaves a pair that does not match.
#![allow(clippy::unwrap_used)]

mod common;

use common::pillar;
use predicates::str::contains;

#[test]
fn an_existing_half_of_a_pair_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let name = dir.path().join("server");
    pillar()
        .arg("keygen")
        .arg("--out")
        .arg(&name)
        .assert()
        .success();
    let (secret, public) = (name.with_extension("key"), name.with_extension("pub"));
    let old_public = std::fs::read(&public).unwrap();
    // The secret lost (or moved away), its public key still with the peers.
    std::fs::remove_file(&secret).unwrap();
    pillar()
        .arg("keygen")
        .arg("--out")
        .arg(&name)
        .assert()
        .failure()
        .stderr(contains("server.pub exists"));
    assert!(
        !secret.exists(),
        "a new secret was written beside the old public key"
    );
    assert_eq!(std::fs::read(&public).unwrap(), old_public);
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "{names:?}");
}
