//! Named profiles in a TOML file, and which URL and key a command uses.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cli::GlobalArgs;
use crate::error::Error;

/// Where the API is when neither a flag, the environment nor a profile says.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8000";

/// The config file's contents.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The profile used when `--profile` is not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_profile: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

/// The API and key a command talks to.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    pub api_key: String,
}

/// `DBAASCTL_CONFIG`, else `dbaasctl/config.toml` in the user's config
/// directory (`$XDG_CONFIG_HOME`, `~/.config` on Linux).
pub fn path() -> Result<PathBuf, Error> {
    if let Some(p) = std::env::var_os("DBAASCTL_CONFIG").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    dirs::config_dir()
        .map(|d| d.join("dbaasctl").join("config.toml"))
        .ok_or_else(|| {
            Error::Usage("no config directory is known here: set DBAASCTL_CONFIG".to_string())
        })
}

impl ConfigFile {
    /// The file at `path`; empty when there is none yet.
    pub fn load(path: &Path) -> Result<ConfigFile, Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| {
                let first_line = e.to_string().lines().next().unwrap_or_default().to_string();
                Error::config(path, first_line)
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
            Err(e) => Err(Error::config(path, e)),
        }
    }

    /// Writes the file readable by its owner only (it holds keys), through
    /// a temporary file renamed over it, so a crash leaves the old file or
    /// the new one, never half of one.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::config(dir, e))?;
        }
        let text = toml::to_string(self).map_err(|e| Error::config(path, e))?;
        // tempfile creates the file with mode 0600 before anything is written.
        let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::config(dir, e))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.as_file().sync_all())
            .map_err(|e| Error::config(file.path(), e))?;
        file.persist(path)
            .map_err(|e| Error::config(path, e.error))?;
        Ok(())
    }

    /// The profile `--profile`/`DBAAS_PROFILE` names, else the current one.
    pub fn selected<'a>(&'a self, global: &'a GlobalArgs) -> Option<&'a str> {
        global
            .profile
            .as_deref()
            .or(self.current_profile.as_deref())
    }

    /// Flags and environment first, then the selected profile, then the
    /// default URL; a key is required.
    pub fn target(&self, global: &GlobalArgs, path: &Path) -> Result<Target, Error> {
        let profile = match self.selected(global) {
            Some(name) => Some(self.profiles.get(name).ok_or_else(|| {
                Error::Usage(format!(
                    "no profile {name} in {}: `dbaasctl config list` shows them",
                    path.display()
                ))
            })?),
            None => None,
        };
        let url = global
            .url
            .clone()
            .or_else(|| profile.and_then(|p| p.url.clone()))
            .unwrap_or_else(|| DEFAULT_URL.to_string());
        let api_key = global
            .api_key
            .clone()
            .or_else(|| profile.and_then(|p| p.api_key.clone()))
            .ok_or_else(|| {
                Error::Usage(
                    "no API key: pass --api-key, set DBAAS_API_KEY, or save one with \
                     `dbaasctl config set-profile NAME --api-key KEY`"
                        .to_string(),
                )
            })?;
        Ok(Target { url, api_key })
    }
}

/// Enough of a key to tell keys apart, never enough to use one.
pub fn key_prefix(key: &str) -> String {
    let shown = (key.chars().count() / 2).min(8);
    format!("{}…", key.chars().take(shown).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Output, Typed};

    fn global(url: Option<&str>, key: Option<&str>, profile: Option<&str>) -> GlobalArgs {
        GlobalArgs {
            url: url.map(str::to_string),
            api_key: key.map(str::to_string),
            profile: profile.map(str::to_string),
            output: Output::Table,
            typed: Typed::default(),
        }
    }

    fn file() -> ConfigFile {
        let mut f = ConfigFile {
            current_profile: Some("a".into()),
            ..Default::default()
        };
        for (name, url) in [("a", "http://a"), ("b", "http://b")] {
            f.profiles.insert(
                name.into(),
                Profile {
                    url: Some(url.into()),
                    api_key: Some(format!("key-{name}")),
                },
            );
        }
        f
    }

    #[test]
    fn flags_beat_the_profile_which_beats_the_default() {
        let p = Path::new("config.toml");
        let t = file().target(&global(None, None, None), p).unwrap();
        assert_eq!((t.url.as_str(), t.api_key.as_str()), ("http://a", "key-a"));
        let t = file().target(&global(None, None, Some("b")), p).unwrap();
        assert_eq!((t.url.as_str(), t.api_key.as_str()), ("http://b", "key-b"));
        let t = file()
            .target(&global(Some("http://c"), Some("k"), Some("b")), p)
            .unwrap();
        assert_eq!((t.url.as_str(), t.api_key.as_str()), ("http://c", "k"));
        let t = ConfigFile::default()
            .target(&global(None, Some("k"), None), p)
            .unwrap();
        assert_eq!(t.url, DEFAULT_URL);
        assert!(matches!(
            ConfigFile::default().target(&global(None, None, None), p),
            Err(Error::Usage(_))
        ));
        assert!(matches!(
            file().target(&global(None, None, Some("zz")), p),
            Err(Error::Usage(_))
        ));
    }

    #[test]
    fn prefixes_never_show_a_whole_key() {
        assert_eq!(
            key_prefix("dbk_0123456789abcdef0123456789abcdef"),
            "dbk_0123…"
        );
        assert_eq!(key_prefix("abcd"), "ab…");
        assert_eq!(key_prefix(""), "…");
    }
}
