//! Reading a schema file, with every problem reported by file and line.

use std::path::Path;

use anyhow::Context;
use fanout_core::graphql::Schema;

/// Reads and validates the SDL at `path`.
pub fn load(path: &Path) -> anyhow::Result<Schema> {
    let sdl = std::fs::read_to_string(path)
        .with_context(|| format!("reading schema {}", path.display()))?;
    Schema::parse(&sdl, &path.display().to_string()).map_err(|errors| {
        let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("invalid schema:\n{}", lines.join("\n"))
    })
}

/// Names of the fields the resolvers file registers, read from its
/// `@fanout.resolver("...")` decorators without running Python (routers carry no
/// interpreter).
pub fn resolver_fields(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading resolvers {}", path.display()))?;
    let mut fields = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        let Some(rest) = line.strip_prefix("@fanout.resolver(") else {
            continue;
        };
        let rest = rest.trim_start();
        let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            continue;
        };
        if let Some(end) = rest[1..].find(quote) {
            fields.push(rest[1..1 + end].to_owned());
        }
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decorators_are_found_without_python() {
        let dir = std::env::temp_dir().join(format!("fanout-resolver-scan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("r.py");
        std::fs::write(
            &file,
            "import fanout\n@fanout.resolver(\"a\")\ndef a(e, x, c): pass\n  @fanout.resolver( 'b' )\n# @fanout.resolver(\"c\")\n",
        )
        .expect("write");
        assert_eq!(resolver_fields(&file).expect("read"), vec!["a", "b"]);
        let _ = std::fs::remove_dir_all(dir);
    }
}
