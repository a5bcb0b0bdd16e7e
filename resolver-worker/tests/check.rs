//! `fanout check` diagnostics.

mod common;

use fanout_resolver_worker::check_resolvers;

fn fields(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

#[test]
fn clean_file_has_no_diagnostics() {
    let s = common::Scratch::new("check-clean");
    let path = s.write(
        "resolvers.py",
        "import fanout\n\n@fanout.resolver('a')\ndef a(event, args, ctx):\n    return event\n",
    );
    assert_eq!(check_resolvers(&path, &fields(&["a", "b"])), vec![]);
}

#[test]
fn unknown_fields_and_bad_signatures_are_reported_at_their_definition() {
    let s = common::Scratch::new("check-unknown");
    let source = "import fanout\n\n@fanout.resolver('orderUpdated')\ndef ok(event, args, ctx):\n    return event\n\n\n@fanout.resolver('orderUpdatd')\ndef typo(event, args, ctx):\n    return event\n\n@fanout.resolver('orderUpdated2')\nasync def two_args(event, args):\n    return event\n";
    let path = s.write("resolvers.py", source);
    let diagnostics = check_resolvers(&path, &fields(&["orderUpdated"]));
    let found: Vec<(usize, &str)> = diagnostics
        .iter()
        .map(|d| (d.line, d.message.as_str()))
        .collect();
    assert_eq!(found.len(), 3, "{diagnostics:?}");
    assert_eq!(
        found[0],
        (8, "resolver for unknown Subscription field 'orderUpdatd'")
    );
    assert_eq!(
        found[1],
        (
            12,
            "resolver for unknown Subscription field 'orderUpdated2'"
        )
    );
    assert_eq!(found[2].0, 12);
    assert!(
        found[2]
            .1
            .starts_with("resolver cannot be called as f(event, args, ctx)"),
        "{}",
        found[2].1
    );
    assert!(diagnostics.iter().all(|d| d.file.ends_with("resolvers.py")));
    assert!(
        diagnostics[0]
            .to_string()
            .ends_with("resolvers.py:8: resolver for unknown Subscription field 'orderUpdatd'")
    );
}

#[test]
fn syntax_error_is_reported_with_line() {
    let s = common::Scratch::new("check-syntax");
    let path = s.write("resolvers.py", "import fanout\nx = (\n\ny = 3 3\n");
    let diagnostics = check_resolvers(&path, &[]);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert!(diagnostics[0].file.ends_with("resolvers.py"));
    assert!(diagnostics[0].line >= 2, "{diagnostics:?}");
    assert!(
        diagnostics[0].message.starts_with("SyntaxError"),
        "{diagnostics:?}"
    );
}

#[test]
fn exception_in_sibling_module_points_at_the_import_line() {
    let s = common::Scratch::new("check-sibling");
    s.write(
        "broken_sibling_fanout.py",
        "\n\nraise KeyError('SECRET_KEY')\n",
    );
    let path = s.write(
        "resolvers.py",
        "import fanout\n\nimport broken_sibling_fanout\n",
    );
    let diagnostics = check_resolvers(&path, &[]);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert_eq!(diagnostics[0].line, 3);
    assert!(
        diagnostics[0]
            .message
            .starts_with("KeyError: 'SECRET_KEY' (raised at "),
        "{diagnostics:?}"
    );
    assert!(
        diagnostics[0]
            .message
            .ends_with("broken_sibling_fanout.py:3)"),
        "{diagnostics:?}"
    );
}

#[test]
fn missing_file_is_a_diagnostic() {
    let diagnostics = check_resolvers(std::path::Path::new("/nonexistent/resolvers.py"), &[]);
    assert_eq!(diagnostics.len(), 1);
    assert!(
        diagnostics[0]
            .message
            .starts_with("cannot read the resolvers file"),
        "{diagnostics:?}"
    );
}
