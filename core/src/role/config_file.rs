//! The YAML config file of the role binaries.
//!
//! `--config FILE` (or `FANOUT_CONFIG`) names a YAML mapping whose keys are the long
//! flag names (`nats_url` or `nats-url`). Its entries are turned into flags placed
//! before the command line's own, and the command is parsed with "later wins", so
//! command-line flags override the file and the file overrides `FANOUT_*` variables.

use std::ffi::OsString;

/// Inserts the entries of the config file named in `args` (or by `FANOUT_CONFIG`)
/// right after the program name. Errors name the file and the offending key.
pub fn expand(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let path = config_path(&args).or_else(|| std::env::var_os("FANOUT_CONFIG"));
    let Some(path) = path else { return Ok(args) };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("--config {}: {e}", path.to_string_lossy()))?;
    let flags = flags_of(&text).map_err(|e| format!("--config {}: {e}", path.to_string_lossy()))?;
    let mut out = Vec::with_capacity(args.len() + flags.len());
    let mut rest = args.into_iter();
    if let Some(program) = rest.next() {
        out.push(program);
    }
    out.extend(flags.into_iter().map(OsString::from));
    out.extend(rest);
    Ok(out)
}

fn config_path(args: &[OsString]) -> Option<OsString> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy();
        if text == "--config" {
            return iter.next().cloned();
        }
        if let Some(value) = text.strip_prefix("--config=") {
            return Some(OsString::from(value));
        }
    }
    None
}

/// The flags a YAML document stands for.
pub fn flags_of(text: &str) -> Result<Vec<String>, String> {
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let map = match value {
        serde_yaml::Value::Null => return Ok(Vec::new()),
        serde_yaml::Value::Mapping(map) => map,
        _ => return Err("the file must be a mapping of flag names to values".into()),
    };
    let mut flags = Vec::new();
    for (key, value) in map {
        let key = key
            .as_str()
            .ok_or_else(|| "keys must be strings".to_owned())?
            .replace('_', "-");
        if key == "config" {
            return Err("`config` cannot be set inside the config file".into());
        }
        match value {
            serde_yaml::Value::Bool(true) => flags.push(format!("--{key}")),
            serde_yaml::Value::Bool(false) | serde_yaml::Value::Null => {}
            serde_yaml::Value::String(s) => flags.push(format!("--{key}={s}")),
            serde_yaml::Value::Number(n) => flags.push(format!("--{key}={n}")),
            serde_yaml::Value::Sequence(items) => {
                let parts: Result<Vec<String>, String> = items
                    .into_iter()
                    .map(|item| match item {
                        serde_yaml::Value::String(s) => Ok(s),
                        serde_yaml::Value::Number(n) => Ok(n.to_string()),
                        _ => Err(format!("`{key}`: list items must be strings or numbers")),
                    })
                    .collect();
                for part in parts? {
                    flags.push(format!("--{key}={part}"));
                }
            }
            _ => return Err(format!("`{key}`: nested mappings are not supported")),
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_becomes_flags() {
        let flags = flags_of("nats_url: nats://x:4222\npartitions: 8\nlog-json: true\nquiet: false\nmembers: [a=1:2, b=3:4]\n")
            .expect("valid");
        assert_eq!(
            flags,
            vec![
                "--nats-url=nats://x:4222",
                "--partitions=8",
                "--log-json",
                "--members=a=1:2",
                "--members=b=3:4"
            ]
        );
        assert!(flags_of("- a\n- b\n").is_err());
        assert!(flags_of("config: x\n").is_err());
        assert!(flags_of("a: {b: 1}\n").is_err());
        assert_eq!(flags_of("").expect("empty"), Vec::<String>::new());
    }

    #[test]
    fn file_entries_go_before_command_line_flags() {
        let dir = std::env::temp_dir().join(format!("fanout-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("c.yaml");
        std::fs::write(&file, "partitions: 8\n").expect("write");
        let args: Vec<OsString> = [
            "prog",
            "--config",
            file.to_str().expect("utf8"),
            "--partitions=4",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let out = expand(args).expect("expand");
        let out: Vec<String> = out
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(out[0], "prog");
        assert_eq!(out[1], "--partitions=8");
        assert_eq!(out.last().map(String::as_str), Some("--partitions=4"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
