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
