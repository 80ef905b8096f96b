//! Just enough of Kubernetes quantities to read CPU, memory and storage
//! back from custom resources ("500m", "2", "8Gi", "53687091200").

/// CPU in millicores.
pub fn millicores(q: &str) -> Option<u64> {
    let q = q.trim();
    if let Some(m) = q.strip_suffix('m') {
        return m.parse().ok();
    }
    let v: f64 = q.parse().ok()?;
    (v >= 0.0).then(|| (v * 1000.0).round() as u64)
}

/// Bytes, from binary (Ki..Ei) or decimal (k..E) suffixes.
pub fn bytes(q: &str) -> Option<u64> {
    let q = q.trim();
    const SUFFIXES: [(&str, u64); 12] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("Pi", 1 << 50),
        ("Ei", 1 << 60),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("P", 1_000_000_000_000_000),
        ("E", 1_000_000_000_000_000_000),
    ];
    for (suffix, factor) in SUFFIXES {
        if let Some(n) = q.strip_suffix(suffix) {
            let n: f64 = n.parse().ok()?;
            return (n >= 0.0).then(|| (n * factor as f64).round() as u64);
        }
    }
    q.parse().ok()
}

/// Storage in whole GiB, rounded up (a volume is never smaller than asked).
pub fn gibibytes(q: &str) -> Option<u32> {
    let b = bytes(q)?;
    u32::try_from(b.div_ceil(1 << 30)).ok()
}

/// The quantity for `gb` GiB.
pub fn storage_quantity(gb: u32) -> String {
    format!("{gb}Gi")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(millicores("500m"), Some(500));
        assert_eq!(millicores("2"), Some(2000));
        assert_eq!(millicores("0.5"), Some(500));
        assert_eq!(bytes("1Gi"), Some(1 << 30));
        assert_eq!(bytes("2048Mi"), Some(2 << 30));
        assert_eq!(gibibytes("50Gi"), Some(50));
        assert_eq!(gibibytes("53687091200"), Some(50));
        assert_eq!(gibibytes("10G"), Some(10));
        assert_eq!(bytes("lots"), None);
    }
}
