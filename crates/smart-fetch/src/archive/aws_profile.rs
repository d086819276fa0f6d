//! AWS shared config files (`~/.aws/credentials`, `~/.aws/config`, `AWS_PROFILE`) for S3
//! destinations. `object_store` reads the environment, web identity, container and instance
//! roles, but not these files, which is where `aws configure` puts a data engineer's keys;
//! without this step a site whose other tools work with `AWS_PROFILE=archive` would get an
//! instance-metadata timeout instead. Static keys (with an optional session token), `region`
//! and `endpoint_url` are read, in the AWS CLI's order: environment first, then the
//! credentials file, then the config file. A profile that gets its keys some other way (SSO,
//! an assumed role, a credential process) is named with the one command that turns it into
//! environment variables. Values are never shown in any message.

use super::ArchiveError;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What a profile contributes to the S3 client.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Profile {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

/// Keys that mean "credentials come from elsewhere", which we do not follow.
const INDIRECT: &[&str] = &[
    "sso_session",
    "sso_start_url",
    "role_arn",
    "credential_process",
    "source_profile",
    "web_identity_token_file",
];

type Sections = BTreeMap<String, BTreeMap<String, String>>;

/// INI as the AWS CLI writes it: `[section]`, `key = value`, `#`/`;` comments. Nested
/// (indented) sub-keys such as `s3 =\n  max_concurrent_requests = 20` are skipped.
fn parse_ini(text: &str) -> Sections {
    let mut sections = Sections::new();
    let mut current: Option<String> = None;
    for raw in text.lines() {
        if raw.starts_with([' ', '\t']) {
            continue;
        }
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim().to_string();
            sections.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        if let (Some(section), Some((key, value))) = (&current, line.split_once('=')) {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            sections
                .entry(section.clone())
                .or_default()
                .insert(key.trim().to_ascii_lowercase(), value.to_string());
        }
    }
    sections
}

fn read(path: &PathBuf) -> Result<Option<Sections>, ArchiveError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(parse_ini(&text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ArchiveError::Profile(format!(
            "Could not read the AWS file {}: {e}.",
            path.display()
        ))),
    }
}

