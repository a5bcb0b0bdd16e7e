//! Static membership: routers listed in configuration as `id=host:port`.

use super::{Member, MemberSet};
use crate::{Error, Result};

/// Parses entries `id=host:port` (each entry may also hold several, comma-separated)
/// into a member set. Every bad entry is an [`Error::InvalidMember`]; the first one is
/// returned.
pub fn parse_static<S: AsRef<str>>(entries: &[S]) -> Result<MemberSet> {
    let mut members = Vec::new();
    for entry in entries
        .iter()
        .flat_map(|e| e.as_ref().split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        members.push(parse_entry(entry)?);
    }
    let set = MemberSet::new(members.iter().cloned());
    if set.len() != members.len() {
        return Err(Error::InvalidMember {
            entry: entries
                .iter()
                .map(|e| e.as_ref())
                .collect::<Vec<_>>()
                .join(","),
            reason: "the same id is listed twice",
        });
    }
    Ok(set)
}

fn parse_entry(entry: &str) -> Result<Member> {
    let bad = |reason| Error::InvalidMember {
        entry: entry.to_owned(),
        reason,
    };
    let (id, addr) = entry
        .split_once('=')
        .ok_or_else(|| bad("expected id=host:port"))?;
    let (id, addr) = (id.trim(), addr.trim());
    if id.is_empty() {
        return Err(bad("the id is empty"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(bad(
            "the id may hold only letters, digits, '-', '_' and '.'",
        ));
    }
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| bad("the address needs a port (host:port)"))?;
    if host.is_empty() {
        return Err(bad("the address has no host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(Member::new(id, addr)),
        _ => Err(bad("the port is not a number from 1 to 65535")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_comma_separated_entries() {
        let set = parse_static(&[
            "r-1=10.0.0.1:50051, r-0=router-0.routers:50051",
            "r-2=[::1]:7",
        ])
        .expect("valid");
        assert_eq!(set.ids().collect::<Vec<_>>(), ["r-0", "r-1", "r-2"]);
        assert_eq!(set.get("r-2").map(|m| m.addr.as_str()), Some("[::1]:7"));
        assert!(parse_static::<&str>(&[]).expect("empty").is_empty());
    }

    #[test]
    fn rejects_bad_entries() {
        for bad in [
            "r-1",
            "=h:1",
            "r 1=h:1",
            "r-1=h",
            "r-1=:1",
            "r-1=h:0",
            "r-1=h:99999",
            "r-1=h:1,r-1=h:2",
        ] {
            let err = parse_static(&[bad]).expect_err(bad);
            assert!(matches!(err, Error::InvalidMember { .. }), "{bad}: {err}");
        }
    }
}
