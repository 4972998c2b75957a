//! Manifest validation: which of the four supported media types a pushed
//! manifest is, whether its JSON has the required shape, and what it
//! references (blobs, child manifests, a subject).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::RegistryError;
use crate::names::Digest;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

const SUPPORTED: [&str; 4] = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST];

/// A descriptor as the spec writes it (also the entries of a referrers index).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    pub(crate) media_type: String,
    pub(crate) digest: String,
    pub(crate) size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) annotations: Option<BTreeMap<String, String>>,
    /// Where a foreign (non-distributable) layer lives instead.
    #[serde(default, skip_serializing)]
    pub(crate) urls: Option<Vec<String>>,
}

/// The fields of any supported manifest; which are required depends on the
/// media type.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<u64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

/// What the registry needs to know about a valid manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub(crate) media_type: &'static str,
    /// Blobs that must be in the repository (config and layers).
    pub(crate) blobs: Vec<Digest>,
    /// Manifests that must be in the repository (an index's children).
    pub(crate) children: Vec<Digest>,
    /// The manifest this one refers to (OCI 1.1 referrers).
    pub(crate) subject: Option<Digest>,
    /// The type a referrers listing shows: `artifactType`, else the config's
    /// media type for image manifests.
    pub(crate) artifact_type: Option<String>,
    pub(crate) annotations: Option<BTreeMap<String, String>>,
}

/// Validates a pushed manifest. `content_type` is the request's
/// `Content-Type`; the body's `mediaType` must agree with it when both are
/// present.
pub(crate) fn parse(body: &[u8], content_type: Option<&str>) -> Result<Manifest, RegistryError> {
    let raw: RawManifest = serde_json::from_slice(body)
        .map_err(|e| RegistryError::ManifestInvalid(format!("not a manifest: {e}")))?;
    if raw.schema_version != Some(2) {
        return Err(RegistryError::ManifestInvalid("schemaVersion must be 2".into()));
    }
    let header = content_type
        .map(|value| value.split(';').next().unwrap_or_default().trim())
        .filter(|value| !matches!(*value, "" | "application/json" | "application/octet-stream"));
    let declared = match (header, raw.media_type.as_deref()) {
        (Some(header), Some(body)) if header != body => {
            return Err(RegistryError::ManifestInvalid(format!(
                "Content-Type {header:?} does not match mediaType {body:?}"
            )));
        }
        (Some(kind), _) | (None, Some(kind)) => kind,
        // OCI makes `mediaType` optional: tell the two OCI shapes apart.
        (None, None) if raw.manifests.is_some() => OCI_INDEX,
        (None, None) => OCI_MANIFEST,
    };
    let media_type = SUPPORTED
        .into_iter()
        .find(|supported| *supported == declared)
        .ok_or_else(|| {
            RegistryError::ManifestInvalid(format!("unsupported manifest media type {declared:?}"))
        })?;

    let is_index = matches!(media_type, OCI_INDEX | DOCKER_MANIFEST_LIST);
    let (blobs, children, config_type) = if is_index {
        if raw.config.is_some() || raw.layers.is_some() {
            return Err(RegistryError::ManifestInvalid(
                "an index has no config or layers".into(),
            ));
        }
        let manifests = raw
            .manifests
            .ok_or_else(|| RegistryError::ManifestInvalid("an index needs manifests".into()))?;
        (Vec::new(), digests(&manifests)?, None)
    } else {
        if raw.manifests.is_some() {
            return Err(RegistryError::ManifestInvalid(
                "an image manifest has no manifests".into(),
            ));
        }
        let config = raw
            .config
            .ok_or_else(|| RegistryError::ManifestInvalid("an image manifest needs a config".into()))?;
        let layers = raw
            .layers
            .ok_or_else(|| RegistryError::ManifestInvalid("an image manifest needs layers".into()))?;
        // Foreign layers live elsewhere (their `urls`) and are never pushed.
        let local_layers: Vec<Descriptor> = layers
            .into_iter()
            .filter(|layer| layer.urls.as_ref().is_none_or(Vec::is_empty))
            .collect();
        let mut blobs = digests(std::slice::from_ref(&config))?;
        blobs.extend(digests(&local_layers)?);
        (blobs, Vec::new(), Some(config.media_type))
    };
    let subject = raw
        .subject
        .map(|subject| descriptor_digest(&subject))
        .transpose()?;
    Ok(Manifest {
        media_type,
        blobs,
        children,
        subject,
        artifact_type: raw.artifact_type.or(config_type),
        annotations: raw.annotations,
    })
}

