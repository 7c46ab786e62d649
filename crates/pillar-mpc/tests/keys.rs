//! Key files: what `pillar keygen` writes is read back to the same key, the secret stays
//! private (file mode, `Debug`), and anything else is a clear error.
#![allow(clippy::unwrap_used)]

use pillar_mpc::channel::{Identity, PublicKey};

#[test]
fn a_saved_key_pair_loads_back_and_keeps_its_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = (dir.path().join("a.key"), dir.path().join("a.pub"));
    let identity = Identity::generate();
    identity.save(&secret, &public).unwrap();
    let loaded = Identity::load(&secret).unwrap();
    assert_eq!(loaded.public(), identity.public());
    let pinned = PublicKey::load(public.to_str().unwrap()).unwrap();
    assert_eq!(pinned, identity.public());
    // The key as text works too, with or without its tag.
    let hex = identity.public().to_string();
    assert_eq!(hex.len(), 64);
    assert_eq!(PublicKey::load(&hex).unwrap(), identity.public());
    // Two key pairs differ, and a secret never shows in Debug.
    let other = Identity::generate();
    assert_ne!(other.public(), identity.public());
    let secret_text = std::fs::read_to_string(&secret).unwrap();
    let secret_hex = secret_text.split_whitespace().last().unwrap();
    assert!(!format!("{identity:?}").contains(secret_hex));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the secret key is readable by others: {mode:o}"
        );
    }
    // Existing files are not overwritten.
    let err = Identity::generate().save(&secret, &public).unwrap_err();
    assert!(err.to_string().contains("a.key"), "{err}");
    assert_eq!(Identity::load(&secret).unwrap().public(), identity.public());
}

#[test]
fn wrong_key_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = (dir.path().join("b.key"), dir.path().join("b.pub"));
    Identity::generate().save(&secret, &public).unwrap();
    // Each half where the other belongs.
    let err = Identity::load(&public).unwrap_err();
    assert!(err.to_string().contains("public key"), "{err}");
    let err = PublicKey::load(secret.to_str().unwrap()).unwrap_err();
    assert!(err.to_string().contains("secret key"), "{err}");
    // Garbage, short keys, missing files.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, "hello").unwrap();
    assert!(Identity::load(&junk).is_err());
    assert!(PublicKey::load(junk.to_str().unwrap()).is_err());
    assert!(PublicKey::load("abcd").is_err());
    assert!(PublicKey::load(&"zz".repeat(32)).is_err());
    let err = Identity::load(&dir.path().join("missing.key")).unwrap_err();
    assert!(err.to_string().contains("missing.key"), "{err}");
}

/// The encodings of Curve25519's points of small order (and their non-canonical twins): a
/// peer "holding" one of these needs no secret at all, since every Diffie-Hellman with it is
/// all zeros.
const LOW_ORDER: [&str; 7] = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
];

#[test]
fn low_order_public_keys_are_refused_as_text_and_in_files() {
    let dir = tempfile::tempdir().unwrap();
    for (i, hex) in LOW_ORDER.iter().enumerate() {
        let err = PublicKey::load(hex).unwrap_err().to_string();
        assert!(err.contains("low order"), "{hex}: {err}");
        // An edited trust file is refused the same way, the file named.
        let file = dir.path().join(format!("edited{i}.pub"));
        std::fs::write(&file, format!("pillar-public-key {hex}\n")).unwrap();
        let err = PublicKey::load(file.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("low order") && err.contains("edited"),
            "{hex}: {err}"
        );
    }
    // A secret key of all zeros is a key anyone has.
    let zero = dir.path().join("zero.key");
    std::fs::write(&zero, format!("pillar-secret-key {}\n", "00".repeat(32))).unwrap();
    let err = Identity::load(&zero).unwrap_err().to_string();
    assert!(err.contains("all zeros"), "{err}");
}

/// Runs `load` on a thread and waits 10 s at most for it: a load that hangs (a FIFO nobody
/// writes) or reads without end (`/dev/zero`) fails the test instead of stalling it.
fn within_10_s<T: Send + 'static>(load: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(load()));
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("loading the key did not return")
}

#[cfg(unix)]
#[test]
fn devices_fifos_and_huge_files_are_not_read_as_keys() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.key");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    for path in [std::path::PathBuf::from("/dev/zero"), fifo] {
        let p = path.clone();
        let err = within_10_s(move || Identity::load(&p).map(|_| ()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let text = path.to_str().unwrap().to_string();
        let err = within_10_s(move || PublicKey::load(&text).map(|_| ()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }
    // A regular file of a megabyte is read no further than the limit.
    let big = dir.path().join("big.pub");
    std::fs::write(&big, vec![b' '; 1 << 20]).unwrap();
    let err = PublicKey::load(big.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("larger than"), "{err}");
    let err = Identity::load(&big).unwrap_err().to_string();
    assert!(err.contains("larger than"), "{err}");
}
