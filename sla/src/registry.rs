//! The model registry: canonical model ids, aliases, pipelines and targets
//! (`schemas/policy/models-v1.toml`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::policy::file_hash;
use crate::{RegistryError, SlaError};

/// The registry file compiled in, used by [`Registry::default_v1`].
pub const DEFAULT_REGISTRY_TOML: &str = include_str!("../../schemas/policy/models-v1.toml");

/// Model id of events that name no model.
pub(crate) const UNKNOWN_MODEL: &str = "unknown";

/// Pipeline of models the registry does not list.
pub(crate) const UNKNOWN_PIPELINE: &str = "unknown";

/// One model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Canonical id (go-livepeer's `pipeline` / `model_id`).
    pub id: String,
    /// Pipeline, e.g. `live-video-to-video`.
    pub pipeline: String,
    /// Other names the same model goes by.
    pub aliases: Vec<String>,
    /// Output fps the model should reach.
    pub target_fps: f64,
    /// Prompt-to-first-frame target, ms.
    pub ptff_target_ms: u64,
    /// Startup (time to playable) target, ms.
    pub startup_target_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    version: u32,
    models: Vec<ModelSpec>,
}

/// A loaded registry and the hash of its file bytes.
#[derive(Debug, Clone)]
pub struct Registry {
    /// Registry version.
    pub version: u32,
    /// Models in file order.
    pub models: Vec<ModelSpec>,
    /// `0x` + keccak-256 of the file bytes.
    pub hash: String,
    by_name: BTreeMap<String, usize>,
}

impl Registry {
    /// The compiled-in `models-v1.toml`.
    pub fn default_v1() -> Registry {
        #[allow(clippy::expect_used)]
        Registry::from_toml(DEFAULT_REGISTRY_TOML).expect("the embedded registry is valid")
    }

    /// Parses a registry file's text. Ids and aliases must be unique.
    pub fn from_toml(text: &str) -> Result<Registry, SlaError> {
        let file: RegistryFile = toml::from_str(text).map_err(|e| SlaError::Registry(e.into()))?;
        let mut by_name = BTreeMap::new();
        for (i, m) in file.models.iter().enumerate() {
            for name in std::iter::once(&m.id).chain(&m.aliases) {
                if by_name.insert(name.to_lowercase(), i).is_some() {
                    return Err(SlaError::Registry(RegistryError::DuplicateName {
                        name: name.clone(),
                    }));
                }
            }
        }
        Ok(Registry {
            version: file.version,
            models: file.models,
            hash: file_hash(text.as_bytes()),
            by_name,
        })
    }

    /// Reads and parses a registry file.
    pub fn load(path: &Path) -> Result<Registry, SlaError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| SlaError::Io { path: path.display().to_string(), source })?;
        Registry::from_toml(&text)
    }

    /// The model an id or alias names (case-insensitive).
    pub fn model(&self, name: &str) -> Option<&ModelSpec> {
        let found = if name.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
            self.by_name.get(&name.to_lowercase())
        } else {
            // Lower-case ASCII already (as go-livepeer writes model ids).
            self.by_name.get(name)
        };
        found.and_then(|&i| self.models.get(i))
    }

    /// The canonical id of `name`: the registry's id, else `name` lower-cased.
    pub fn canonical(&self, name: &str) -> String {
        self.canonical_ref(name).into_owned()
    }

    /// [`Registry::canonical`], borrowed from the registry where it names
    /// the model (the engine takes it for every event that names one).
    pub fn canonical_ref(&self, name: &str) -> std::borrow::Cow<'_, str> {
        self.model(name).map_or_else(|| name.to_lowercase().into(), |m| m.id.as_str().into())
    }

    /// The canonical model of a payment's `manifestID`. go-livepeer names a
    /// live stream's manifest `<capability>_<model>` (`35_streamdiffusion-sdxl-faceid`);
    /// NaaP strips the leading `<digits>_` the same way (its `pipeline_hint`).
    /// This is a rule, not an alias: any number may precede the model. A
    /// manifest without the prefix is read as a model name; an empty one is
    /// `unknown`.
    pub fn model_of_manifest(&self, manifest_id: &str) -> String {
        let m = manifest_id.trim();
        let stripped = match m.split_once('_') {
            Some((n, rest)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => rest,
            _ => m,
        };
        if stripped.is_empty() { UNKNOWN_MODEL.to_owned() } else { self.canonical(stripped) }
    }

    /// The pipeline of a canonical model id (`unknown` for unlisted models).
    pub fn pipeline(&self, model: &str) -> &str {
        self.model(model).map_or(UNKNOWN_PIPELINE, |m| m.pipeline.as_str())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn manifest_ids_lose_their_capability_prefix() {
        let r = Registry::default_v1();
        assert_eq!(
            r.model_of_manifest("35_streamdiffusion-sdxl-faceid"),
            "streamdiffusion-sdxl-faceid"
        );
        assert_eq!(r.model_of_manifest("7_pip_SDXL-turbo-v2v"), "streamdiffusion-sdxl");
        assert_eq!(r.model_of_manifest("streamdiffusion-sd15"), "streamdiffusion");
        // Only digits before the first underscore are a prefix.
        assert_eq!(r.model_of_manifest("pip_sd-turbo"), "streamdiffusion-sdxl");
        assert_eq!(r.model_of_manifest("x1_model"), "x1_model");
        assert_eq!(r.model_of_manifest("12_"), "unknown");
        assert_eq!(r.model_of_manifest(""), "unknown");
    }

    #[test]
    fn naap_model_like_pipeline_hints_are_aliases() {
        // NaaP's normalizeModelLikePipelineHint, name for name.
        let r = Registry::default_v1();
        for (hint, model) in [
            ("pip_sdxl-turbo", "streamdiffusion-sdxl"),
            ("pip_sd-turbo", "streamdiffusion-sdxl"),
            ("pip_SDXL-turbo-v2v", "streamdiffusion-sdxl"),
            ("pip_sdxl-turbo-faceid", "streamdiffusion-sdxl-faceid"),
            ("streamdiffusion-sdxl-v2v", "streamdiffusion-sdxl"),
        ] {
            assert_eq!(r.canonical(hint), model, "{hint}");
            assert_eq!(r.pipeline(&r.canonical(hint)), "live-video-to-video");
        }
    }
}