fn digests(descriptors: &[Descriptor]) -> Result<Vec<Digest>, RegistryError> {
    descriptors.iter().map(descriptor_digest).collect()
}

fn descriptor_digest(descriptor: &Descriptor) -> Result<Digest, RegistryError> {
    Digest::parse(&descriptor.digest).map_err(|e| RegistryError::ManifestInvalid(format!("descriptor: {e}")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn digest(n: u8) -> String {
        format!("sha256:{}", hex::encode([n; 32]))
    }

    fn image(config_type: &str) -> serde_json::Value {
        json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": config_type, "digest": digest(1), "size": 2 },
            "layers": [
                { "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(2), "size": 3 },
                { "mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar",
                  "digest": digest(3), "size": 3, "urls": ["https://example.com/l"] }
            ]
        })
    }

    #[test]
    fn image_manifests_list_their_blobs() {
        let body = serde_json::to_vec(&image("application/vnd.example+json")).unwrap();
        let manifest = parse(&body, Some(OCI_MANIFEST)).unwrap();
        assert_eq!(manifest.media_type, OCI_MANIFEST);
        let expected: Vec<Digest> = [1, 2].map(|n| Digest::parse(&digest(n)).unwrap()).to_vec();
        assert_eq!(manifest.blobs, expected);
        assert_eq!(
            manifest.artifact_type.as_deref(),
            Some("application/vnd.example+json")
        );
        // Without a Content-Type the body's mediaType decides.
        assert_eq!(parse(&body, None).unwrap().media_type, OCI_MANIFEST);
    }

    #[test]
    fn indexes_list_their_children_and_subjects() {
        let body = json!({
            "schemaVersion": 2,
            "manifests": [{ "mediaType": OCI_MANIFEST, "digest": digest(4), "size": 10 }],
            "subject": { "mediaType": OCI_MANIFEST, "digest": digest(5), "size": 10 },
            "artifactType": "application/x-sbom"
        });
        let manifest = parse(&serde_json::to_vec(&body).unwrap(), None).unwrap();
        assert_eq!(manifest.media_type, OCI_INDEX);
        assert_eq!(manifest.children, [Digest::parse(&digest(4)).unwrap()]);
        assert_eq!(manifest.subject, Some(Digest::parse(&digest(5)).unwrap()));
        assert_eq!(manifest.artifact_type.as_deref(), Some("application/x-sbom"));
    }

    #[test]
    fn malformed_manifests_are_refused() {
        let good = image("application/vnd.oci.image.config.v1+json");
        let mut wrong_version = good.clone();
        wrong_version["schemaVersion"] = json!(1);
        let mut no_config = good.clone();
        no_config.as_object_mut().unwrap().remove("config");
        let mut bad_digest = good.clone();
        bad_digest["layers"][0]["digest"] = json!("sha256:nothex");
        let mut negative_size = good.clone();
        negative_size["config"]["size"] = json!(-1);
        for (body, content_type) in [
            (b"not json".to_vec(), Some(OCI_MANIFEST)),
            (serde_json::to_vec(&wrong_version).unwrap(), None),
            (serde_json::to_vec(&no_config).unwrap(), None),
            (serde_json::to_vec(&bad_digest).unwrap(), None),
            (serde_json::to_vec(&negative_size).unwrap(), None),
            (serde_json::to_vec(&good).unwrap(), Some(DOCKER_MANIFEST)),
            (
                serde_json::to_vec(&good).unwrap(),
                Some("application/vnd.docker.distribution.manifest.v1+json"),
            ),
        ] {
            assert!(
                matches!(parse(&body, content_type), Err(RegistryError::ManifestInvalid(_))),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
    }
}
