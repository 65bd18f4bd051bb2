//! Which names the page gives its CSS, JS and wasm: the content-hashed ones cargo-leptos writes
//! (Cargo.toml, `hash-files`) whenever their `hash.txt` is beside the binary, where cargo-leptos
//! puts it and where Leptos reads it, so that a release binary started by hand serves its whole
//! page without `LEPTOS_HASH_FILES=true`.

use std::path::Path;

use leptos::config::LeptosOptions;

/// Settles `options.hash_files`: true when the hash file is beside the running binary. Asked
/// for (`LEPTOS_HASH_FILES=true`) with no hash file there, it is an error, in one line that
/// names the fix: Leptos would otherwise serve pages whose assets all answer 404.
pub fn settle_hash_files(options: &mut LeptosOptions) -> Result<(), String> {
    let beside_binary = std::env::current_exe()
        .ok()
        .and_then(|binary| binary.parent().map(Path::to_path_buf))
        .unwrap_or_default()
        .join(&*options.hash_file);
    options.hash_files = hashed_names(options.hash_files, &beside_binary, beside_binary.is_file())?;
    Ok(())
}

/// The decision alone: `requested` is `LEPTOS_HASH_FILES`, `hash_file` where Leptos looks for
/// the hashes and `present` whether it is there.
fn hashed_names(requested: bool, hash_file: &Path, present: bool) -> Result<bool, String> {
    match (requested, present) {
        (_, true) => Ok(true),
        (false, false) => Ok(false),
        (true, false) => Err(format!(
            "LEPTOS_HASH_FILES=true, but there is no {} beside the binary: build with `cargo leptos build --release`, which writes it there, or copy it from target/release/",
            hash_file.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH_FILE: &str = "/opt/herald/hash.txt";

    #[test]
    fn a_hash_file_beside_the_binary_means_hashed_names_whether_asked_for_or_not() {
        assert_eq!(hashed_names(false, Path::new(HASH_FILE), true), Ok(true));
        assert_eq!(hashed_names(true, Path::new(HASH_FILE), true), Ok(true));
    }

    #[test]
    fn without_a_hash_file_the_names_are_plain() {
        assert_eq!(hashed_names(false, Path::new(HASH_FILE), false), Ok(false));
    }

    #[test]
    fn hashed_names_asked_for_without_a_hash_file_fail_in_one_line_naming_the_file_and_the_fix() {
        let refused = hashed_names(true, Path::new(HASH_FILE), false).unwrap_err();

        assert!(!refused.contains('\n'), "{refused}");
        assert!(refused.contains(HASH_FILE), "{refused}");
        assert!(refused.contains("cargo leptos build --release"), "{refused}");
    }
}
