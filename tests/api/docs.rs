//! The docs that must not drift from the code: `docs/configuration.md` against `herald --help`.

#[test]
fn the_configuration_doc_shows_exactly_what_herald_help_prints() {
    // No HERALD_* variables: clap would show their values in the help.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("--help")
        .env_clear()
        .output()
        .expect("herald runs");
    assert!(output.status.success(), "herald --help failed");
    let help = String::from_utf8(output.stdout).expect("UTF-8 help");
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md")).unwrap();
    let block = doc
        .split_once("```text\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .expect("docs/configuration.md has a text block");

    assert_eq!(
        block.trim_end(),
        help.trim_end(),
        "docs/configuration.md is out of date: put the output of `herald --help` in its text block"
    );
}