/// The profile the environment selects, merged from both files; `None` when there is none
/// to read (no `AWS_PROFILE` and no `default` profile), or when the environment already
/// holds the keys (which then win, as in the AWS CLI) and the profile adds nothing.
pub(crate) fn load(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Profile>, ArchiveError> {
    let explicit = env("AWS_PROFILE")
        .or_else(|| env("AWS_DEFAULT_PROFILE"))
        .filter(|p| !p.is_empty());
    let name = explicit.clone().unwrap_or_else(|| "default".to_string());
    let home = env("HOME").map(PathBuf::from);
    let file = |var: &str, default: &str| {
        env(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
    };
    let credentials_path = file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
    let config_path = file("AWS_CONFIG_FILE", "config");
    let credentials = match &credentials_path {
        Some(p) => read(p)?,
        None => None,
    };
    let config = match &config_path {
        Some(p) => read(p)?,
        None => None,
    };
    let from_credentials = credentials.as_ref().and_then(|s| s.get(&name));
    let config_section = if name == "default" {
        "default".to_string()
    } else {
        format!("profile {name}")
    };
    let from_config = config.as_ref().and_then(|s| s.get(&config_section));
    if from_credentials.is_none() && from_config.is_none() {
        if explicit.is_some() {
            let shown = |p: &Option<PathBuf>| {
                p.as_ref()
                    .map_or_else(|| "(no HOME)".to_string(), |p| p.display().to_string())
            };
            return Err(ArchiveError::Profile(format!(
                "AWS_PROFILE names the profile '{name}', which is in neither {} nor {}.",
                shown(&credentials_path),
                shown(&config_path)
            )));
        }
        return Ok(None);
    }
    let get = |key: &str| {
        from_credentials
            .and_then(|s| s.get(key))
            .or_else(|| from_config.and_then(|s| s.get(key)))
            .cloned()
    };
    let env_keys = env("AWS_ACCESS_KEY_ID").is_some() && env("AWS_SECRET_ACCESS_KEY").is_some();
    let profile = Profile {
        access_key_id: get("aws_access_key_id"),
        secret_access_key: get("aws_secret_access_key"),
        session_token: get("aws_session_token"),
        region: from_config
            .and_then(|s| s.get("region"))
            .or_else(|| from_credentials.and_then(|s| s.get("region")))
            .cloned(),
        endpoint_url: from_config.and_then(|s| s.get("endpoint_url")).cloned(),
    };
    let has_keys = profile.access_key_id.is_some() && profile.secret_access_key.is_some();
    // A web identity or container role in the environment serves when the default profile
    // (not one asked for by name) has no keys of its own.
    let env_role = [
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ]
    .iter()
    .any(|k| env(k).is_some());
    if !env_keys && !has_keys && (explicit.is_some() || !env_role) {
        let indirect = INDIRECT.iter().find(|k| get(k).is_some());
        if let Some(key) = indirect {
            return Err(ArchiveError::Profile(format!(
                "The AWS profile '{name}' gets its credentials through '{key}', which smart-fetch does not follow. Run `eval \"$(aws configure export-credentials --profile {name} --format env)\"` first, then the same command."
            )));
        }
        if profile.access_key_id.is_some() != profile.secret_access_key.is_some() {
            return Err(ArchiveError::Profile(format!(
                "The AWS profile '{name}' has only one of aws_access_key_id and aws_secret_access_key."
            )));
        }
    }
    if env_keys {
        // The environment's keys win; the profile may still name the region and endpoint.
        return Ok(Some(Profile {
            region: profile.region,
            endpoint_url: profile.endpoint_url,
            ..Profile::default()
        }));
    }
    Ok(Some(profile))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn dir_with(name: &str, files: &[(&str, &str)]) -> crate::folder::discovery::tests::TestDir {
        let dir = crate::folder::discovery::tests::temp_dir(&format!("aws-profile-{name}"));
        let aws = dir.join(".aws");
        std::fs::create_dir_all(&aws).unwrap_or_else(|e| panic!("{e}"));
        for (name, text) in files {
            std::fs::write(aws.join(name), text).unwrap_or_else(|e| panic!("{e}"));
        }
        dir
    }

    #[test]
    fn static_keys_region_and_endpoint_from_the_named_profile() {
        let home = dir_with(
            "static",
            &[
                (
                    "credentials",
                    "[default]\naws_access_key_id = D\naws_secret_access_key = DS\n\n[archive]\naws_access_key_id=A\naws_secret_access_key = AS\naws_session_token = T\n",
                ),
                (
                    "config",
                    "[default]\nregion = us-east-1\n[profile archive]\nregion = eu-west-1\nendpoint_url = http://127.0.0.1:9000\ns3 =\n  addressing_style = path\n",
                ),
            ],
        );
        let home_s = home.to_string_lossy().into_owned();
        let profile = load(&env_of(&[("HOME", &home_s), ("AWS_PROFILE", "archive")]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            profile,
            Some(Profile {
                access_key_id: Some("A".into()),
                secret_access_key: Some("AS".into()),
                session_token: Some("T".into()),
                region: Some("eu-west-1".into()),
                endpoint_url: Some("http://127.0.0.1:9000".into()),
            })
        );
        let default = load(&env_of(&[("HOME", &home_s)])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(default.and_then(|p| p.access_key_id).as_deref(), Some("D"));
        // Keys in the environment win over the profile's, which still gives the region.
        let env_wins = load(&env_of(&[
            ("HOME", &home_s),
            ("AWS_PROFILE", "archive"),
            ("AWS_ACCESS_KEY_ID", "E"),
            ("AWS_SECRET_ACCESS_KEY", "ES"),
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            env_wins,
            Some(Profile {
                region: Some("eu-west-1".into()),
                endpoint_url: Some("http://127.0.0.1:9000".into()),
                ..Profile::default()
            })
        );
        let _ = std::fs::remove_dir_all(&home);
    }

    #[test]
    fn missing_and_indirect_profiles_say_what_to_do_without_values() {
        let home = dir_with(
            "indirect",
            &[(
                "config",
                "[profile sso]\nsso_session = corp\nregion = us-east-2\n[profile half]\naws_access_key_id = SECRETID\n",
            )],
        );
        let home_s = home.to_string_lossy().into_owned();
        let err = |profile: &str| {
            load(&env_of(&[("HOME", &home_s), ("AWS_PROFILE", profile)]))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let missing = err("nope");
        assert!(
            missing.contains("'nope'") && missing.contains("neither"),
            "{missing}"
        );
        let sso = err("sso");
        assert!(
            sso.contains("sso_session") && sso.contains("export-credentials --profile sso"),
            "{sso}"
        );
        // A default profile without keys gives way to a web identity in the environment
        // (and is an error, with the command to run, without one).
        let sso_default = home.join("sso-default");
        std::fs::write(&sso_default, "[default]\nsso_session = corp\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let sso_default = sso_default.to_string_lossy().into_owned();
        let with_role = load(&env_of(&[
            ("HOME", &home_s),
            ("AWS_CONFIG_FILE", &sso_default),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token"),
        ]));
        assert!(with_role.is_ok(), "{with_role:?}");
        let without = load(&env_of(&[
            ("HOME", &home_s),
            ("AWS_CONFIG_FILE", &sso_default),
        ]));
        assert!(without.is_err());
        let half = err("half");
        assert!(
            half.contains("only one") && !half.contains("SECRETID"),
            "{half}"
        );
        // No AWS_PROFILE and no default profile: nothing to read, not an error.
        assert_eq!(load(&env_of(&[("HOME", &home_s)])).ok(), Some(None));
        assert_eq!(load(&env_of(&[])).ok(), Some(None));
        let _ = std::fs::remove_dir_all(&home);
    }
}
